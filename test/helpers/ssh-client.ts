import { spawn } from 'node:child_process';
import type { TestCove } from './cove';

/** The OpenSSH client options every test uses: no host-key prompts or files, never a password prompt. */
export const SSH_CLIENT_OPTS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes'];

/** The SSH gateway port a test server said in its ready line; throws with that line (and why SSH is off) if none. */
export function sshPortOf(cove: TestCove): number {
  const out = cove.output();
  const port = /SSH port (\d+)/.exec(out)?.[1];
  if (port) return Number(port);
  const ready = /cove listening on [^\n]*/.exec(out)?.[0];
  throw new Error(`the server's ready line names no SSH port: ${ready ?? '(no ready line)'}\n${out.slice(-2000)}`);
}

interface ProgramResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr as they came. */
  out: string;
}

/** Runs a program to its end (no stdin); resolves with its exit code and output. */
export function runProgram(cmd: string, args: string[]): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const result: ProgramResult = { code: null, stdout: '', stderr: '', out: '' };
    child.stdout.on('data', (d) => {
      result.stdout += d;
      result.out += d;
    });
    child.stderr.on('data', (d) => {
      result.stderr += d;
      result.out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ ...result, code }));
  });
}

/**
 * Runs `command` in a sandbox through the SSH gateway with the real OpenSSH client and an access token. `quiet`
 * hides the gateway's banner (LogLevel=ERROR; refusal tests want it), `tty` asks for a terminal (-tt).
 */
export function sshCommand(port: number, token: string, command: string, opts: { quiet?: boolean; tty?: boolean } = {}): Promise<ProgramResult> {
  return runProgram('ssh', [
    '-p',
    String(port),
    ...SSH_CLIENT_OPTS,
    '-o',
    `LogLevel=${opts.quiet === false ? 'INFO' : 'ERROR'}`,
    ...(opts.tty ? ['-tt'] : []),
    `${token}@127.0.0.1`,
    command,
  ]);
}
