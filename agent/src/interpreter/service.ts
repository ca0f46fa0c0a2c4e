import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import {
  DEFAULT_CONTEXT_ID,
  DEFAULT_RUN_TIMEOUT_SECONDS,
  INTERPRETER_LANGUAGES,
  type ChartShape,
  type CreateContextRequest,
  type InterpreterContext,
  type InterpreterExecuteRequest,
} from '../../../wire/interpreter';
import { guard } from '../../../lib/guard';
import { CoveError } from '../../../lib/errors';
import type { SandboxContext } from '../system/context';
import { STOP_GRACE_MS } from '../system/process-group';
import { describeExit, Kernel, type ErrorInfo, type KernelDone, type KernelExit, type StreamName } from './kernel';

/** Contexts that may exist at once besides the default one: each is a Python process of 10 MB or more. */
const MAX_CONTEXTS = 20;
/** Runs that may wait in one context's queue. */
const MAX_QUEUED_RUNS = 32;
/** After SIGINT for a timeout, how long the code has to stop before the kernel is killed. */
const INTERRUPT_GRACE_MS = 2000;
/** How a run ended, for the channel to turn into frames and a close. */
export type RunOutcome =
  /** The code ran to its end; `error` when it raised. */
  | { kind: 'completed'; error?: ErrorInfo }
  /** The client interrupted it (KeyboardInterrupt). */
  | { kind: 'interrupted' }
  /** Past its timeout; interrupted, or killed when it did not stop. */
  | { kind: 'timeout'; error: ErrorInfo }
  /** The kernel died, or the context was deleted, before the code finished. */
  | { kind: 'died'; error: ErrorInfo }
  /** The run could not start (no python3, or the kernel would not start). */
  | { kind: 'failed'; error: CoveError };

/** Where a run's output and end go. */
export interface RunSink {
  output(stream: StreamName, text: string): void;
  chart(chart: ChartShape): void;
  end(outcome: RunOutcome): void;
}

/** Control of a queued or running run. */
export interface RunHandle {
  /** SIGINT to the kernel while the run executes; a queued run is dropped from the queue. */
  interrupt(): void;
  pause(): void;
  resume(): void;
  /** The client left: output is dropped from now on; the run goes on. */
  detach(): void;
}

interface Run {
  code: string;
  envs?: Record<string, string>;
  timeoutSeconds: number;
  sink?: RunSink;
  reason?: 'timeout' | 'interrupt';
  timer?: NodeJS.Timeout;
  killTimer?: NodeJS.Timeout;
  ended: boolean;
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * One context: a language, a working directory, and the kernel that holds its state. Runs queue and execute one
 * at a time. A kernel that died is replaced by a fresh one (empty globals) when the next run starts.
 */
class Context {
  kernel?: Kernel;
  private starting?: Promise<Kernel>;
  private readonly queue: Run[] = [];
  private current?: Run;
  deleted = false;
  readonly createdAt = new Date().toISOString();

  constructor(
    readonly id: string,
    readonly cwd: string,
    private readonly sandbox: SandboxContext,
  ) {}

  info(): InterpreterContext {
    return { id: this.id, cwd: this.cwd, language: 'python', createdAt: this.createdAt, active: Boolean(this.kernel?.alive) };
  }

  /** The live kernel, started when there is none (first use, or after the last one died). */
  ensureKernel(): Promise<Kernel> {
    if (this.kernel?.alive) return Promise.resolve(this.kernel);
    this.starting ??= Kernel.start(this.sandbox, this.cwd, kernelEnvs(this.sandbox)).then(
      (kernel) => {
        this.starting = undefined;
        if (this.deleted) {
          kernel.kill();
          throw new CoveError('NOT_FOUND', `Interpreter context ${this.id} was deleted`);
        }
        this.kernel?.dispose();
        this.kernel = kernel;
        return kernel;
      },
      (err) => {
        this.starting = undefined;
        throw err;
      },
    );
    return this.starting;
  }

  submit(run: Run): RunHandle {
    if (this.deleted) throw new CoveError('NOT_FOUND', `No interpreter context ${this.id}`);
    if (this.queue.length >= MAX_QUEUED_RUNS) {
      throw new CoveError('RATE_LIMITED', `Interpreter context ${this.id} already has ${MAX_QUEUED_RUNS} runs waiting; wait for them to finish`);
    }
    this.queue.push(run);
    this.pump();
    return {
      interrupt: () => {
        if (run.ended) return;
        if (this.current !== run) {
          const at = this.queue.indexOf(run);
          if (at !== -1) this.queue.splice(at, 1);
          this.end(run, { kind: 'interrupted' });
          return;
        }
        run.reason ??= 'interrupt';
        this.kernel?.interrupt();
      },
      pause: () => {
        if (this.current === run && run.sink) this.kernel?.pauseOutput();
      },
      resume: () => {
        if (this.current === run) this.kernel?.resumeOutput();
      },
      detach: () => {
        run.sink = undefined;
        if (this.current === run) this.kernel?.resumeOutput();
      },
    };
  }

