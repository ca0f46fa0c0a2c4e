import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex, Writable } from 'node:stream';
import type * as NodePty from 'node-pty';
import {
  FRAME,
  FrameDecoder,
  frameHeader,
  jsonFrame,
  SshResize,
  SshSessionStart,
  SshSignal,
  type FrameType,
  type SshExit,
  type SshListenEvent,
} from '../../../wire/ssh';
import { childEnv, type SandboxContext } from '../system/context';
import { loadNodePty } from '../system/node-pty';
import { loginShell } from '../system/shell';
import { splice } from '../../../lib/net/splice';
import { signalGroup, STOP_GRACE_MS } from '../system/process-group';
import { sftpServer } from './sftp';
import { CoveError } from '../../../lib/errors';

/** How long an announced forwarded connection waits for the gateway to take it. */
const ACCEPT_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 10_000;

const STDIN_TYPES: ReadonlySet<number> = new Set([FRAME.stdin]);

/**
 * A tunnel the service agreed to open, not yet joined to its socket: `attach` joins it to the socket once that is
 * switched to the tunnel protocol (`head`: bytes that arrived with the request), `abandon` lets it go when the socket
 * is gone first.
 */
export interface SshTunnel {
  attach(socket: Duplex, head: Buffer): void;
  abandon(): void;
}

interface Running {
  pid?: number;
  kill(signal: NodeJS.Signals): void;
}

/**
 * The sandbox side of SSH. The proxy's gateway terminates the client's SSH and opens one tunnel per channel: sessions
 * (login shell, command, SFTP server; with or without a terminal) run here as the sandbox user; direct-tcpip
 * connects from inside the sandbox; tcpip-forward listens inside it and hands each connection back to the gateway.
 * Knows nothing of HTTP: it works on sockets already switched to the tunnel protocol, and what it must refuse
 * (an unknown connection, a port it cannot reach or bind) it refuses with a CoveError before any socket is handed to it.
 */
