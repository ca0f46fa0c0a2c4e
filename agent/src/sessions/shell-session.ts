import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { Writable } from 'node:stream';
import type { Session, SessionCommand } from '../../../wire/sessions';
import { CoveError } from '../../../lib/errors';
import { guard } from '../../../lib/guard';
import { shellQuote } from '../../../lib/shell';
import { childEnv, type SandboxContext } from '../system/context';
import { signalGroup } from '../system/process-group';
import { CommandLog, type StreamName } from './command-log';
import { MarkerSplitter } from './marker-splitter';

/** How long to wait, after the shell exited, for output still in the pipes (background jobs may hold them open). */
const DRAIN_AFTER_EXIT_MS = 200;
/** Input a command has not read yet that the agent holds for it; past this, more input is refused. */
const MAX_UNREAD_INPUT = 8 * 1024 * 1024;

interface ShellSessionOptions {
  /** Path of the shell: bash, or a POSIX sh. */
  shell: string;
  /** Bytes of output kept per command. */
  logCap: number;
  /** Bytes of output kept per session; past it the oldest finished commands' logs are cleared. */
  sessionBudget: number;
}

/** One command of a session, from queued to ended. */
export interface CommandRecord {
  id: string;
  command: string;
  /** `abandoned`: it was still queued when the shell ended, so it never ran. */
  state: 'queued' | 'running' | 'done' | 'abandoned';
  exitCode?: number;
  log: CommandLog;
  suppressInputEcho: boolean;
  /** Input sent while the command was queued, written once it starts. */
  pendingInput: string[];
  /** Settles when the command is done or abandoned. */
  settled: Promise<void>;
}

/**
 * A session: one long-lived shell process (its own process group) that runs commands one at a time, in the order
 * they were submitted, so cwd, exported variables and functions carry from one command to the next.
 *
 * How a command runs: the agent writes a small script to the shell's stdin (fd 0, read only by the shell itself).
 * The command runs through `command eval` (a syntax error fails the command, not the session) inside a `{ … }`
 * group whose redirections give it the session's input pipe as stdin and the output pipes as stdout/stderr. The
 * shell saves and restores the fds a group redirects, so even `exec >file` inside a command cannot break later
 * commands. After the group the shell prints an end marker carrying `$?` on stdout and another on stderr; the marker
 * holds a per-session random nonce so command output cannot forge it. A command is done when both markers arrived:
 * everything before them in each pipe is its output.
 *
 * Commands queue: the next script is written only after the previous command ended, so input sent to a queued
 * command waits for it and never reaches an earlier one. All commands share one input pipe, though: input a command
 * left unread is read by whichever command reads next. Output that background jobs write while no command runs goes to the latest command.
 * A command that ends the shell (`exit 3`, `exec …`) ends the session: that command gets the shell's exit status
 * (128+n for a signal), queued commands are abandoned, and further execs fail with SESSION_ENDED.
 */
export class ShellSession {
  readonly commands: CommandRecord[] = [];
  private readonly byId = new Map<string, CommandRecord>();
  private readonly queue: CommandRecord[] = [];
  private current?: CommandRecord;
  private outMarker?: number;
  private errMarker = false;
  private readonly child: ChildProcess;
  private readonly input: Writable;
  private readonly nonce = randomBytes(12).toString('hex');
  private readonly out: MarkerSplitter;
  private readonly err: MarkerSplitter;
  private retained = 0;
  private exited = false;
  private resolveEnded!: () => void;
  /** Settles once the shell has exited and its last output was collected. */
  readonly ended = new Promise<void>((r) => (this.resolveEnded = r));
  private readonly settle = new Map<CommandRecord, () => void>();

