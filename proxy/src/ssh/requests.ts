import net from 'node:net';
import os from 'node:os';
import { MAX_CONTROL_FRAME, SshSignal, type SshExit, type SshSessionStart } from '../../../wire/ssh';

/**
 * What the gateway accepts from an SSH client, as total functions: every input gives a value or a refusal (with a
 * reason for the log), never an exception. ssh2 hands strings over already decoded (UTF-8, invalid bytes replaced),
 * and numbers as uint32.
 */

export type Checked<T> = { ok: true; value: T } | { ok: false; why: string };
const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const no = (why: string): Checked<never> => ({ ok: false, why });

/** Largest terminal the agent accepts (wire/ssh.ts SshPty); larger requests are clamped to it. */
export const MAX_TERMINAL_SIDE = 10_000;
/** OpenSSH's sshd keeps at most this many env requests per session. */
const MAX_ENV_VARS = 128;
const MAX_ENV_NAME = 256;
/** Names and values of one session together. */
const MAX_ENV_BYTES = 64 * 1024;

/**
 * Variables a client may not set with `env` requests (`ssh -o SendEnv/SetEnv`). Like sshd, which sets these itself
 * after the client's variables: the account (USER, LOGNAME, HOME, SHELL, MAIL), PATH and everything SSH_*
 * (SSH_CLIENT, SSH_CONNECTION, SSH_ORIGINAL_COMMAND, SSH_TTY, SSH_AUTH_SOCK). Beyond sshd: the names that change
 * programs the agent starts on the client's behalf rather than the client's own command — the agent's own settings
 * (COVE_*), the dynamic loader (LD_*: the SFTP server is the agent's bundled Node, started through its own loader) and
 * NODE_OPTIONS. Everything else a shell could hold is the user's business in their own sandbox (sshd with
 * `AcceptEnv *`), which the sandbox user could set in the command anyway.
 */
const RESERVED_ENV = /^(USER|LOGNAME|HOME|SHELL|MAIL|PATH|SSH_.*|COVE_.*|LD_.*|NODE_OPTIONS)$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One `env` request, given the variables already accepted for the session. */
export function checkEnv(name: unknown, value: unknown, current: Readonly<Record<string, string>>): Checked<{ name: string; value: string }> {
  if (typeof name !== 'string' || typeof value !== 'string') return no('not a string');
  if (name.length > MAX_ENV_NAME || !ENV_NAME.test(name)) return no('not a variable name');
  if (RESERVED_ENV.test(name)) return no(`${name} is set by the session itself`);
  if (value.includes('\0')) return no('NUL in the value');
  const entries = Object.entries(current).filter(([k]) => k !== name);
  if (entries.length >= MAX_ENV_VARS) return no('too many variables');
  const bytes = entries.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (bytes + Buffer.byteLength(name) + Buffer.byteLength(value) > MAX_ENV_BYTES) return no('the variables are too large');
  return ok({ name, value });
}

/** A terminal size: 0 (or anything not a number) keeps `fallback`, as RFC 4254 says of zero; large is clamped. */
export function terminalSide(value: unknown, fallback: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1) return fallback;
  return Math.min(MAX_TERMINAL_SIDE, Math.floor(value));
}

export interface Pty {
  term: string;
  cols: number;
  rows: number;
}

/** A `pty-req`. TERM is a terminfo name: printable ASCII without spaces, at most 256 characters (empty: the default). */
export function checkPty(info: { term?: unknown; cols?: unknown; rows?: unknown } | undefined): Checked<Pty> {
  if (!info || typeof info !== 'object') return no('no terminal description');
  const term = info.term === undefined || info.term === '' ? 'xterm-256color' : info.term;
  if (typeof term !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(term)) return no('not a terminal name');
  return ok({ term, cols: terminalSide(info.cols, 80), rows: terminalSide(info.rows, 24) });
}

