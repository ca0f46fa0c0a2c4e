import { createRequire } from 'node:module';
import type net from 'node:net';
import type { Logger } from 'pino';
import type * as Ssh2 from 'ssh2';
import { FRAME, FrameDecoder, frameHeader, jsonFrame, SshExit, SshFailure, SshListenEvent, SshSignal, type FrameType, type SshSessionStart } from '../../../wire/ssh';
import type { SandboxService } from '../sandboxes/service';
import type { SshAccess, SshGrant } from './access';
import { openAgentTunnel, type AgentEndpoint } from './agent-link';
import { createLoginBackoff } from './backoff';
import { loadOrCreateHostKey } from './host-key';

/**
 * ssh2, loaded at run time from node_modules rather than bundled: its optional native crypto binding (the fast
 * ciphers) cannot be bundled, and an esbuild bundle would fail on it.
 */
const loadSsh2 = () => createRequire(import.meta.url)('ssh2') as typeof Ssh2;

/** A login must complete within this time, or the connection is dropped. */
const LOGIN_TIMEOUT_MS = 60_000;
const KEEPALIVE_MS = 30_000;
const STREAM_TYPES: ReadonlySet<number> = new Set([FRAME.stdout, FRAME.stderr]);
/** USERAUTH_BANNER (RFC 4252 §5.4). */
const MSG_USERAUTH_BANNER = 53;

export interface SshGatewayOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Where the host key lives. */
  dataDir: string;
  access: SshAccess;
  sandboxes: SandboxService;
  log: Logger;
}

export interface SshGateway {
  /** The bound port. */
  port: number;
  close(): Promise<void>;
}

/** One authenticated client connection. */
interface Conn {
  client: Ssh2.Connection;
  grant: SshGrant;
  sessions: Set<Ssh2.ServerChannel>;
  /** Every tunnel opened for this connection: they all close with it, even one still waiting for its channel. */
  tunnels: Set<net.Socket>;
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
  const byToken = new Map<string, Set<Conn>>();
  const clients = new Set<Ssh2.Connection>();

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

  const unsubscribe = access.onRevoked((ids) => {
    for (const id of ids) {
      for (const conn of byToken.get(id) ?? []) {
        // Each session is told and closed as a channel first (exit status 255, as ssh reports a lost connection):
        // OpenSSH prints a channel's output only when it gets to it, and exits at once on a disconnect that
        // arrives in the same read, losing the message. The connection itself ends a moment later.
        for (const ch of conn.sessions) {
          ch.stderr.write('\r\ncove: this SSH access token was revoked; the connection is closed.\r\n');
          ch.exit(255);
          ch.end();
        }
        log.info({ sandboxId: conn.grant.sandboxId, tokenId: id }, 'ssh connection closed: token revoked');
        setTimeout(() => conn.client.end(), 500).unref();
      }
    }
  });