  /** Ends the run in progress and every queued run (the context is going away). */
  abandon(error: ErrorInfo): void {
    for (const run of this.queue.splice(0)) this.end(run, { kind: 'died', error });
  }

  private end(run: Run, outcome: RunOutcome): void {
    if (run.ended) return;
    run.ended = true;
    clearTimeout(run.timer);
    clearTimeout(run.killTimer);
    const sink = run.sink;
    run.sink = undefined;
    sink?.end(outcome);
  }

  private pump(): void {
    if (this.current || this.deleted) return;
    const run = this.queue.shift();
    if (!run) return;
    this.current = run;
    const next = () => {
      if (this.current === run) this.current = undefined;
      this.pump();
    };
    this.ensureKernel().then(
      guard(
        'interpreter run start',
        (kernel: Kernel) => this.start(run, kernel, next),
        (error) => {
          this.end(run, { kind: 'failed', error });
          next();
        },
      ),
      guard(
        'interpreter kernel start',
        (err: unknown) => {
          const error = err instanceof CoveError ? err : new CoveError('INTERNAL_ERROR', 'The Python kernel could not start', (err as Error)?.message);
          this.end(run, { kind: 'failed', error });
          next();
        },
        () => next(),
      ),
    );
  }

  private start(run: Run, kernel: Kernel, next: () => void): void {
    if (run.ended) return next();
    if (run.timeoutSeconds > 0) {
      run.timer = setTimeout(
        guard(
          'interpreter timeout',
          () => {
            run.reason = 'timeout';
            kernel.interrupt();
            run.killTimer = setTimeout(guard('interpreter kill', () => kernel.kill(), () => {}), INTERRUPT_GRACE_MS);
          },
          () => {},
        ),
        run.timeoutSeconds * 1000,
      );
    }
    kernel.run(run.code, run.envs, {
      output: (stream, text) => run.sink?.output(stream, text),
      end: (result) => {
        // A client that fails to take the end loses it; the context goes on with its next run.
        try {
          if ('done' in result) {
            for (const chart of result.done.charts) run.sink?.chart(chart);
            this.end(run, this.outcomeOfDone(run, result.done));
          } else {
            this.end(run, this.outcomeOfExit(run, result.exit));
          }
        } finally {
          next();
        }
      },
    });
  }

  private outcomeOfDone(run: Run, done: KernelDone): RunOutcome {
    const interrupted = done.error?.name === 'KeyboardInterrupt';
    if (interrupted && run.reason === 'timeout') {
      return {
        kind: 'timeout',
        error: {
          name: 'TimeoutError',
          value: `Execution timed out after ${run.timeoutSeconds} s and was interrupted (KeyboardInterrupt); the context keeps its state`,
          traceback: done.error!.traceback,
        },
      };
    }
    if (interrupted && run.reason === 'interrupt') return { kind: 'interrupted' };
    return { kind: 'completed', ...(done.error ? { error: done.error } : {}) };
  }

  private outcomeOfExit(run: Run, exit: KernelExit): RunOutcome {
    if (this.deleted) {
      return { kind: 'died', error: { name: 'ContextDeleted', value: `Interpreter context ${this.id} was deleted while the code ran`, traceback: '' } };
    }
    if (run.reason === 'timeout') {
      return {
        kind: 'timeout',
        error: {
          name: 'TimeoutError',
          value:
            `Execution timed out after ${run.timeoutSeconds} s; the code did not stop within ${INTERRUPT_GRACE_MS / 1000} s of SIGINT, ` +
            "so the kernel was killed and the context's state is lost (the next run starts a fresh kernel)",
          traceback: '',
        },
      };
    }
    return {
      kind: 'died',
      error: {
        name: 'KernelDied',
        value: `The Python kernel ${describeExit(exit)} while the code ran; the context's state is lost and the next run starts a fresh kernel`,
        traceback: '',
      },
    };
  }

