import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import os from 'node:os';
import type * as NodePty from 'node-pty';
import type { PtyCreateRequest, PtyExit, PtySessionInfo } from '../../../wire/pty';
import { CoveError } from '../../../lib/errors';
import { guard } from '../../../lib/guard';
import { childEnv, type SandboxContext } from '../system/context';
import { loadNodePty } from '../system/node-pty';
import { loginShell } from '../system/shell';
import { resolvePath } from '../system/paths';
import { STOP_GRACE_MS } from '../system/process-group';
import { signalSession } from './kill';
import { createScreen, type Screen } from './screen';

const DEFAULT_COLS = 80;
const DEFAULT_ROWS = 24;
/** Output bytes queued towards one client (or the screen emulator) above which the PTY stops being read… */
const HIGH_WATER = 1024 * 1024;
/** …and below which (for all of them) reading resumes. */
const LOW_WATER = 256 * 1024;
/** A client that keeps the PTY paused this long is dropped, so one stalled client cannot freeze a terminal. */
const STALL_MS = 20_000;

/**
 * Where one attached client receives a PTY's output. The channel (WebSocket) implements it; the service knows
 * nothing of sockets.
 */
export interface PtySink {
  /** Sends output; `flushed` runs once the bytes have left the agent (it drives flow control). */
  write(data: Uint8Array, flushed: () => void): void;
  /** The process ended; called after the last output. The client is detached afterwards. */
  exit(result: PtyExit): void;
  /** The client fell too far behind and is detached. */
  drop(reason: string): void;
}

/** A client's hold on a PTY: its keystrokes in, and the way out. */
export interface PtyAttachment {
  /** Writes keyboard input to the terminal; ignored once the process has ended. */
  input(data: Uint8Array | string): void;
  /** Detaches the client. The PTY keeps running. */
  detach(): void;
}

interface Client {
  sink: PtySink;
  /** Bytes handed to the sink (or queued for it) and not yet flushed. */
  pending: number;
  /** False until the replay of the screen has been sent; output meanwhile waits in `queue`. */
  live: boolean;
  queue: Uint8Array[];
}

interface Session {
  id: string;
  cwd: string;
  envs: Record<string, string>;
  cols: number;
  rows: number;
  lazyStart: boolean;
  createdAt: Date;
  pty?: NodePty.IPty;
  pid?: number;
  exit?: PtyExit;
  screen: Screen;
  clients: Set<Client>;
  /** Output bytes given to the screen emulator and not yet parsed. */
  screenPending: number;
  paused: boolean;
  stallTimer?: NodeJS.Timeout;
  /** Resolves when the process has ended (or at once if it never started). */
  ended: Promise<void>;
  markEnded: () => void;
}

/**
 * Interactive terminals. Each PTY runs the user's login shell in its own session and process group, keeps running
 * whether or not clients are attached, and feeds a headless terminal emulator so that any client attaching later
 * first receives the current screen. Any number of clients may attach at once: all see the output, all can type.
 * After the process ends its exit code stays until the session is deleted.
 */
