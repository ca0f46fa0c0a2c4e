import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { CoveError } from '../../../lib/errors';
import { childEnv, type SandboxContext } from '../system/context';
import { loadLibc } from '../system/libc';
import { signalGroup, STOP_GRACE_MS } from '../system/process-group';

/** How a command ended. */
export interface ExitInfo {
  /** Exit status; 128 + signal number when a signal ended it (the shells' convention). */
  exitCode: number;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/**
 * After the command itself has exited, how long to wait for the rest of its output. Only a background process that
 * still holds the output pipe makes the wait this long; its later output is read and dropped.
 */
const DRAIN_GRACE_MS = 200;

/** Whether any process of group `pgid` exists. The kernel does not reuse a pid while it names a live group. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The process groups a service started and that still have members (the command's own process, or what it left
 * running in the background). close() ends them all.
 */
export function createGroupTracker() {
  const groups = new Set<number>();
  let sweeper: NodeJS.Timeout | undefined;
  const sweep = () => {
    for (const pgid of groups) if (!groupAlive(pgid)) groups.delete(pgid);
    if (groups.size === 0 && sweeper) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  return {
    add(pgid: number): void {
      groups.add(pgid);
    },
    /** Called when a group's leader exits: the group is forgotten now if nothing else of it runs, else later. */
    leaderExited(pgid: number): void {
      if (!groupAlive(pgid)) groups.delete(pgid);
      else if (!sweeper) {
        sweeper = setInterval(sweep, 2000);
        sweeper.unref();
      }
    },
    get size(): number {
      return groups.size;
    },
    /** SIGTERM to every group, SIGKILL to those still there after the grace period. */
    async closeAll(graceMs = STOP_GRACE_MS): Promise<void> {
      sweep();
      for (const pgid of groups) signalGroup(pgid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && [...groups].some(groupAlive)) await new Promise((r) => setTimeout(r, 25));
      for (const pgid of groups) if (groupAlive(pgid)) signalGroup(pgid, 'SIGKILL');
      groups.clear();
      if (sweeper) clearInterval(sweeper);
      sweeper = undefined;
    },
  };
}
type GroupTracker = ReturnType<typeof createGroupTracker>;

const O_CLOEXEC = 0o2000000;

/**
 * One pipe for both stdout and stderr, so that the combined output keeps the order in which the command wrote it
 * (two pipes read by one process can only approximate it). Node has no pipe(2), so libc's is called (system/libc.ts,
 * which zombie reaping loads too). Returns undefined where that is not possible.
 */
function openSharedPipe(): [read: number, write: number] | undefined {
  const libc = loadLibc();
  if (!libc) return undefined;
  const fds = [0, 0];
  // Close-on-exec so that children spawned meanwhile by other requests do not inherit (and hold open) either end.
  return libc.pipe2(fds, O_CLOEXEC) === 0 ? [fds[0], fds[1]] : undefined;
}

function exitInfo(code: number | null, signal: NodeJS.Signals | null, timedOut: boolean): ExitInfo {
  const exitCode = code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : -1);
  return { exitCode, signal: code === null ? signal : null, timedOut };
}

export interface SpawnRequest {
  file: string;
  args: string[];
  cwd: string;
  envs?: Record<string, string>;
  /** Milliseconds; 0 for no limit. When it elapses the whole process group is killed. */
  timeoutMs: number;
}

interface Supervised {
  child: ChildProcess;
  /** Settles once the command exited and its output was read (or the drain grace ran out). */
  done: Promise<ExitInfo>;
}

/**
 * Spawns a command in its own process group as the sandbox user, tracks its group, and enforces its timeout.
 * `stdio` picks the child's stdio; `readers` (given the child) names the streams whose end marks "all output read".
 * Rejects when the command could not be started at all (its file or cwd missing): the error has the OS code.
 */
export async function superviseSpawn(
  ctx: SandboxContext,
  groups: GroupTracker,
  req: SpawnRequest,
  stdio: StdioOptions,
  readers: (child: ChildProcess) => Readable[],
): Promise<Supervised> {
  let child: ChildProcess;
  try {
    child = spawn(req.file, req.args, {
      cwd: req.cwd,
      env: childEnv(ctx, req.envs),
      stdio,
      detached: true,
      ...ctx.spawnAs,
    });
  } catch (err) {
    throw startError(err);
  }
  const streams = readers(child);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid!;
  groups.add(pid);
  // Errors after the start (a failed kill, a broken stdin) must not become uncaught exceptions.
  child.on('error', () => {});

  const done = new Promise<ExitInfo>((resolve) => {
    let timedOut = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let open = streams.length;
    let grace: NodeJS.Timeout | undefined;
    const timer =
      req.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            signalGroup(pid, 'SIGKILL');
          }, req.timeoutMs)
        : undefined;
    let settled = false;
    const settle = () => {
      if (settled || !exit) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      resolve(exitInfo(exit.code, exit.signal, timedOut));
    };
    for (const s of streams) {
      s.once('close', () => {
        if (--open === 0) settle();
      });
      s.on('error', () => {});
    }
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      // The command is over; what it left in the background is no longer its timeout's business.
      clearTimeout(timer);
      groups.leaderExited(pid);
      if (open === 0) settle();
      // Settled from the check phase, after the loop's next poll: in an agent starved of CPU the grace can run out
      // before the poll phase reads output that was in the pipe all along (timers run first in each turn).
      else grace = setTimeout(() => setImmediate(settle), DRAIN_GRACE_MS);
    });
  });
  return { child, done };
}