  constructor(
    readonly id: string,
    ctx: SandboxContext,
    private readonly opts: ShellSessionOptions,
  ) {
    const marker = Buffer.from(`\x1fcove:${this.nonce}:`, 'latin1');
    this.out = new MarkerSplitter(marker);
    this.err = new MarkerSplitter(marker);
    this.child = spawn(opts.shell, [], {
      cwd: ctx.workdir,
      env: childEnv(ctx),
      ...ctx.spawnAs,
      detached: true,
      // fd 0: the script the agent feeds the shell; 1, 2: output; 3: input for the running command.
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    this.input = this.child.stdio[3] as Writable;
    // Pipe errors (EPIPE once the shell is gone) are expected and must never reach the process's error handler.
    for (const s of this.child.stdio) s?.on('error', () => {});
    this.child.on('error', () => this.onExit(127, null));
    if (!this.child.pid) {
      // spawn reports the reason asynchronously; the caller needs an answer now.
      this.onExit(127, null);
      throw new CoveError('INTERNAL_ERROR', `Could not start a shell for session ${id}`, `${opts.shell} in ${ctx.workdir}`);
    }
    // A follower that fails to take output must not stop the session's bookkeeping, nor the agent.
    this.child.stdout!.on('data', guard('session output', (d: Buffer) => this.onOutput('stdout', d), () => {}));
    this.child.stderr!.on('data', guard('session output', (d: Buffer) => this.onOutput('stderr', d), () => {}));
    this.child.on('exit', (code, signal) => this.onExit(code, signal));
    // Keep private copies of the pipes on fds 7-9; every command gets them back as 0-2 (see above).
    this.child.stdin!.write('exec 7<&3 3<&- 8>&1 9>&2\n');
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the shell has ended (the session then only answers questions about its past). */
  get isEnded(): boolean {
    return this.exited;
  }

  /** Queues a command; it runs once every earlier command has ended. */
  execute(command: string, suppressInputEcho = false): CommandRecord {
    if (this.exited) {
      throw new CoveError('SESSION_ENDED', `Session ${this.id} has ended; its shell exited`);
    }
    let settle!: () => void;
    const record: CommandRecord = {
      id: randomUUID(),
      command,
      state: 'queued',
      log: new CommandLog(this.opts.logCap),
      suppressInputEcho,
      pendingInput: [],
      settled: new Promise<void>((r) => (settle = r)),
    };
    this.settle.set(record, settle);
    this.commands.push(record);
    this.byId.set(record.id, record);
    this.queue.push(record);
    this.runNext();
    return record;
  }

  command(commandId: string): CommandRecord {
    const record = this.byId.get(commandId);
    if (!record) throw new CoveError('COMMAND_NOT_FOUND', `Session ${this.id} has no command ${commandId}`);
    return record;
  }

  /** Writes to the stdin of a command (held back until it starts if it is still queued). */
  sendInput(commandId: string, data: string): void {
    const record = this.command(commandId);
    if (record.state === 'done') {
      throw new CoveError('COMMAND_ALREADY_COMPLETED', `Command ${commandId} has already completed; it takes no more input`);
    }
    if (record.state === 'abandoned') {
      throw new CoveError('SESSION_ENDED', `Session ${this.id} ended before command ${commandId} could run`);
    }
    if (this.input.writableLength > MAX_UNREAD_INPUT) {
      throw new CoveError('PAYLOAD_TOO_LARGE', `Command ${commandId} is not reading its input; ${this.input.writableLength} bytes are still waiting`);
    }
    if (record.state === 'queued') record.pendingInput.push(data);
    else this.writeInput(record, data);
  }

  info(): Session {
    return { sessionId: this.id, commands: this.commands.map(describeCommand) };
  }

  /** Signals the shell's whole process group (background jobs included). */
  signal(sig: NodeJS.Signals): void {
    signalGroup(this.child.pid, sig);
  }

  /** Lets go of the shell's pipes (after it was killed), so nothing that escaped the group keeps them alive here. */
  dispose(): void {
    for (const s of this.child.stdio) s?.destroy();
  }

  private writeInput(record: CommandRecord, data: string): void {
    if (!record.suppressInputEcho) this.append(record, 'stdout', Buffer.from(data));
    this.input.write(data);
  }

  private runNext(): void {
    if (this.current || this.exited) return;
    const next = this.queue.shift();
    if (!next) return;
    this.current = next;
    next.state = 'running';
    const mark = `\\037cove:${this.nonce}:`;
    this.child.stdin!.write(
      `{ command eval ${shellQuote(next.command)}\n} <&7 >&8 2>&9 7<&- 8>&- 9>&-\n` +
        `command printf '${mark}%d\\037' "$?"\ncommand printf '${mark}\\037' >&2\n`,
    );
    for (const data of next.pendingInput.splice(0)) this.writeInput(next, data);
  }

  /** Where output goes: the running command, else the latest one (a background job it started). */
  private target(): CommandRecord | undefined {
    return this.current ?? this.commands.at(-1);
  }

  private onOutput(stream: StreamName, chunk: Buffer): void {
    const events = (stream === 'stdout' ? this.out : this.err).push(chunk);
    for (const e of events) {
      if (e.type === 'data') {
        const target = this.target();
        if (target) this.append(target, stream, e.data);
      } else if (stream === 'stdout') {
        this.outMarker = Number(e.trailer) || 0;
        this.maybeFinish();
      } else {
        this.errMarker = true;
        this.maybeFinish();
      }
    }
  }

  private maybeFinish(): void {
    if (this.outMarker === undefined || !this.errMarker) return;
    const code = this.outMarker;
    this.outMarker = undefined;
    this.errMarker = false;
    if (!this.current) return;
    this.finish(this.current, 'done', code);
    this.current = undefined;
    this.runNext();
  }

  private finish(record: CommandRecord, state: 'done' | 'abandoned', exitCode?: number): void {
    record.state = state;
    record.exitCode = exitCode;
    record.log.end();
    this.settle.get(record)?.();
    this.settle.delete(record);
  }

  private append(record: CommandRecord, stream: StreamName, data: Buffer): void {
    this.retained += record.log.append(stream, data);
    if (this.retained <= this.opts.sessionBudget) return;
    // Over the session's budget: the oldest finished commands lose their logs first.
    for (const old of this.commands) {
      if (this.retained <= this.opts.sessionBudget) break;
      if (old !== record && old.state === 'done') this.retained -= old.log.clear();
    }
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    const status = code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0);
    let done = false;
    const collect = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const target = this.target();
      if (target) {
        this.append(target, 'stdout', this.out.flush());
        this.append(target, 'stderr', this.err.flush());
      }
      if (this.current) this.finish(this.current, 'done', status);
      this.current = undefined;
      for (const queued of this.queue.splice(0)) this.finish(queued, 'abandoned');
      this.resolveEnded();
    };
    const timer = setTimeout(collect, DRAIN_AFTER_EXIT_MS);
    this.child.once('close', collect);
  }
}

export function describeCommand(record: CommandRecord): SessionCommand {
  return record.exitCode === undefined
    ? { id: record.id, command: record.command }
    : { id: record.id, command: record.command, exitCode: record.exitCode };
}
