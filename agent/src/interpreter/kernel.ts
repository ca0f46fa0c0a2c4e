import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { ChartShape, InterpreterErrorFrame } from '../../../wire/interpreter';
import { guard } from '../../../lib/guard';
import { CoveError } from '../../../lib/errors';
import { childEnv, type SandboxContext } from '../system/context';
import { signalGroup } from '../system/process-group';
import { KERNEL_BOOTSTRAP, KERNEL_PY } from './kernel-py';

/** How long a kernel may take to say it is ready. */
const START_TIMEOUT_MS = 20_000;
/** After a run's end message, how long to wait for its end markers on stdout and stderr (user code may have closed or redirected fd 1 or 2). */
const SYNC_GRACE_MS = 1000;
/** After the kernel exited, how long to wait for output still in its pipes (processes it left may hold them). */
const DRAIN_AFTER_EXIT_MS = 200;
/** Longest message line the kernel may send (a run's charts travel in one). */
const MAX_EVENT_LINE = 96 * 1024 * 1024;

const SYNC_PREFIX = Buffer.from('\x1fcove-sync:', 'latin1');
const TOKEN_HEX = 24;
const SYNC_LENGTH = SYNC_PREFIX.length + TOKEN_HEX + 1;
const UNIT_SEPARATOR = 0x1f;

export type StreamName = 'stdout' | 'stderr';
export type ErrorInfo = Omit<InterpreterErrorFrame, 'type'>;

/** What the kernel reported at the end of a run. */
export interface KernelDone {
  error: ErrorInfo | null;
  charts: ChartShape[];
}

/** How a kernel process ended. */
export interface KernelExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface KernelRunCallbacks {
  output(stream: StreamName, text: string): void;
  /** Exactly once: the kernel finished the run (`done`), or exited during it (`exit`). */
  end(result: { done: KernelDone } | { exit: KernelExit }): void;
}

type Piece = { data: Buffer } | { token: string };

/**
 * Finds the end-of-run markers (`\x1fcove-sync:<24 hex>\x1f`) in one output stream. A tail that may be the start
 * of a marker is held back until the next chunk shows what it is.
 */
export class SyncSplitter {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Piece[] {
    const pieces: Piece[] = [];
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    for (;;) {
      const at = buf.indexOf(SYNC_PREFIX);
      if (at === -1) {
        const keep = partialPrefix(buf);
        if (buf.length > keep) pieces.push({ data: buf.subarray(0, buf.length - keep) });
        if (keep) this.pending = Buffer.from(buf.subarray(buf.length - keep));
        return pieces;
      }
      if (buf.length - at < SYNC_LENGTH) {
        if (at > 0) pieces.push({ data: buf.subarray(0, at) });
        this.pending = Buffer.from(buf.subarray(at));
        return pieces;
      }
      const token = buf.subarray(at + SYNC_PREFIX.length, at + SYNC_LENGTH - 1).toString('latin1');
      if (buf[at + SYNC_LENGTH - 1] === UNIT_SEPARATOR && /^[0-9a-f]+$/.test(token)) {
        if (at > 0) pieces.push({ data: buf.subarray(0, at) });
        pieces.push({ token });
        buf = buf.subarray(at + SYNC_LENGTH);
      } else {
        // Not a marker after all: pass the prefix on as output and look further.
        pieces.push({ data: buf.subarray(0, at + SYNC_PREFIX.length) });
        buf = buf.subarray(at + SYNC_PREFIX.length);
      }
    }
  }
}

/** Length of the longest tail of `buf` that is a proper prefix of the marker prefix. */
function partialPrefix(buf: Buffer): number {
  const max = Math.min(buf.length, SYNC_PREFIX.length - 1);
  for (let n = max; n > 0; n--) {
    if (buf.subarray(buf.length - n).equals(SYNC_PREFIX.subarray(0, n))) return n;
  }
  return 0;
}

interface ActiveRun {
  token: string;
  callbacks: KernelRunCallbacks;
  decoders: Record<StreamName, StringDecoder>;
  synced: Record<StreamName, boolean>;
  done?: KernelDone;
  graceTimer?: NodeJS.Timeout;
}

/** A sentence naming how a kernel ended: "exited with code 1", "was killed by SIGKILL". */
export function describeExit(exit: KernelExit): string {
  if (exit.signal) return `was killed by ${exit.signal} (${128 + (osConstants.signals[exit.signal] ?? 0)})`;
  return `exited with code ${exit.code}`;
}

