import { spawn, type ChildProcess } from 'node:child_process';
import { STOP_GRACE_MS, signalGroup } from '../system/process-group';

/** One supervised program. */
export interface ProgramSpec {
  name: string;
  command: string;
  /** Its arguments, read at each launch (a setting may change between starts). */
  args: string[] | (() => string[]);
  /** Start order, lower first (reported as Daytona's `priority`). */
  priority: number;
}

interface ProgramStatus {
  running: boolean;
  pid?: number;
  priority: number;
  autoRestart: boolean;
}

/** How much of each stream of each program is kept for the logs and errors routes. */
const TAIL_BYTES = 64 * 1024;
/** Restart delays after an unexpected exit: doubling from the first, at most the last. */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;
/** A program that ran this long before it exited is restarted after the first delay again. */
const STABLE_MS = 30_000;

/** The last `limit` bytes written to a stream. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit = TAIL_BYTES) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0].length >= this.limit) this.size -= this.chunks.shift()!.length;
    if (this.size > this.limit) {
      this.chunks[0] = this.chunks[0].subarray(this.size - this.limit);
      this.size = this.limit;
    }
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

class Program {
  child?: ChildProcess;
  /** Whether it should run: set by start, cleared by stop. An exit while wanted schedules a restart. */
  wanted = false;
  failures = 0;
  startedAt = 0;
  timer?: NodeJS.Timeout;
  exited?: Promise<void>;
  readonly stdout = new Tail();
  readonly stderr = new Tail();
  constructor(readonly spec: ProgramSpec) {}
  /** Whether its current process was spawned and has not exited. */
  running = false;
}

interface SupervisorOptions {
  programs: ProgramSpec[];
  /** Environment of a program at each (re)start. */
  env: () => Record<string, string>;
  cwd: string;
  spawnAs: { uid?: number; gid?: number };
  /** A line for the agent's log (a restart, a spawn failure). */
  log?: (line: string) => void;
}

/**
 * Starts programs, each in its own process group, restarts one that exits on its own (after 0.5 s, then doubling up
 * to 15 s; a program that ran 30 s starts again from 0.5 s), keeps the last 64 KiB of each one's stdout and stderr,
 * and stops them: SIGTERM to the group, SIGKILL to what is left after the stop grace period.
 */
export function createSupervisor(opts: SupervisorOptions) {
  const programs = new Map(opts.programs.map((p) => [p.name, new Program(p)]));
  const log = opts.log ?? (() => {});

  function launch(p: Program): void {
    p.startedAt = Date.now();
    const note = (text: string) => p.stderr.push(Buffer.from(`[cove] ${text}\n`));
    let child: ChildProcess;
    try {
      const args = typeof p.spec.args === 'function' ? p.spec.args() : p.spec.args;
      child = spawn(p.spec.command, args, { cwd: opts.cwd, env: opts.env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...opts.spawnAs });
    } catch (err) {
      note(`could not start ${p.spec.command}: ${(err as Error).message}`);
      scheduleRestart(p);
      return;
    }
    p.child = child;
    p.running = child.pid !== undefined;
    child.stdout!.on('data', (b: Buffer) => p.stdout.push(b));
    child.stderr!.on('data', (b: Buffer) => p.stderr.push(b));
    p.exited = new Promise((resolve) => {
      let done = false;
      const finish = (why: string) => {
        if (done) return;
        done = true;
        if (p.child === child) p.running = false;
        if (p.child === child && p.wanted) {
          note(`${p.spec.name} ${why}`);
          log(`computer use: ${p.spec.name} ${why}`);
          scheduleRestart(p);
        }
        resolve();
      };
      child.on('error', (err) => finish(`could not run: ${err.message}`));
      child.on('exit', (code, signal) => finish(`exited (${signal ? `signal ${signal}` : `code ${code}`})`));
    });
  }

  function scheduleRestart(p: Program): void {
    if (!p.wanted) return;
    if (Date.now() - p.startedAt >= STABLE_MS) p.failures = 0;
    const delay = Math.min(BACKOFF_FIRST_MS * 2 ** p.failures, BACKOFF_MAX_MS);
    p.failures++;
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      p.timer = undefined;
      if (p.wanted && !p.running) launch(p);
    }, delay);
    p.timer.unref();
  }

  function get(name: string): Program {
    const p = programs.get(name);
    if (!p) throw new Error(`no program named ${name}`);
    return p;
  }

  async function stopProgram(p: Program): Promise<void> {
    p.wanted = false;
    clearTimeout(p.timer);
    p.timer = undefined;
    const child = p.child;
    if (!child || !p.running) return;
    signalGroup(child.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        signalGroup(child.pid, 'SIGKILL');
        resolve();
      }, STOP_GRACE_MS);
    });
    await Promise.race([p.exited, killed]);
    clearTimeout(timer);
    // What is left of the group after its leader went (children that ignore SIGTERM).
    signalGroup(child.pid, 'SIGKILL');
    await p.exited;
  }

  return {
    /** Starts a program unless it runs; resolves once it was spawned. */
    start(name: string): void {
      const p = get(name);
      p.wanted = true;
      p.failures = 0;
      if (!p.running && !p.timer) launch(p);
    },
    stop: (name: string) => stopProgram(get(name)),
    /** Stops every program, the last started first. */
    async stopAll(): Promise<void> {
      const ordered = [...programs.values()].sort((a, b) => b.spec.priority - a.spec.priority);
      for (const p of ordered) await stopProgram(p);
    },
    isRunning: (name: string) => get(name).running,
    /** Resolves when the program's current process exits (at once when none runs). */
    exited: (name: string) => get(name).exited ?? Promise.resolve(),
    status(name: string): ProgramStatus {
      const p = get(name);
      const running = p.running;
      return { running, ...(running && p.child?.pid ? { pid: p.child.pid } : {}), priority: p.spec.priority, autoRestart: true };
    },
    logs: (name: string) => get(name).stdout.text(),
    errors: (name: string) => get(name).stderr.text(),
  };
}
export type Supervisor = ReturnType<typeof createSupervisor>;
