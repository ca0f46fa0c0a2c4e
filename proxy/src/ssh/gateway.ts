import { createRequire } from 'node:module';
import net from 'node:net';
import type { Logger } from 'pino';
import type * as Ssh2 from 'ssh2';
import { guard, unexpected } from '../../../lib/guard';
import type { SandboxService } from '../sandboxes/service';
import type { SshAccess, SshGrant } from '../auth/ssh-tokens';
import type { CoveMetrics } from '../metrics/registry';
import { openAgentTunnel, type AgentEndpoint } from './agent-link';
import { createLoginBackoff } from './backoff';
import { MAX_SESSIONS, type SshConnection } from './connection';
import { wireOf } from './flow';
import { createForwards, openDirect } from './forward';
import { loadOrCreateHostKey } from './host-key';
import { bridgeSession } from './session';
import { sendRawSshMessage } from './ssh2-private';

/**
 * ssh2, loaded at run time from node_modules rather than bundled: its optional native crypto binding (the fast
 * ciphers) cannot be bundled, and an esbuild bundle would fail on it.
 */
const loadSsh2 = () => createRequire(import.meta.url)('ssh2') as typeof Ssh2;

/** A connection must have logged in this long after it was accepted, or it is dropped. */
const LOGIN_TIMEOUT_MS = 60_000;
const KEEPALIVE_MS = 30_000;
/** USERAUTH_BANNER (RFC 4252 §5.4). */
const MSG_USERAUTH_BANNER = 53;

interface SshGatewayOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Where the host key lives. */
  dataDir: string;
  access: SshAccess;
  sandboxes: SandboxService;
  /** Told when a connection logs in and when it closes, for /metrics (metrics/registry.ts). */
  metrics?: Pick<CoveMetrics, 'sshOpened' | 'sshClosed'>;
  log: Logger;
}

export interface SshGateway {
  /** The bound port. */
  port: number;
  close(): Promise<void>;
}

/**
 * The SSH gateway: `ssh TOKEN@host -p PORT`. The user name is an SSH access token and is the only credential; any
 * authentication method is accepted with a valid one. The gateway terminates the client's SSH and maps each channel
 * onto one tunnel to the sandbox's agent (wire/ssh.ts): sessions (pty, env, shell, exec, signals, exit status, the
 * sftp subsystem), direct-tcpip (`ssh -L`) and tcpip-forward (`ssh -R`). Revoking a token closes its connections.
 */