  /** Kills the kernel's process group and waits (bounded) for it. */
  async stop(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const kernel = this.kernel ?? (await this.starting?.catch(() => undefined));
    if (!kernel) return;
    kernel.signal(signal);
    await Promise.race([kernel.exited, delay(graceMs)]);
    kernel.kill();
    kernel.dispose();
  }
}

/** Environment every kernel starts with; the sandbox's own values win. */
function kernelEnvs(sandbox: SandboxContext): Record<string, string> {
  // Agg, so that matplotlib never looks for a display.
  const envs: Record<string, string> = {};
  if (!sandbox.env.MPLBACKEND) envs.MPLBACKEND = 'Agg';
  return envs;
}

/**
 * The code interpreter: Python contexts whose kernels keep their globals between runs (kernel-py.ts has the kernel
 * and why it is Cove's own). Contexts are created on request, plus the default context on first use; deleting one
 * kills its kernel's process group; close() ends them all.
 */
export function createInterpreterService(sandbox: SandboxContext, opts: { maxContexts?: number } = {}) {
  const contexts = new Map<string, Context>();
  const maxContexts = opts.maxContexts ?? MAX_CONTEXTS;
  let reserved = 0;

  async function resolveCwd(cwd: string | null | undefined): Promise<string> {
    if (!cwd) return sandbox.workdir;
    const dir = path.resolve(sandbox.workdir, cwd);
    let isDir: boolean;
    try {
      isDir = (await stat(dir)).isDirectory();
    } catch (err) {
      throw new CoveError('INVALID_REQUEST', `Invalid cwd: the directory ${dir} does not exist`, (err as Error).message);
    }
    if (!isDir) throw new CoveError('INVALID_REQUEST', `Invalid cwd: ${dir} is not a directory`);
    return dir;
  }

  function context(id: string): Context {
    const found = contexts.get(id);
    if (!found) throw new CoveError('NOT_FOUND', `No interpreter context ${id}`);
    return found;
  }

  function userContexts(): Context[] {
    return [...contexts.values()].filter((c) => c.id !== DEFAULT_CONTEXT_ID);
  }

  return {
    /** Starts a context's kernel and answers once it is ready (so a missing python3 is a 400 here, not later). */
    async create(req: CreateContextRequest): Promise<InterpreterContext> {
      const language = req.language || 'python';
      if (!(INTERPRETER_LANGUAGES as readonly string[]).includes(language)) {
        throw new CoveError(
          'UNSUPPORTED_LANGUAGE',
          `Unsupported language "${language}" in field language: interpreter contexts run ${INTERPRETER_LANGUAGES.join(', ')} only (use process/code-run for others)`,
        );
      }
      if (userContexts().length + reserved >= maxContexts) {
        throw new CoveError('CONFLICT', `At most ${maxContexts} interpreter contexts may exist at once; delete one first`);
      }
      reserved++;
      try {
        const cwd = await resolveCwd(req.cwd);
        const created = new Context(randomUUID(), cwd, sandbox);
        await created.ensureKernel();
        contexts.set(created.id, created);
        return created.info();
      } finally {
        reserved--;
      }
    },

    /** Every context but the default one (as Daytona lists them). */
    list(): InterpreterContext[] {
      return userContexts().map((c) => c.info());
    },

    get(id: string): InterpreterContext {
      return context(id).info();
    },

    /** Removes a context: runs in progress or queued end with an error, its kernel's process group is killed. */
    async delete(id: string): Promise<void> {
      if (id === DEFAULT_CONTEXT_ID) throw new CoveError('INVALID_REQUEST', 'The default interpreter context cannot be deleted');
      const found = context(id);
      contexts.delete(id);
      found.deleted = true;
      found.abandon({ name: 'ContextDeleted', value: `Interpreter context ${id} was deleted before the code ran`, traceback: '' });
      await found.stop('SIGKILL', STOP_GRACE_MS);
    },

    /**
     * Queues code on a context (the default one without `contextId`). Throws when the context does not exist or
     * its queue is full; everything later goes to `sink`.
     */
    execute(req: InterpreterExecuteRequest, sink: RunSink): RunHandle {
      let target: Context;
      if (req.contextId && req.contextId !== DEFAULT_CONTEXT_ID) target = context(req.contextId);
      else {
        target = contexts.get(DEFAULT_CONTEXT_ID) ?? new Context(DEFAULT_CONTEXT_ID, sandbox.workdir, sandbox);
        contexts.set(DEFAULT_CONTEXT_ID, target);
      }
      return target.submit({
        code: req.code,
        envs: req.envs ?? undefined,
        timeoutSeconds: req.timeout ?? DEFAULT_RUN_TIMEOUT_SECONDS,
        sink,
        ended: false,
      });
    },

    /** SIGTERM to every kernel's process group, up to 3 s to exit, then SIGKILL. */
    async close(): Promise<void> {
      const all = [...contexts.values()];
      contexts.clear();
      for (const c of all) {
        c.deleted = true;
        c.abandon({ name: 'AgentStopping', value: 'The agent is stopping', traceback: '' });
      }
      await Promise.allSettled(all.map((c) => c.stop('SIGTERM', STOP_GRACE_MS)));
    },
  };
}

export type InterpreterService = ReturnType<typeof createInterpreterService>;