/**
 * Runs a command with stdout and stderr on one pipe and hands every chunk to `onOutput` until it ends.
 * `input`, when given, is written to the command's stdin, which is then closed; otherwise stdin is /dev/null.
 */
export async function runCombined(
  ctx: SandboxContext,
  groups: GroupTracker,
  req: SpawnRequest & { input?: string },
  onOutput: (chunk: Buffer) => void,
): Promise<ExitInfo> {
  const shared = openSharedPipe();
  const stdin = req.input !== undefined ? 'pipe' : 'ignore';
  let reader: Socket | undefined;
  let supervised: Supervised;
  try {
    supervised = await superviseSpawn(
      ctx,
      groups,
      req,
      shared ? [stdin, shared[1], shared[1]] : [stdin, 'pipe', 'pipe'],
      (child) => {
        if (!shared) return [child.stdout!, child.stderr!];
        // The child has its copies now; the agent's copy of the write end would keep the pipe open for ever.
        closeSync(shared[1]);
        reader = new Socket({ fd: shared[0], readable: true, writable: false });
        return [reader];
      },
    );
  } catch (err) {
    if (shared) {
      if (reader) reader.destroy();
      else for (const fd of shared) tryClose(fd);
    }
    throw err;
  }
  const { child, done } = supervised;
  let finished = false;
  const take = (chunk: Buffer) => {
    // Output after the end (a background process still writing) is read so the writer never blocks, then dropped.
    if (!finished) onOutput(chunk);
  };
  if (reader) reader.on('data', take);
  else {
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
  }
  if (req.input !== undefined) {
    child.stdin!.on('error', () => {});
    child.stdin!.end(req.input);
  }
  const info = await done;
  finished = true;
  return info;
}

/** Errors that spawn() throws for what the client sent become 4xx; the rest stay as they are. */
function startError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE') {
    return new CoveError('INVALID_REQUEST', 'The command, its arguments and envs must not contain NUL characters', (err as Error).message);
  }
  if (code === 'E2BIG') {
    return new CoveError(
      'PAYLOAD_TOO_LARGE',
      'The command and its environment are too large to start (the kernel takes at most 128 KiB per argument or variable)',
      (err as Error).message,
    );
  }
  return err;
}

function tryClose(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}
