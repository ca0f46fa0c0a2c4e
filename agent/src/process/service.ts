import type { ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { STDERR, STDOUT, type ExecStreamRequest } from '../../../wire/exec-stream';
import {
  DEFAULT_TIMEOUT_SECONDS,
  MAX_OUTPUT_BYTES,
  type CodeRunRequest,
  type CodeRunResponse,
  type ExecuteRequest,
  type ExecuteResponse,
} from '../../../wire/process';
import { guard, settle } from '../../../lib/guard';
import { CoveError } from '../../../lib/errors';
import type { SandboxContext } from '../system/context';
import { signalGroup } from '../system/process-group';
import { prepareProgram, type ChartCapture } from './code-run';
import { BoundedOutput } from './output';
import { createGroupTracker, groupAlive, runCombined, superviseSpawn, type ExitInfo, type SpawnRequest } from './spawn';

const SHELL = '/bin/sh';

/** Where a streamed command's output and end go. Replaced by nothing when the client leaves. */
export interface StreamSink {
  /** Called once the command runs, before any output. */
  started(pid: number): void;
  output(channel: typeof STDOUT | typeof STDERR, chunk: Buffer): void;
  exit(info: ExitInfo): void;
}

/** Control of a streamed command. */
export interface StreamHandle {
  pid: number;
  write(data: Buffer): void;
  closeStdin(): void;
  signal(signal: NodeJS.Signals): void;
  /** Stops reading output until resume(): the client is behind. */
  pause(): void;
  resume(): void;
  /** The client left: output is read and dropped from now on, stdin is closed, the command runs on. */
  detach(): void;
}

/** Seconds as the request gives them (absent, 0 or a number) to the milliseconds the spawner takes. */
function timeoutMs(seconds: number | null | undefined, fallback: number): number {
  const s = seconds ?? fallback;
  return s > 0 ? Math.ceil(s * 1000) : 0;
}

/**
 * One-shot commands (`execute`, `codeRun`) and streamed ones (`startStream`). Every command runs in its own process
 * group as the sandbox user; a timeout kills the whole group; close() ends every group still running.
 */
export function createProcessService(ctx: SandboxContext) {
  const groups = createGroupTracker();

  /** The working directory of a request: relative paths start at the sandbox work dir; it must exist. */
  async function resolveCwd(cwd: string | null | undefined): Promise<string> {
    if (!cwd) return ctx.workdir;
    const dir = path.resolve(ctx.workdir, cwd);
    let isDir: boolean;
    try {
      isDir = (await stat(dir)).isDirectory();
    } catch (err) {
      throw new CoveError('INVALID_REQUEST', `The working directory ${dir} does not exist`, (err as Error).message);
    }
    if (!isDir) throw new CoveError('INVALID_REQUEST', `The working directory ${dir} is not a directory`);
    return dir;
  }

  /**
   * Runs to the end, keeping bounded combined output; a timeout is an error (what the Daytona SDK expects).
   * `charts`, for python code-run, takes the program's charts record out of the output.
   */
  async function runToEnd(
    req: SpawnRequest & { input?: string },
    what: string,
    charts?: ChartCapture,
  ): Promise<{ exitCode: number; result: string }> {
    const output = new BoundedOutput(MAX_OUTPUT_BYTES);
    const keep = (chunk: Buffer) => output.push(chunk);
    const info = await runCombined(ctx, groups, req, charts ? (chunk) => charts.push(chunk, keep) : keep);
    charts?.end(keep);
    if (info.timedOut) {
      throw new CoveError(
        'PROCESS_EXECUTION_TIMEOUT',
        `The ${what} did not finish within ${req.timeoutMs / 1000} s and was killed`,
        `timeout ${req.timeoutMs} ms; its process group got SIGKILL`,
      );
    }
    return { exitCode: info.exitCode, result: output.text() };
  }

  return {
    /**
     * Runs the agent's own Node (`--version`, from Cove's read-only bundle, never a program of the image) as the
     * sandbox user in a process group of its own, so that the first command a client sends does not pay for the spawn
     * path's first run. On two pipes: the shared pipe needs libc through koffi, which an idle agent does not load
     * (about 15 ms, paid by the first command). Nothing of the image runs: the agent may still be held.
     */
    async warm(): Promise<void> {
      const { done } = await superviseSpawn(ctx, groups, { file: process.execPath, args: ['--version'], cwd: '/', timeoutMs: 10_000 }, ['ignore', 'pipe', 'pipe'], (c) => {
        c.stdout!.resume();
        c.stderr!.resume();
        return [c.stdout!, c.stderr!];
      });
      await done;
    },

    /** `sh -c command`, stdout and stderr combined in order. */
    async execute(req: ExecuteRequest): Promise<ExecuteResponse> {
      return runToEnd(
        {
          file: SHELL,
          args: ['-c', req.command],
          cwd: await resolveCwd(req.cwd),
          envs: req.envs ?? undefined,
          timeoutMs: timeoutMs(req.timeout, DEFAULT_TIMEOUT_SECONDS),
        },
        'command',
      );
    },

    /** Runs a program in python, javascript or typescript (see code-run.ts for how). */
    async codeRun(req: CodeRunRequest): Promise<CodeRunResponse> {
      const program = await prepareProgram(req.language, req.code, req.argv ?? [], { ...ctx.env, ...req.envs });
      if (!('file' in program)) return program;
      try {
        const ran = await runToEnd(
          {
            file: program.file,
            args: program.args,
            input: program.input,
            cwd: ctx.workdir,
            envs: { ...program.envs, ...req.envs },
            timeoutMs: timeoutMs(req.timeout, DEFAULT_TIMEOUT_SECONDS),
          },
          `${req.language} program`,
          program.charts,
        );
        // Daytona answers artifacts only when there are charts.
        const charts = program.charts?.charts() ?? [];
        return charts.length ? { ...ran, artifacts: { charts } } : ran;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          await resolveCwd(ctx.workdir);
          throw new CoveError(
            'UNSUPPORTED_LANGUAGE',
            `Cannot run ${req.language} code: ${program.file} was not found on the sandbox's PATH`,
            (err as Error).message,
          );
        }
        throw err;
      }
    },

    /**
     * Starts a command whose output goes to `sink` as it comes. Resolves once it runs; rejects when it cannot start.
     * Without a timeout it runs until it ends, whether or not anyone still listens.
     */
    async startStream(req: ExecStreamRequest, sink: StreamSink): Promise<StreamHandle> {
      const cwd = await resolveCwd(req.cwd);
      let target: StreamSink | undefined = sink;
      const { child, done } = await superviseSpawn(
        ctx,
        groups,
        { file: SHELL, args: ['-c', req.command], cwd, envs: req.envs, timeoutMs: timeoutMs(req.timeout, 0) },
        ['pipe', 'pipe', 'pipe'],
        (c: ChildProcess) => [c.stdout!, c.stderr!],
      );
      const stdin = child.stdin as Writable;
      const outputs = [child.stdout, child.stderr] as Readable[];
      stdin.on('error', () => {});
      sink.started(child.pid!);
      // A client that fails to take output or the exit loses them; the command and the agent go on.
      const lose = () => (target = undefined);
      child.stdout!.on('data', guard('streamed output', (chunk: Buffer) => target?.output(STDOUT, chunk), lose));
      child.stderr!.on('data', guard('streamed output', (chunk: Buffer) => target?.output(STDERR, chunk), lose));
      settle(
        'streamed exit',
        done.then((info) => {
          const to = target;
          target = undefined;
          for (const s of outputs) s.resume();
          to?.exit(info);
        }),
      );
      const pid = child.pid!;
      return {
        pid,
        write: (data) => {
          if (!stdin.writableEnded && !stdin.destroyed) stdin.write(data);
        },
        closeStdin: () => {
          if (!stdin.writableEnded) stdin.end();
        },
        signal: (signal) => {
          // Only a group that still exists: a bare pid could meanwhile belong to someone else.
          if (groupAlive(pid)) signalGroup(pid, signal);
        },
        pause: () => {
          if (target) for (const s of outputs) s.pause();
        },
        resume: () => {
          for (const s of outputs) s.resume();
        },
        detach: () => {
          target = undefined;
          for (const s of outputs) s.resume();
          if (!stdin.writableEnded) stdin.end();
        },
      };
    },

    /** SIGTERM to every process group still running, SIGKILL after 3 s. */
    close: () => groups.closeAll(),
  };
}
export type ProcessService = ReturnType<typeof createProcessService>;