  const server = new ssh2.Server({ hostKeys: [hostKey], ident: 'Cove', keepaliveInterval: KEEPALIVE_MS, keepaliveCountMax: 4 }, (client, info) => {
    clients.add(client);
    const address = info.ip;
    let conn: Conn | undefined;
    let refused = false;
    const loginTimer = setTimeout(() => client.end(), LOGIN_TIMEOUT_MS);
    client.on('error', (err) => log.debug({ ip: address, err: err.message }, 'ssh client error'));
    client.on('close', () => {
      clearTimeout(loginTimer);
      clients.delete(client);
      if (conn) {
        byToken.get(conn.grant.id)?.delete(conn);
        for (const socket of conn.tunnels) socket.destroy();
      }
    });

    client.on('authentication', (ctx) => {
      if (refused) return ctx.reject([]);
      // Every answer waits while the address is in backoff, valid tokens included: timing tells nothing.
      setTimeout(() => {
        const checked = access.check(ctx.username);
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
        conn = { client, grant: checked.grant, sessions: new Set(), tunnels: new Set() };
        let set = byToken.get(checked.grant.id);
        if (!set) byToken.set(checked.grant.id, (set = new Set()));
        set.add(conn);
        ctx.accept();
      }, backoff.delayMs(address));
    });

    client.on('ready', () => {
      clearTimeout(loginTimer);
      const c = conn!;
      log.info({ ip: address, sandboxId: c.grant.sandboxId, tokenId: c.grant.id }, 'ssh login');
      const clientAddress = { address, port: info.port };
      /** Opens a tunnel that lives no longer than this connection. */
      const tunnel = (agent: AgentEndpoint, where: string) =>
        openAgentTunnel(agent, where).then((socket) => {
          if (!clients.has(client)) {
            socket.destroy();
            throw new Error('the client has gone');
          }
          c.tunnels.add(socket);
          socket.once('close', () => c.tunnels.delete(socket));
          return socket;
        });
      /** The sandbox for a new channel: token not expired since login, sandbox still started. */
      const target = (): AgentEndpoint | string =>
        c.grant.expiresAt <= new Date().toISOString() ? 'Cove: this SSH access token has expired.' : agentOf(c.grant.sandboxId);

      client.on('session', (acceptSession) => {
        const session = acceptSession();
        bridgeSession(session, c, target, clientAddress, tunnel);
      });

      client.on('tcpip', (accept, reject, info) => {
        const agent = target();
        if (typeof agent === 'string') return reject();
        tunnel(agent, `/ssh/connect?host=${encodeURIComponent(info.destIP)}&port=${info.destPort}`).then(
          (socket) => {
            const channel = accept();
            pipeChannel(channel, socket);
          },
          (err: Error) => {
            log.debug({ sandboxId: c.grant.sandboxId, err: err.message }, 'ssh direct-tcpip failed');
            reject();
          },
        );
      });

      const forwards = new Map<string, net.Socket>();
      client.on('request', (accept, reject, name, info) => {
        if (name === 'tcpip-forward') {
          const agent = target();
          if (typeof agent === 'string') return reject?.();
          const bind = info as Ssh2.TcpipBindInfo;
          tunnel(agent, `/ssh/listen?address=${encodeURIComponent(bind.bindAddr)}&port=${bind.bindPort}`).then(
            (socket) => listenForward(socket, bind, agent, c, forwards, accept, tunnel),
            (err: Error) => {
              log.debug({ sandboxId: c.grant.sandboxId, err: err.message }, 'ssh tcpip-forward failed');
              reject?.();
            },
          );
        } else if (name === 'cancel-tcpip-forward') {
          const bind = info as Ssh2.TcpipBindInfo;
          const socket = forwards.get(`${bind.bindAddr}:${bind.bindPort}`);
          if (!socket) return reject?.();
          socket.destroy();
          accept?.();
        } else reject?.();
      });
      client.once('close', () => {
        for (const socket of forwards.values()) socket.destroy();
      });
    });
  });

