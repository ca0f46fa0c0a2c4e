import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { shellQuote } from '../lib/shell';
import type { SshAccessDto } from '../wire/ssh';
import { CLIENT_OPTIONS_HELP, parseCommand, parseWholeNumber, UsageError } from './args';
import { createClient } from './client';
import { loadConnection } from './config';
import { print, printHelp, printJson } from './output';

const SSH_USAGE = `Usage: cove ssh ID [--expires MIN] [--print] [-- SSH_ARG...]

Opens an SSH session in a sandbox: mints an access token (the SSH user name) and runs the system's ssh with it,
then exits with ssh's exit code. Arguments after -- go to ssh after the destination: options (-L, -o …) and a
command to run instead of a shell.

  --expires MIN   how long the token is valid, in minutes (default 60)
  --print         print the ssh command instead of running it (so does --json: the token, its expiry and the
                  command as JSON)
${CLIENT_OPTIONS_HELP}`;

/** The ssh arguments of an access's `sshCommand` (`ssh -p PORT TOKEN@HOST`) followed by the caller's. */
export function sshArguments(sshCommand: string, extra: string[]): string[] {
  const words = sshCommand.trim().split(/\s+/);
  if (words[0] !== 'ssh' || words.length < 2) throw new Error(`the server sent an SSH command Cove cannot run: ${sshCommand}`);
  return [...words.slice(1), ...extra];
}

/** `cove ssh`: the system's ssh with a fresh token, attached to this terminal. */
export async function runSshCommand(argv: string[]): Promise<void> {
  const split = argv.indexOf('--');
  const own = split < 0 ? argv : argv.slice(0, split);
  const extra = split < 0 ? [] : argv.slice(split + 1);
  const { values, positionals } = parseCommand(own, { expires: { type: 'string' }, print: { type: 'boolean' } });
  if (values.help) return printHelp(SSH_USAGE, values.json);
  const [sandbox, ...more] = positionals;
  if (!sandbox) throw new UsageError('missing ID');
  if (more.length) throw new UsageError(`unexpected argument "${more[0]}" (ssh's arguments go after --)`);
  const expires = parseWholeNumber(values.expires, '--expires', 1, 30 * 24 * 60);

  const client = createClient(loadConnection(values));
  const access = await client.api<SshAccessDto>(`/sandbox/${encodeURIComponent(sandbox)}/ssh-access`, { method: 'POST', query: { expiresInMinutes: expires } });
  const args = sshArguments(access.sshCommand, extra);
  if (values.json) {
    return printJson({ sandboxId: access.sandboxId, token: access.token, expiresAt: access.expiresAt, sshCommand: access.sshCommand, command: ['ssh', ...args] });
  }
  if (values.print) return print(['ssh', ...args].map(shellQuote).join(' '));

  // Ctrl-C belongs to ssh (the terminal sends it to both): cove waits for ssh to end.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('ssh', args, { stdio: 'inherit' });
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new Error('no ssh command on this machine: install the OpenSSH client (or use --print)') : err),
      );
      child.once('exit', (status, signal) => resolve(status ?? 128 + (signal ? constants.signals[signal] : 0)));
    });
    process.exitCode = code;
  } finally {
    process.off('SIGINT', ignore);
  }
}