export function createSshService(ctx: SandboxContext) {
  const running = new Set<Running>();
  const listeners = new Set<net.Server>();
  const pending = new Map<string, net.Socket>();

  /** Sessions start in the user's home like OpenSSH's, or the work dir when the home does not exist. */
  function startDir(): string {
    try {
      if (statSync(ctx.identity.home).isDirectory()) return ctx.identity.home;
    } catch {
      /* below */
    }
    return ctx.workdir;
  }

  /** Runs one session on a switched socket, speaking the frames of wire/ssh.ts (`head`: bytes already read). */
  function session(socket: Duplex, head: Buffer): void {
    const sock = socket as net.Socket;
    sock.setNoDelay?.(true);
    let proc: { stdin?: Writable; write?: (d: Buffer) => void; resize?: (r: SshResize) => void; pid?: number; onEof?: () => void } | undefined;
    let paused: Array<{ pause(): void; resume(): void }> = [];
    let outputPaused = false;
    let finished = false;

    const send = (type: FrameType, data: Buffer) => {
      if (!socket.writable) return true;
      sock.cork?.();
      socket.write(frameHeader(type, data.length));
      const ok = socket.write(data);
      sock.uncork?.();
      return ok;
    };
    /** Output towards the gateway: stop reading the process while the socket is full. */
    const output = (type: FrameType) => (chunk: Buffer) => {
      if (!send(type, chunk) && !outputPaused) {
        outputPaused = true;
        for (const p of paused) p.pause();
        socket.once('drain', () => {
          outputPaused = false;
          for (const p of paused) p.resume();
        });
      }
    };
    const finish = (exit: SshExit) => {
      if (finished) return;
      finished = true;
      if (socket.writable) socket.end(jsonFrame(FRAME.exit, exit));
    };
    const failure = (message: string) => {
      finished = true;
      if (socket.writable) socket.end(jsonFrame(FRAME.failure, { message }));
    };

    const decoder = new FrameDecoder(
      STDIN_TYPES,
      (_type, chunk) => {
        if (proc?.write) proc.write(chunk);
        else if (proc?.stdin && !proc.stdin.write(chunk)) {
          // The process reads slower than the client types or uploads: stop reading the tunnel meanwhile.
          socket.pause();
          proc.stdin.once('drain', () => socket.resume());
        }
      },
      (type, payload) => {
        try {
          const json: unknown = payload.length ? JSON.parse(payload.toString()) : undefined;
          if (type === FRAME.start) {
            if (proc) throw new Error('the session has started already');
            start(SshSessionStart.parse(json));
          } else if (type === FRAME.stdinEof) proc?.onEof?.();
          else if (type === FRAME.resize) proc?.resize?.(SshResize.parse(json));
          else if (type === FRAME.signal) {
            const { signal } = SshSignal.parse(json);
            signalGroup(proc?.pid, `SIG${signal}` as NodeJS.Signals);
          }
        } catch (err) {
          if (!proc) failure((err as Error).message);
        }
      },
    );

    function start(req: ReturnType<typeof SshSessionStart.parse>): void {
      const shell = loginShell(ctx.identity) ?? '/bin/sh';
      const env = childEnv(ctx, req.env);
      if (req.client) {
        env.SSH_CLIENT = `${req.client.address} ${req.client.port} 22`;
        env.SSH_CONNECTION = `${req.client.address} ${req.client.port} 127.0.0.1 22`;
      }
      if (req.command !== undefined) env.SSH_ORIGINAL_COMMAND = req.command;
      const cwd = startDir();

      if (req.pty && req.kind !== 'sftp') {
        let p: NodePty.IPty;
        try {
          p = loadNodePty().spawn(shell, req.kind === 'exec' ? ['-c', req.command ?? ''] : ['-l'], {
            name: req.pty.term || 'xterm-256color',
            cols: req.pty.cols,
            rows: req.pty.rows,
            cwd,
            env: { ...env, TERM: req.pty.term || 'xterm-256color' },
            encoding: null,
            ...ctx.spawnAs,
          });
        } catch (err) {
          return failure(`Could not start the terminal: ${(err as Error).message}`);
        }
        const entry: Running = { pid: p.pid, kill: (signal) => signalGroup(p.pid, signal) };
        running.add(entry);
        paused = [p];
        proc = { pid: p.pid, write: (d) => p.write(d), resize: (r) => p.resize(r.cols, r.rows) };
        p.onData(output(FRAME.stdout) as unknown as (d: string) => void);
        p.onExit(({ exitCode, signal }) => {
          running.delete(entry);
          // Output the kernel still holds comes before the exit.
          setImmediate(() => finish(signal ? { signal: signalName(signal), coreDumped: false } : { code: exitCode }));
        });
        return;
      }

      let child: ChildProcess;
      if (req.kind === 'sftp') {
        // OpenSSH's own SFTP server, as sshd runs it for the subsystem: as the user, in their home.
        const server = sftpServer();
        if (!server) {
          failure("SFTP needs OpenSSH's sftp-server, which neither the image nor the agent bundle has (install openssh-sftp-server)");
          return;
        }
        child = spawn(server, [], { cwd, env: { ...env, HOME: ctx.identity.home }, stdio: 'pipe', detached: true, ...ctx.spawnAs });
      } else {
        // Like sshd: `shell -c command`, or a login shell reading commands from stdin.
        const args = req.kind === 'exec' ? ['-c', req.command ?? ''] : [];
        const argv0 = req.kind === 'exec' ? shell : `-${path.basename(shell)}`;
        child = spawn(shell, args, { cwd, env, argv0, stdio: 'pipe', detached: true, ...ctx.spawnAs });
      }
      const entry: Running = { pid: child.pid, kill: (signal) => signalGroup(child.pid, signal) };
      running.add(entry);
      child.stdin!.on('error', () => {});
      paused = [child.stdout!, child.stderr!];
      proc = { pid: child.pid, stdin: child.stdin!, onEof: () => child.stdin!.end() };
      child.stdout!.on('data', output(FRAME.stdout));
      child.stderr!.on('data', output(FRAME.stderr));
      child.once('error', (err) => {
        running.delete(entry);
        failure(`Could not start ${req.kind === 'sftp' ? 'the SFTP server' : shell}: ${err.message}`);
      });
      // 'close' comes after the last output.
      child.once('close', (code, signal) => {
        running.delete(entry);
        finish(signal ? { signal: signal.replace(/^SIG/, ''), coreDumped: false } : { code: code ?? 0 });
      });
    }

    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    if (head.length) socket.emit('data', head);
    socket.on('error', () => {});
    socket.once('close', () => {
      if (finished || !proc) return;
      // The client went away: like sshd, hang up a terminal; a command loses its pipes (EOF, then SIGPIPE on write).
      if (proc.write) signalGroup(proc.pid, 'SIGHUP');
      else {
        proc.stdin?.end();
        for (const p of paused) (p as unknown as Duplex).destroy();
      }
    });
  }

  /**
   * direct-tcpip: a connection to host:port as seen from inside the sandbox (loopback-bound servers included).
   * Rejects with PORT_NOT_LISTENING when it cannot be made.
   */
  async function connect(host: string, port: number): Promise<SshTunnel> {
    const attempt = (h: string) =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: h, port });
        s.setTimeout(CONNECT_TIMEOUT_MS, () => s.destroy(new Error('connection timed out')));
        s.once('connect', () => {
          s.setTimeout(0);
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
    let upstream: net.Socket;
    try {
      // `localhost` may mean 127.0.0.1 or ::1 depending on how the server bound; try both like a browser would.
      upstream = await (host === 'localhost' ? attempt('127.0.0.1').catch(() => attempt('::1')) : attempt(host));
    } catch (err) {
      throw new CoveError('PORT_NOT_LISTENING', `Could not connect to ${host}:${port} in the sandbox: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return {
      attach(socket, head) {
        upstream.setNoDelay(true);
        (socket as net.Socket).setNoDelay?.(true);
        if (head.length) upstream.write(head);
        splice(socket, upstream);
      },
      abandon: () => upstream.destroy(),
    };
  }

  /**
   * tcpip-forward: listens inside the sandbox; once attached, announces the port and then each connection as a JSON
   * line, until the tunnel closes. Rejects when it cannot bind: CONFLICT for a port in use, FORBIDDEN for one the
   * sandbox user may not bind, INVALID_REQUEST otherwise.
   */
  async function listen(address: string, port: number): Promise<SshTunnel> {
    const server = net.createServer({ pauseOnConnect: true });
    // As OpenSSH: empty or `*` is every address, `localhost` is loopback.
    const host = address === '' || address === '*' || address === '0.0.0.0' ? undefined : address === 'localhost' ? '127.0.0.1' : address;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const code = err.code === 'EADDRINUSE' ? 'CONFLICT' : err.code === 'EACCES' ? 'FORBIDDEN' : 'INVALID_REQUEST';
        reject(new CoveError(code, `Cannot listen on ${address || '*'}:${port} in the sandbox: ${err.code ?? err.message}`));
      });
      server.listen({ host, port }, () => resolve());
    });
    listeners.add(server);
    server.on('error', () => {});
    const stop = () => {
      server.close();
      listeners.delete(server);
    };
    return {
      attach(socket) {
        const mine = new Set<string>();
        const line = (event: SshListenEvent) => socket.writable && socket.write(`${JSON.stringify(event)}\n`);
        line({ type: 'listening', port: (server.address() as net.AddressInfo).port });
        server.on('connection', (conn) => {
          const id = randomUUID();
          pending.set(id, conn);
          mine.add(id);
          conn.on('error', () => {});
          const timer = setTimeout(() => {
            if (pending.get(id) === conn) pending.delete(id);
            conn.destroy();
          }, ACCEPT_TIMEOUT_MS);
          timer.unref();
          conn.once('close', () => {
            clearTimeout(timer);
            mine.delete(id);
            if (pending.get(id) === conn) pending.delete(id);
          });
          line({ type: 'connection', id, remoteAddress: conn.remoteAddress ?? '', remotePort: conn.remotePort ?? 0 });
        });
        // The gateway closes the tunnel on cancel-tcpip-forward or when the client disconnects.
        socket.on('error', () => {});
        socket.once('close', () => {
          stop();
          for (const id of mine) pending.get(id)?.destroy();
        });
        socket.resume();
      },
      abandon: stop,
    };
  }

  /** Takes an announced connection, to hand it to the gateway; NOT_FOUND when it closed or timed out. */
  function accept(id: string): SshTunnel {
    const conn = pending.get(id);
    if (!conn) throw new CoveError('NOT_FOUND', 'No such pending connection (it closed or timed out)');
    pending.delete(id);
    return {
      attach(socket, head) {
        conn.setNoDelay(true);
        (socket as net.Socket).setNoDelay?.(true);
        if (head.length) conn.write(head);
        splice(socket, conn);
        conn.resume();
      },
      abandon: () => conn.destroy(),
    };
  }

  return {
    session,
    connect,
    listen,
    accept,
    /** Ends every SSH process (SIGTERM, then SIGKILL after a grace period) and every forwarded listener. */
    async close(): Promise<void> {
      for (const s of listeners) s.close();
      for (const c of pending.values()) c.destroy();
      if (!running.size) return;
      for (const r of running) r.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref());
      for (const r of running) r.kill('SIGKILL');
    },
  };
}
export type SshService = ReturnType<typeof createSshService>;

/** node-pty reports signals as numbers; SSH wants names without SIG. */
function signalName(signal: number): string {
  const name = Object.entries(os.constants.signals).find(([, n]) => n === signal)?.[0];
  return name ? name.replace(/^SIG/, '') : 'KILL';
}