/** An `exec` command: any text the shell gets with `-c`, but no NUL (sshd reads it as a C string and refuses). */
export function checkCommand(command: unknown): Checked<string> {
  if (typeof command !== 'string') return no('not a string');
  if (command.includes('\0')) return no('NUL in the command');
  return ok(command);
}

/** The only subsystem served. */
export function checkSubsystem(name: unknown): Checked<'sftp'> {
  return name === 'sftp' ? ok('sftp') : no('unknown subsystem');
}

/** A `signal` request: the POSIX names of RFC 4254 §6.9 (without SIG). */
export function checkSignal(name: unknown): Checked<SshSignal['signal']> {
  const parsed = SshSignal.safeParse({ signal: name });
  return parsed.success ? ok(parsed.data.signal) : no('not a signal name');
}

/** The session's first frame, or a refusal when it would exceed what the agent reads as one control frame. */
export function startFrame(req: SshSessionStart): Checked<Buffer> {
  const body = Buffer.from(JSON.stringify(req));
  return body.length > MAX_CONTROL_FRAME ? no('the command and environment are too large') : ok(body);
}

const HOST_LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const HOST_NAME = new RegExp(`^${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);

/** A host name or an IP address (IPv6 without brackets, as SSH sends it, and without a zone), at most 253 characters. */
export function checkHost(host: unknown): Checked<string> {
  if (typeof host !== 'string' || host.length === 0 || host.length > 253) return no('not a host');
  if ((net.isIP(host) && /^[0-9A-Fa-f.:]+$/.test(host)) || HOST_NAME.test(host)) return ok(host);
  return no('not a host');
}

const isPort = (port: unknown): port is number => typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535;

/**
 * A `direct-tcpip` target (`ssh -L`). It is reached from inside the sandbox (its network namespace, behind the same
 * firewall as the sandbox's own programs), so a client reaches no more than a command in the sandbox could.
 */
export function checkConnect(host: unknown, port: unknown): Checked<{ host: string; port: number }> {
  const h = checkHost(host);
  if (!h.ok) return h;
  if (!isPort(port) || port === 0) return no('not a port');
  return ok({ host: h.value, port });
}

/** First port a non-root user may listen on; sshd refuses lower remote forwards to anyone but root. */
const FIRST_UNPRIVILEGED_PORT = 1024;

/**
 * A `tcpip-forward` (`ssh -R`) address and port: '' or '*' (every address), a host or an IP, and port 0 (pick one)
 * or an unprivileged port — the agent listens as itself, and the sandbox user could not bind a lower one.
 */
export function checkListen(address: unknown, port: unknown): Checked<{ address: string; port: number }> {
  if (address !== '' && address !== '*') {
    const h = checkHost(address);
    if (!h.ok) return h;
  }
  if (!isPort(port)) return no('not a port');
  if (port !== 0 && port < FIRST_UNPRIVILEGED_PORT) return no('a privileged port');
  return ok({ address: address as string, port });
}

/** SSH signal names ssh2 (and RFC 4254) can report as an exit signal. */
const EXIT_SIGNALS: ReadonlySet<string> = new Set(SshSignal.shape.signal.options);

/**
 * How a session's end is told to the client. RFC 4254 names only some signals; a process ended by another one (BUS,
 * XCPU, SYS…) is reported the way a shell reports it, as exit status 128 + its number. Statuses are uint32 on the
 * wire; anything else the agent might send becomes 255.
 */
export function exitReply(exit: SshExit): { code: number } | { signal: string; coreDumped: boolean } {
  if ('code' in exit) return { code: Number.isInteger(exit.code) && exit.code >= 0 && exit.code <= 0xffffffff ? exit.code : 255 };
  const name = exit.signal.replace(/^SIG/, '');
  if (EXIT_SIGNALS.has(name)) return { signal: name, coreDumped: exit.coreDumped };
  const number = (os.constants.signals as Record<string, number | undefined>)[`SIG${name}`];
  return { code: typeof number === 'number' ? 128 + number : 255 };
}
