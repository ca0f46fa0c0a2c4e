import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Runs short commands (iptables, iptables-restore, du) from a small helper process instead of the server's own.
 *
 * Starting a process blocks the caller's event loop until the child has execed: libuv forks, then waits on a pipe
 * for the exec. From a server of 100+ MB that is busy on two cores, that wait is 10–20 ms per command, and every
 * sandbox start and removal runs one (its egress rules). The helper is a bare Node process started once (lazily):
 * its own loop takes those waits, and the server's only sends a message and reads the answer.
 *
 * The answer and the error are shaped like `execFile`'s: `stdout` and `stderr` as text; on failure an Error with
 * `code` (the exit status, or an errno name such as ENOENT), `signal`, `killed`, `stdout` and `stderr`. If the helper
 * dies, the commands it was running fail and the next call starts a new one.
 */
export interface RunOptions {
  /** Written to the command's standard input, which is then closed (empty and closed when not given). */
  input?: string;
  cwd?: string;
  /** The command is killed (SIGTERM) after this many ms, and the call fails with `killed` set. */
  timeout?: number;
  /** Largest stdout or stderr kept, in bytes; more kills the command (execFile's maxBuffer). Default 1 MiB. */
  maxBuffer?: number;
}

export interface CommandError extends Error {
  code?: number | string;
  signal?: string | null;
  killed?: boolean;
  stdout: string;
  stderr: string;
}

interface Request {
  id: number;
  cmd: string;
  args: string[];
  opts: RunOptions;
}

interface Answer {
  id: number;
  stdout: string;
  stderr: string;
  error?: { message: string; code?: number | string; signal?: string | null; killed?: boolean };
}

/**
 * The helper's whole program, run by `node -e` (so it must use nothing from this module's scope: it is sent as
 * source text). It exits when the server's end of the channel closes.
 */
function helperMain(): void {
  const { execFile } = process.getBuiltinModule('node:child_process');
  process.on('message', (m: Request) => {
    const child = execFile(m.cmd, m.args, { cwd: m.opts.cwd, timeout: m.opts.timeout, maxBuffer: m.opts.maxBuffer ?? 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: string | null; killed?: boolean }) | null;
      process.send!({ id: m.id, stdout, stderr, error: e ? { message: e.message, code: e.code, signal: e.signal, killed: e.killed } : undefined } satisfies Answer);
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(m.opts.input ?? '');
  });
  process.on('disconnect', () => process.exit(0));
}

let helper: ChildProcess | undefined;
let nextId = 1;
const pending = new Map<number, { resolve: (v: { stdout: string; stderr: string }) => void; reject: (e: Error) => void }>();

function startHelper(): ChildProcess {
  // None of the server's own flags (a profiler, an --import): a plain Node with a small young generation.
  const child = spawn(process.execPath, ['--max-semi-space-size=1', '-e', `(${helperMain.toString()})()`], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.on('message', (a: Answer) => {
    const call = pending.get(a.id);
    if (!call) return;
    pending.delete(a.id);
    if (pending.size === 0) idle(child);
    if (!a.error) return call.resolve({ stdout: a.stdout, stderr: a.stderr });
    call.reject(Object.assign(new Error(a.error.message), { code: a.error.code, signal: a.error.signal, killed: a.error.killed, stdout: a.stdout, stderr: a.stderr }));
  });
  const gone = (why: string) => {
    if (helper === child) helper = undefined;
    for (const [id, call] of pending) {
      pending.delete(id);
      call.reject(Object.assign(new Error(`the command helper ${why}`), { code: 'EHELPER', stdout: '', stderr: '' }));
    }
  };
  child.on('error', (err) => gone(`failed: ${err.message}`));
  child.on('exit', (code, signal) => gone(`exited (${code ?? signal})`));
  return child;
}

/** The helper holds the server open only while it runs a command for it. */
function idle(child: ChildProcess): void {
  child.unref();
  child.channel?.unref();
}

/** Runs `cmd args` in the helper process; see the module comment. */
export function runCommand(cmd: string, args: string[], opts: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
  helper ??= startHelper();
  const child = helper;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    child.ref();
    child.channel?.ref();
    child.send({ id, cmd, args, opts } satisfies Request, (err) => {
      if (!err || !pending.delete(id)) return;
      if (pending.size === 0) idle(child);
      reject(Object.assign(new Error(`the command helper did not take ${cmd}: ${err.message}`), { code: 'EHELPER', stdout: '', stderr: '' }));
    });
  });
}

/** Ends the helper (the next call starts another); for tests. */
export function stopCommandHelper(): void {
  helper?.kill('SIGKILL');
}