export function createPtyService(ctx: SandboxContext) {
  const sessions = new Map<string, Session>();

  function find(id: string): Session {
    const s = sessions.get(id);
    if (!s) throw new CoveError('PTY_NOT_FOUND', `PTY session ${id} not found`);
    return s;
  }

  function info(s: Session): PtySessionInfo {
    return {
      id: s.id,
      active: s.pty !== undefined && s.exit === undefined,
      cols: s.cols,
      rows: s.rows,
      cwd: s.cwd,
      envs: s.envs,
      createdAt: s.createdAt.toISOString(),
      lazyStart: s.lazyStart,
      processId: s.pid,
      exitCode: s.exit?.exitCode,
      exitReason: s.exit?.exitReason,
      clients: s.clients.size,
    };
  }

  function resolveCwd(cwd: string | undefined): string {
    const dir = resolvePath(ctx.workdir, cwd ?? '.');
    let isDir: boolean;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (err) {
      throw new CoveError('FILE_NOT_FOUND', `Working directory does not exist: ${dir}`, (err as Error).message);
    }
    if (!isDir) throw new CoveError('NOT_A_DIRECTORY', `Working directory is not a directory: ${dir}`);
    return dir;
  }

  function pickShell(): string {
    const shell = loginShell(ctx.identity);
    if (!shell) throw new CoveError('INTERNAL_ERROR', 'No shell to run in the terminal', `none of ${ctx.identity.shell}, /bin/bash, /bin/sh is executable`);
    return shell;
  }

  function start(s: Session): void {
    const env = childEnv(ctx, s.envs);
    let p: NodePty.IPty;
    try {
      const nodePty = loadNodePty();
      p = nodePty.spawn(pickShell(), ['-l'], {
        // Clients are xterm-compatible terminals whatever TERM the agent itself inherited; a request may override.
        name: s.envs.TERM ?? 'xterm-256color',
        cols: s.cols,
        rows: s.rows,
        cwd: s.cwd,
        env,
        // Raw bytes: output goes to clients as binary frames untouched, and the emulator decodes UTF-8 itself
        // across chunk boundaries.
        encoding: null,
        ...ctx.spawnAs,
      });
    } catch (err) {
      throw err instanceof CoveError ? err : new CoveError('INTERNAL_ERROR', 'Could not start the terminal', (err as Error).message);
    }
    s.pty = p;
    s.pid = p.pid;
    p.onData(guard('terminal output', (chunk: string) => output(s, chunk as unknown as Buffer), () => {}));
    p.onExit(
      guard(
        'terminal exit',
        ({ exitCode, signal }: { exitCode: number; signal?: number }) => {
          finish(s, describeExit(exitCode, signal));
        },
        () => {},
      ),
    );
  }

  function output(s: Session, chunk: Buffer): void {
    // Clients first: the emulator is only for later attaches and must not add to keystroke latency.
    for (const c of s.clients) send(s, c, chunk);
    s.screenPending += chunk.length;
    s.screen.write(chunk, () => {
      s.screenPending -= chunk.length;
      updateFlow(s);
    });
    updateFlow(s);
  }

  function send(s: Session, c: Client, chunk: Uint8Array): void {
    c.pending += chunk.length;
    if (!c.live) {
      c.queue.push(chunk);
      return;
    }
    c.sink.write(chunk, () => {
      c.pending -= chunk.length;
      updateFlow(s);
    });
  }

  /** Pauses reading the PTY while anyone downstream is far behind, so memory stays bounded. */
  function updateFlow(s: Session): void {
    if (!s.pty || s.exit) return;
    let over = s.screenPending > HIGH_WATER;
    let under = s.screenPending < LOW_WATER;
    for (const c of s.clients) {
      if (c.pending > HIGH_WATER) over = true;
      if (c.pending >= LOW_WATER) under = false;
    }
    if (!s.paused && over) {
      s.paused = true;
      s.pty.pause();
      armStallTimer(s);
    } else if (s.paused && under) {
      s.paused = false;
      clearTimeout(s.stallTimer);
      s.pty.resume();
    }
  }

  function armStallTimer(s: Session): void {
    clearTimeout(s.stallTimer);
    s.stallTimer = setTimeout(guard('terminal stall timer', () => dropStalled(s), () => {}), STALL_MS);
    s.stallTimer.unref();
  }

  /** Still paused after STALL_MS: the clients holding it up are dropped (they can attach again for the screen). */
  function dropStalled(s: Session): void {
    for (const c of s.clients) {
      if (c.pending < LOW_WATER) continue;
      s.clients.delete(c);
      c.sink.drop('The client did not read the terminal output for too long');
    }
    updateFlow(s);
    if (s.paused && !s.exit) armStallTimer(s);
  }

  function finish(s: Session, exit: PtyExit): void {
    s.exit = exit;
    clearTimeout(s.stallTimer);
    for (const c of s.clients) {
      // A client still waiting for its replay gets the exit after it (see attach).
      if (!c.live) continue;
      s.clients.delete(c);
      c.sink.exit(exit);
    }
    s.markEnded();
  }

  function create(req: PtyCreateRequest): PtySessionInfo {
    const id = req.id ?? randomUUID();
    if (sessions.has(id)) throw new CoveError('PTY_EXISTS', `PTY session ${id} already exists`);
    const cols = req.cols ?? DEFAULT_COLS;
    const rows = req.rows ?? DEFAULT_ROWS;
    let markEnded!: () => void;
    const ended = new Promise<void>((resolve) => (markEnded = resolve));
    const s: Session = {
      id,
      cwd: resolveCwd(req.cwd),
      envs: req.envs ?? {},
      cols,
      rows,
      lazyStart: req.lazyStart ?? false,
      createdAt: new Date(),
      screen: createScreen(cols, rows),
      clients: new Set(),
      screenPending: 0,
      paused: false,
      ended,
      markEnded,
    };
    if (!s.lazyStart) start(s);
    sessions.set(id, s);
    return info(s);
  }

  function attach(id: string, sink: PtySink): PtyAttachment {
    const s = find(id);
    if (!s.pty && !s.exit) start(s);
    const c: Client = { sink, pending: 0, live: false, queue: [] };
    s.clients.add(c);
    s.screen.snapshot((replay) => {
      if (!s.clients.has(c)) return; // detached before the replay was ready
      const flushed = (n: number) => () => {
        c.pending -= n;
        updateFlow(s);
      };
      if (replay) {
        const bytes = Buffer.from(replay);
        c.pending += bytes.length;
        sink.write(bytes, flushed(bytes.length));
      }
      for (const chunk of c.queue) sink.write(chunk, flushed(chunk.length));
      c.queue = [];
      c.live = true;
      if (s.exit) {
        s.clients.delete(c);
        sink.exit(s.exit);
      }
    });
    return {
      input(data) {
        if (s.pty && !s.exit && s.clients.has(c)) s.pty.write(typeof data === 'string' || Buffer.isBuffer(data) ? data : Buffer.from(data));
      },
      detach() {
        if (!s.clients.delete(c)) return;
        updateFlow(s);
      },
    };
  }

  return {
    /** Creates a PTY session; the shell starts now, or on the first attach with `lazyStart`. */
    create,
    /** Attaches a client: it receives the current screen, then live output, then the exit. */
    attach,
    list(): PtySessionInfo[] {
      return [...sessions.values()].map(info);
    },
    get(id: string): PtySessionInfo {
      return info(find(id));
    },
    /** Resizes the terminal (the program gets SIGWINCH) and the replay emulator with it. */
    resize(id: string, cols: number, rows: number): PtySessionInfo {
      const s = find(id);
      if (s.exit) throw new CoveError('SESSION_ENDED', `PTY session ${id} has exited; it cannot be resized`);
      s.cols = cols;
      s.rows = rows;
      try {
        s.pty?.resize(cols, rows);
      } catch {
        // The process ended a moment ago (its exit is on the way): nothing left to resize.
      }
      s.screen.resize(cols, rows);
      return info(s);
    },
    /** Kills the PTY's processes (clients then see the exit) and forgets the session. */
    kill(id: string): void {
      const s = find(id);
      sessions.delete(id);
      if (s.pty && !s.exit && s.pid) signalSession(s.pid, 'SIGKILL');
      else s.markEnded();
    },
    /** Ends every PTY: SIGTERM, then SIGKILL to what is left after a grace period. */
    async close(): Promise<void> {
      const running = [...sessions.values()].filter((s) => s.pty && !s.exit && s.pid);
      sessions.clear();
      // Interactive shells ignore SIGTERM; SIGHUP (the terminal hanging up) is what ends them cleanly.
      for (const s of running) {
        signalSession(s.pid!, 'SIGTERM');
        signalSession(s.pid!, 'SIGHUP');
      }
      const allEnded = Promise.all(running.map((s) => s.ended));
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)));
      await Promise.race([allEnded, grace]);
      clearTimeout(timer);
      for (const s of running) if (!s.exit) signalSession(s.pid!, 'SIGKILL');
    },
  };
}
export type PtyService = ReturnType<typeof createPtyService>;

/** Exit as clients see it: a signal becomes 128 + its number, as shells report it. */
function describeExit(exitCode: number, signal: number | undefined): PtyExit {
  if (signal) {
    const name = Object.entries(os.constants.signals).find(([, n]) => n === signal)?.[0] ?? `signal ${signal}`;
    return { exitCode: 128 + signal, exitReason: `killed by ${name}` };
  }
  return exitCode === 0 ? { exitCode } : { exitCode, exitReason: `exited with code ${exitCode}` };
}