export async function startSshGateway(opts: SshGatewayOptions): Promise<SshGateway> {
  const ssh2 = loadSsh2();
  const { log, access, sandboxes } = opts;
  const hostKey = loadOrCreateHostKey(opts.dataDir, ssh2);
  const backoff = createLoginBackoff();
  const byToken = new Map<string, Set<SshConnection>>();
  const clients = new Set<Ssh2.Connection>();
  /** Sockets not logged in yet, by remote address and port: each is dropped LOGIN_TIMEOUT_MS after it was accepted. */
  const loginTimers = new Map<string, NodeJS.Timeout>();
  const peer = (address: string | undefined, port: number | undefined) => `${address}|${port}`;

  /** The sandbox's agent if it is started, else a sentence saying why not. */
  function agentOf(sandboxId: string): AgentEndpoint | string {
    const record = sandboxes.find(sandboxId);
    if (!record) return `Sandbox ${sandboxId} no longer exists.`;
    if (record.state !== 'started' || !record.ip) {
      return `Sandbox ${sandboxId} is ${record.state}. Start it (sandbox.start(), or POST /api/sandbox/${sandboxId}/start) and connect again.`;
    }
    sandboxes.touch(sandboxId);
    return { ip: record.ip, agentToken: record.agentToken };
  }

  // Called from inside the revoke API call: each connection is told inside its own boundary, so one that fails
  // neither fails the API call nor keeps the others open.
  const unsubscribe = access.onRevoked(
    guard(
      'ssh revocation',
      (ids: string[]) => {
        for (const id of ids) {
          for (const c of byToken.get(id) ?? []) {
            guard(
              'ssh revocation: connection',
              () => {
                // Each session is told and closed as a channel first (exit status 255, as ssh reports a lost
                // connection): OpenSSH prints a channel's output only when it gets to it, and exits at once on a
                // disconnect that arrives in the same read, losing the message. The connection ends a moment later.
                for (const ch of c.sessions) {
                  ch.stderr.write('\r\ncove: this SSH access token was revoked; the connection is closed.\r\n');
                  ch.exit(255);
                  ch.end();
                }
                c.log.info('ssh connection closed: token revoked');
                setTimeout(guard('ssh revocation: end', () => c.end(), () => c.wire.destroy()), 500).unref();
              },
              () => c.wire.destroy(),
            )();
          }
        }
      },
      () => {},
    ),
  );

  const server = new ssh2.Server({ hostKeys: [hostKey], ident: 'Cove', keepaliveInterval: KEEPALIVE_MS, keepaliveCountMax: 4 });
  server.on(
    'connection',
    guard('ssh connection', (client: Ssh2.Connection, info: Ssh2.ClientInfo) => onConnection(client, info), (_error, client) => client.end()),
  );

  function onConnection(client: Ssh2.Connection, info: Ssh2.ClientInfo): void {
    // First: from here on ssh2 reports a malformed packet (or anything a handler throws inside its parser) as an
    // 'error' on the client, and an 'error' without a listener would end the process.
    client.on('error', (err: Error) => log.debug({ ip: info.ip, err: err?.message }, 'ssh client error'));
    clients.add(client);
    const address = info.ip ?? 'unknown';
    let grant: SshGrant | undefined;
    let refused = false;
    let c: SshConnection | undefined;
    let forwards: ReturnType<typeof createForwards> | undefined;
    const wire = wireOf(client, (err) => {
      unexpected(err, 'ssh drain');
      wire.destroy();
    });
    const end = () => {
      // A client that does not read would hold the socket (and what is queued for it) open: it goes anyway.
      setTimeout(() => wire.destroy(), 2_000).unref();
      client.end();
    };
    const fail = () => end();

    client.on(
      'close',
      guard(
        'ssh close',
        () => {
          clients.delete(client);
          if (!c) return;
          opts.metrics?.sshClosed();
          byToken.get(c.grant.id)?.delete(c);
          if (byToken.get(c.grant.id)?.size === 0) byToken.delete(c.grant.id);
          for (const socket of c.tunnels) socket.destroy();
          forwards?.close();
        },
        () => {},
      ),
    );

    client.on(
      'authentication',
      guard(
        'ssh authentication',
        (ctx: Ssh2.AuthContext) => {
          if (refused) return ctx.reject([]);
          // Every answer waits while the address is in backoff, valid tokens included: timing tells nothing.
          setTimeout(guard('ssh authentication: answer', () => answer(ctx), (_error) => (ctx.reject([]), fail())), backoff.delayMs(address));
        },
        (_error, ctx) => (ctx.reject([]), fail()),
      ),
    );

    function answer(ctx: Ssh2.AuthContext): void {
      // The client went away while its answer waited: nothing to answer, and no connection to register.
      if (!clients.has(client)) return;
      const checked = access.check(typeof ctx.username === 'string' ? ctx.username : '');
      if (!('grant' in checked)) {
        backoff.fail(address);
        refused = true;
        log.info({ ip: address, reason: checked.reason }, 'ssh login refused');
        const why = { unknown: 'is not valid', expired: 'has expired', revoked: 'was revoked' }[checked.reason];
        sendBanner(client, `Cove: this SSH access token ${why}. Create a new one (sandbox.createSshAccess(), or POST /api/sandbox/{id}/ssh-access) and use it as the user name.`);
        // No further methods are offered: with the token as user name, no other credential could help.
        return ctx.reject([]);
      }
      const agent = agentOf(checked.grant.sandboxId);
      if (typeof agent === 'string') {
        refused = true;
        log.info({ ip: address, sandboxId: checked.grant.sandboxId }, 'ssh login refused: sandbox not started');
        sendBanner(client, `Cove: ${agent}`);
        return ctx.reject([]);
      }
      grant = checked.grant;
      ctx.accept();
    }

    client.on(
      'ready',
      guard(
        'ssh ready',
        () => {
          clearTimeout(loginTimers.get(peer(info.ip, info.port)));
          loginTimers.delete(peer(info.ip, info.port));
          if (!grant || !clients.has(client)) return end();
          const g = grant;
          const conn: SshConnection = {
            client,
            grant: g,
            log: log.child({ sandboxId: g.sandboxId, tokenId: g.id }),
            wire,
            clientAddress: { address, port: info.port ?? 0 },
            sessions: new Set(),
            tunnels: new Set(),
            open: { sessions: 0, channels: 0, listeners: 0 },
            target: () => (g.expiresAt <= new Date().toISOString() ? 'Cove: this SSH access token has expired.' : agentOf(g.sandboxId)),
            tunnel: (agent, where) =>
              openAgentTunnel(agent, where).then((socket) => {
                if (!clients.has(client)) {
                  socket.destroy();
                  throw new Error('the client has gone');
                }
                conn.tunnels.add(socket);
                socket.once('close', () => conn.tunnels.delete(socket));
                // SSH traffic is activity: the auto-stop timer does not stop a sandbox someone works in.
                const sandboxId = g.sandboxId;
                socket.on('data', guard('ssh activity', () => sandboxes.touch(sandboxId), () => {}));
                return socket;
              }),
            end,
          };
          c = conn;
          let set = byToken.get(g.id);
          if (!set) byToken.set(g.id, (set = new Set()));
          set.add(conn);
          conn.log.info({ ip: address }, 'ssh login');
          opts.metrics?.sshOpened();
          const fw = (forwards = createForwards(conn));

          client.on(
            'session',
            guard(
              'ssh session',
              (accept: () => Ssh2.Session, reject: () => void) => {
                if (conn.open.sessions >= MAX_SESSIONS) return reject();
                const session = accept();
                if (session) bridgeSession(session, conn);
              },
              (_error, _accept, reject) => (reject(), fail()),
            ),
          );
          client.on(
            'tcpip',
            guard(
              'ssh direct-tcpip',
              (accept: () => Ssh2.ServerChannel, reject: () => void, info: unknown) => openDirect(conn, accept, reject, info),
              (_error, _accept, reject) => (reject(), fail()),
            ),
          );
          client.on(
            'request',
            guard(
              'ssh global request',
              (accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined, name: string, info: unknown) => {
                if (name === 'tcpip-forward') fw.listen(accept, reject, info);
                else if (name === 'cancel-tcpip-forward') fw.cancel(accept, reject, info);
                else reject?.();
              },
              (_error, _accept, reject) => (reject?.(), fail()),
            ),
          );
        },
        fail,
      ),
    );
  }

  // The gateway's own listener hands each socket to ssh2 (injectSocket), so every connection is bounded from its
  // first byte: one that has not logged in LOGIN_TIMEOUT_MS after it was accepted (no ident line, a stalled key
  // exchange, no login) is dropped.
  const listener = net.createServer(
    guard(
      'ssh accept',
      (socket: net.Socket) => {
        socket.on('error', () => {});
        const key = peer(socket.remoteAddress, socket.remotePort);
        const timer = setTimeout(() => socket.destroy(), LOGIN_TIMEOUT_MS);
        loginTimers.set(key, timer);
        socket.once('close', () => {
          clearTimeout(timer);
          if (loginTimers.get(key) === timer) loginTimers.delete(key);
        });
        server.injectSocket(socket);
      },
      (_error, socket) => socket.destroy(),
    ),
  );
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(opts.port, opts.host, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  listener.on('error', (err: Error) => log.error({ err: err.message }, 'ssh gateway error'));
  server.on('error', (err: Error) => log.error({ err: err.message }, 'ssh gateway error'));
  const port = (listener.address() as net.AddressInfo).port;

  return {
    port,
    async close() {
      unsubscribe();
      for (const client of clients) client.end();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/**
 * Sends an SSH_MSG_USERAUTH_BANNER with a per-connection message (ssh2 only sends the one banner fixed in the server
 * config, before the user name is known). Goes through ssh2's private packet writer (`sendRawSshMessage`); should an
 * ssh2 update break it, the message is lost and the login is still refused.
 */
function sendBanner(client: Ssh2.Connection, message: string): void {
  try {
    sendRawSshMessage(client, userauthBanner(message));
  } catch {
    /* no banner; the refusal itself still happens */
  }
}

/** The payload of a USERAUTH_BANNER: message number, the text (a line), an empty language tag. */
function userauthBanner(message: string): Buffer {
  const text = Buffer.from(`${message}\r\n`, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(text.length);
  return Buffer.concat([Buffer.from([MSG_USERAUTH_BANNER]), len, text, Buffer.alloc(4)]);
}