  /** Reads a listen tunnel's events: answers the forward request, then opens a forwarded-tcpip channel per connection. */
  function listenForward(
    socket: net.Socket,
    bind: Ssh2.TcpipBindInfo,
    agent: AgentEndpoint,
    c: Conn,
    forwards: Map<string, net.Socket>,
    accept: ((port?: number) => void) | undefined,
    tunnel: (agent: AgentEndpoint, where: string) => Promise<net.Socket>,
  ): void {
    let buffered = '';
    let boundPort = bind.bindPort;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      buffered += text;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let event: SshListenEvent;
        try {
          event = SshListenEvent.parse(JSON.parse(line));
        } catch {
          socket.destroy();
          return;
        }
        if (event.type === 'listening') {
          boundPort = event.port;
          // OpenSSH cancels with the port it asked for (0 included) or the one it got: either finds the listener.
          forwards.set(`${bind.bindAddr}:${bind.bindPort}`, socket);
          forwards.set(`${bind.bindAddr}:${boundPort}`, socket);
          accept?.(boundPort);
          continue;
        }
        const { id, remoteAddress, remotePort } = event;
        tunnel(agent, `/ssh/accept/${encodeURIComponent(id)}`).then(
          (conn) => {
            c.client.forwardOut(bind.bindAddr, boundPort, remoteAddress, remotePort, (err, channel) => {
              if (err) return conn.destroy();
              pipeChannel(channel, conn);
            });
          },
          () => {},
        );
      }
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      if (forwards.get(`${bind.bindAddr}:${bind.bindPort}`) === socket) forwards.delete(`${bind.bindAddr}:${bind.bindPort}`);
      if (forwards.get(`${bind.bindAddr}:${boundPort}`) === socket) forwards.delete(`${bind.bindAddr}:${boundPort}`);
    });
    socket.resume();
  }

  /**
   * One session channel. pty-req, env and window-change are remembered until shell/exec/subsystem starts the session
   * in the sandbox; after that, stdin, EOF, resizes and signals go to it, and its output and exit status come back.
   */
  function bridgeSession(
    session: Ssh2.Session,
    c: Conn,
    target: () => AgentEndpoint | string,
    client: { address: string; port: number },
    tunnel: (agent: AgentEndpoint, where: string) => Promise<net.Socket>,
  ): void {
    let pty: { term: string; cols: number; rows: number } | undefined;
    const env: Record<string, string> = {};
    let link: net.Socket | undefined;
    let started = false;

    const sendFrame = (type: FrameType, data: Buffer) => {
      if (!link?.writable) return true;
      link.cork();
      link.write(frameHeader(type, data.length));
      const ok = link.write(data);
      link.uncork();
      return ok;
    };

    session.on('pty', (accept, reject, info) => {
      pty = { term: info.term || 'xterm-256color', cols: Math.max(1, info.cols || 80), rows: Math.max(1, info.rows || 24) };
      accept?.();
    });
    session.on('window-change', (accept, reject, info) => {
      if (pty) {
        pty.cols = Math.max(1, info.cols);
        pty.rows = Math.max(1, info.rows);
        if (link) sendFrame(FRAME.resize, Buffer.from(JSON.stringify({ cols: pty.cols, rows: pty.rows })));
      }
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      // Any name a shell could hold; values are the user's own business in their own sandbox.
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(info.key) || info.val.includes('\0')) return reject?.();
      env[info.key] = info.val;
      accept?.();
    });
    session.on('signal', (accept, reject, info) => {
      const parsed = SshSignal.safeParse({ signal: info.name });
      if (!parsed.success || !link) return reject?.();
      sendFrame(FRAME.signal, Buffer.from(JSON.stringify(parsed.data)));
      accept?.();
    });
    session.on('shell', (accept, reject) => start({ kind: 'shell' }, accept, reject));
    session.on('exec', (accept, reject, info) => start({ kind: 'exec', command: info.command }, accept, reject));
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp') return reject?.();
      start({ kind: 'sftp' }, accept, reject);
    });

    function start(what: Pick<SshSessionStart, 'kind' | 'command'>, accept: (() => Ssh2.ServerChannel) | undefined, reject: (() => void) | undefined): void {
      if (started || !accept) return reject?.();
      started = true;
      const channel = accept();
      c.sessions.add(channel);
      channel.once('close', () => c.sessions.delete(channel));
      // Input waits in the channel (and the client's window) until the sandbox side is ready.
      channel.pause();
      const giveUp = (message: string) => {
        channel.stderr.write(`${message}\r\n`);
        channel.exit(255);
        channel.end();
      };
      const agent = target();
      if (typeof agent === 'string') return giveUp(agent);
      tunnel(agent, '/ssh/session').then(
        (socket) => {
          link = socket;
          wire(channel, socket, { ...what, pty: what.kind === 'sftp' ? undefined : pty, env, client });
        },
        (err: Error) => giveUp(`cove: could not reach the sandbox: ${err.message}`),
      );
    }

    function wire(channel: Ssh2.ServerChannel, socket: net.Socket, req: SshSessionStart): void {
      let exited = false;
      sendFrame(FRAME.start, Buffer.from(JSON.stringify(req)));
      const decoder = new FrameDecoder(
        STREAM_TYPES,
        (type, chunk) => {
          const out = type === FRAME.stdout ? channel : channel.stderr;
          if (!out.write(chunk)) {
            // The client reads slower than the sandbox writes: stop reading the tunnel (the agent pauses the process).
            socket.pause();
            out.once('drain', () => socket.resume());
          }
        },
        (type, payload) => {
          const json = JSON.parse(payload.toString());
          if (type === FRAME.exit) {
            exited = true;
            const exit = SshExit.parse(json);
            if ('code' in exit) channel.exit(exit.code);
            else channel.exit(exit.signal, exit.coreDumped, '');
            channel.end();
          } else if (type === FRAME.failure) {
            exited = true;
            channel.stderr.write(`cove: ${SshFailure.parse(json).message}\r\n`);
            channel.exit(255);
            channel.end();
          }
        },
      );
      socket.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'ssh: bad frame from the agent');
          socket.destroy();
        }
      });
      socket.on('error', () => {});
      socket.once('close', () => {
        if (exited) return;
        exited = true;
        channel.stderr.write('\r\ncove: the connection to the sandbox was lost (stopped or deleted?)\r\n');
        channel.exit(255);
        channel.end();
      });
      channel.on('data', (chunk: Buffer) => {
        if (!sendFrame(FRAME.stdin, chunk)) {
          channel.pause();
          socket.once('drain', () => channel.resume());
        }
      });
      channel.once('end', () => sendFrame(FRAME.stdinEof, Buffer.alloc(0)));
      // The client closed the channel (or the connection ended): the sandbox side hangs up.
      channel.once('close', () => setImmediate(() => socket.destroy()));
      channel.resume();
      socket.resume();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err: Error) => log.error({ err: err.message }, 'ssh gateway error'));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    async close() {
      unsubscribe();
      for (const client of clients) client.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Raw bytes both ways between an SSH channel and a tunnel, with backpressure (pipe) and half-close. */
function pipeChannel(channel: Ssh2.Channel | Ssh2.ServerChannel, socket: net.Socket): void {
  socket.pipe(channel);
  channel.pipe(socket);
  const close = () => {
    socket.destroy();
    channel.destroy();
  };
  socket.on('error', close);
  channel.on('error', close);
  socket.once('close', () => channel.end());
  channel.once('close', () => socket.destroy());
  socket.resume();
}

/**
 * Sends an SSH_MSG_USERAUTH_BANNER with a per-connection message (ssh2 only sends the one banner fixed in the server
 * config, before the user name is known). Uses ssh2's internal packet writer; should that ever change, the message is
 * lost and the login is still refused.
 */
function sendBanner(client: Ssh2.Connection, message: string): void {
  try {
    const proto = (client as unknown as { _protocol: any })._protocol;
    const { sendPacket } = createRequire(import.meta.url)('ssh2/lib/protocol/utils.js');
    const text = `${message}\r\n`;
    const len = Buffer.byteLength(text);
    let p = proto._packetRW.write.allocStart;
    const packet = proto._packetRW.write.alloc(1 + 4 + len + 4);
    packet[p] = MSG_USERAUTH_BANNER;
    packet.writeUInt32BE(len, ++p);
    packet.write(text, (p += 4), len, 'utf8');
    packet.writeUInt32BE(0, p + len);
    sendPacket(proto, proto._packetRW.write.finalize(packet));
  } catch {
    /* no banner; the refusal itself still happens */
  }
}