/**
 * One Python kernel process (kernel-py.ts has the protocol) as the sandbox user, in its own process group, with
 * the sandbox's environment and the context's working directory. Runs one piece of code at a time; the context
 * (service.ts) queues them.
 */
export class Kernel {
  readonly pid: number;
  private exitInfo?: KernelExit;
  private active?: ActiveRun;
  private readonly splitters = { stdout: new SyncSplitter(), stderr: new SyncSplitter() };
  private readonly commands: Writable;
  private resolveExited!: (exit: KernelExit) => void;
  /** Settles once the process has exited. */
  readonly exited = new Promise<KernelExit>((r) => (this.resolveExited = r));
  private onReady?: (python: string) => void;
  private startupErrors = '';
  private paused = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly cwd: string,
  ) {
    this.pid = child.pid!;
    this.commands = child.stdio[3] as Writable;
    for (const s of child.stdio) s?.on('error', () => {});
    const out = (stream: StreamName) => guard(`interpreter ${stream}`, (chunk: Buffer) => this.onOutput(stream, chunk), () => {});
    child.stdout!.on('data', out('stdout'));
    child.stderr!.on('data', out('stderr'));
    this.readEvents(child.stdio[4] as Readable);
    child.once('exit', guard('interpreter kernel exit', (code: number | null, signal: NodeJS.Signals | null) => this.onExit({ code, signal }), () => {}));
  }

  /** Starts a kernel and waits until it is ready. Throws UNSUPPORTED_LANGUAGE when python3 is not installed. */
  static async start(ctx: SandboxContext, cwd: string, envs: Record<string, string>): Promise<Kernel> {
    let child: ChildProcess;
    try {
      child = spawn('python3', ['-c', KERNEL_BOOTSTRAP], {
        cwd,
        env: childEnv(ctx, envs),
        // 0: the kernel program, then end of file; 1, 2: user output; 3: commands; 4: the kernel's messages.
        stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
        detached: true,
        ...ctx.spawnAs,
      });
    } catch (err) {
      throw new CoveError('INTERNAL_ERROR', 'Could not start a Python kernel', (err as Error).message);
    }
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') {
          reject(new CoveError('UNSUPPORTED_LANGUAGE', "Cannot run python: python3 was not found on the sandbox's PATH", err.message));
        } else reject(err);
      });
    });
    const kernel = new Kernel(child, cwd);
    child.stdin!.on('error', () => {});
    child.stdin!.end(KERNEL_PY);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<string>((resolve) => (kernel.onReady = resolve)),
        kernel.exited.then((exit) => {
          throw new CoveError(
            'INTERNAL_ERROR',
            `The Python kernel ${describeExit(exit)} before it was ready`,
            kernel.startupErrors.trim().slice(-2000) || undefined,
          );
        }),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new CoveError('INTERNAL_ERROR', `The Python kernel was not ready within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      kernel.kill();
      throw err;
    } finally {
      clearTimeout(timer);
      kernel.onReady = undefined;
    }
    return kernel;
  }

  get alive(): boolean {
    return !this.exitInfo;
  }

  /** Runs code; `callbacks` get its output and then its end. One run at a time. */
  run(code: string, envs: Record<string, string> | undefined, callbacks: KernelRunCallbacks): void {
    if (this.active) throw new CoveError('CONFLICT', 'The kernel is already running code');
    if (this.exitInfo) {
      callbacks.end({ exit: this.exitInfo });
      return;
    }
    const token = randomBytes(TOKEN_HEX / 2).toString('hex');
    this.active = {
      token,
      callbacks,
      decoders: { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') },
      synced: { stdout: false, stderr: false },
    };
    this.commands.write(`${JSON.stringify({ type: 'run', code, envs: envs ?? {}, sync: token })}\n`);
  }

  /** SIGINT to the kernel process alone (KeyboardInterrupt in the running code), as Jupyter interrupts. */
  interrupt(): void {
    if (this.exitInfo) return;
    try {
      process.kill(this.pid, 'SIGINT');
    } catch {
      /* gone meanwhile */
    }
  }

  /**
   * Stops reading the run's output (the client is behind); the kernel blocks once its pipes are full. While output
   * is paused, a run that has ended does not wait for its end markers against the clock.
   */
  pauseOutput(): void {
    this.paused = true;
    this.child.stdout!.pause();
    this.child.stderr!.pause();
    if (this.active?.graceTimer) {
      clearTimeout(this.active.graceTimer);
      this.active.graceTimer = undefined;
    }
  }

  resumeOutput(): void {
    this.paused = false;
    this.child.stdout!.resume();
    this.child.stderr!.resume();
    if (this.active?.done) this.startGrace(this.active);
  }

  /** After the run's end message: its output is complete once both markers came, or after a grace period. */
  private startGrace(run: ActiveRun): void {
    if (this.paused || run.graceTimer) return;
    run.graceTimer = setTimeout(guard('interpreter run end', () => this.finish(run), () => {}), SYNC_GRACE_MS);
  }

  /**
   * Signals the kernel's whole process group (what user code started in it included). Once the kernel has exited
   * only the group is signalled, never the bare pid, which may meanwhile belong to another process.
   */
  signal(signal: NodeJS.Signals): void {
    if (!this.exitInfo) return signalGroup(this.pid, signal);
    try {
      process.kill(-this.pid, signal);
    } catch {
      /* the group is empty */
    }
  }

  kill(): void {
    this.signal('SIGKILL');
  }

  /** Lets go of the pipes once the kernel is gone, so nothing that escaped its group keeps them open here. */
  dispose(): void {
    for (const s of this.child.stdio) s?.destroy();
  }

  private readEvents(stream: Readable): void {
    let parts: Buffer[] = [];
    let size = 0;
    stream.on(
      'data',
      guard(
        'interpreter kernel message',
        (chunk: Buffer) => {
          let start = 0;
          for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
            parts.push(chunk.subarray(start, nl));
            const line = parts.length === 1 ? parts[0] : Buffer.concat(parts);
            parts = [];
            size = 0;
            start = nl + 1;
            this.onEvent(line);
          }
          if (start < chunk.length) {
            parts.push(chunk.subarray(start));
            size += chunk.length - start;
            if (size > MAX_EVENT_LINE) {
              // The kernel's own messages are bounded; this one is not, so the protocol is broken: start afresh.
              parts = [];
              size = 0;
              this.kill();
            }
          }
        },
        () => this.kill(),
      ),
    );
  }

  private onEvent(line: Buffer): void {
    let message: { type?: string; python?: string; error?: ErrorInfo | null; charts?: ChartShape[] };
    try {
      message = JSON.parse(line.toString('utf8')) as typeof message;
    } catch {
      return;
    }
    if (message.type === 'ready') this.onReady?.(String(message.python ?? ''));
    else if (message.type === 'done' && this.active && !this.active.done) {
      const run = this.active;
      run.done = { error: message.error ?? null, charts: Array.isArray(message.charts) ? message.charts : [] };
      this.startGrace(run);
      this.maybeFinish(run);
    }
  }

  private onOutput(stream: StreamName, chunk: Buffer): void {
    if (!this.active && !this.onReady) {
      // Between runs (what a background thread printed): nobody to give it to. Markers still need finding.
      this.splitters[stream].push(chunk);
      return;
    }
    if (this.onReady && !this.active) {
      if (stream === 'stderr' && this.startupErrors.length < 8192) this.startupErrors += chunk.toString('utf8');
      return;
    }
    const run = this.active!;
    for (const piece of this.splitters[stream].push(chunk)) {
      if ('token' in piece) {
        if (piece.token === run.token) {
          run.synced[stream] = true;
          this.maybeFinish(run);
        }
      } else if (!run.synced[stream]) {
        const text = run.decoders[stream].write(piece.data);
        if (text) run.callbacks.output(stream, text);
      }
    }
  }

  private maybeFinish(run: ActiveRun): void {
    if (run.done && run.synced.stdout && run.synced.stderr) this.finish(run);
  }

  private finish(run: ActiveRun, exit?: KernelExit): void {
    if (this.active !== run) return;
    this.active = undefined;
    clearTimeout(run.graceTimer);
    // The next run's output must flow whatever this run's client did.
    if (this.paused && !this.exitInfo) this.resumeOutput();
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = run.decoders[stream].end();
      if (rest && !run.synced[stream]) run.callbacks.output(stream, rest);
    }
    run.callbacks.end(run.done && !exit ? { done: run.done } : { exit: exit ?? this.exitInfo ?? { code: null, signal: null } });
  }

  private onExit(exit: KernelExit): void {
    this.exitInfo = exit;
    this.resolveExited(exit);
    // What the kernel left running in its group goes with it: the context starts afresh.
    this.signal('SIGKILL');
    const run = this.active;
    if (!run) return;
    if (run.done) return this.finish(run);
    const end = guard('interpreter kernel drain', () => this.finish(run, exit), () => {});
    const timer = setTimeout(end, DRAIN_AFTER_EXIT_MS);
    this.child.once('close', () => {
      clearTimeout(timer);
      end();
    });
  }
}
