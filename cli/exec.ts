import { shellQuote } from '../lib/shell';
import { STDERR, STDOUT, type ExecClientMessage, type ExecServerMessage } from '../wire/exec-stream';
import { CLIENT_OPTIONS_HELP, parseAssignments, parseCommand, parseWholeNumber, UsageError } from './args';
import { createClient } from './client';
import { loadConnection } from './config';
import { printHelp, printJson } from './output';

const EXEC_USAGE = `Usage: cove exec ID [--cwd DIR] [-e NAME=VALUE]... [--timeout S] -- COMMAND [ARG...]

Runs a command in a sandbox with its stdout, stderr and stdin connected to this terminal's, forwards Ctrl-C
(SIGINT) and SIGTERM to it, and exits with its exit code. With --json the output is collected instead and printed
as {"exitCode", "stdout", "stderr"} when the command ends.

  --cwd DIR       working directory in the sandbox
  -e NAME=VALUE   environment variable for the command (repeatable)
  --timeout S     kill the command after S seconds
${CLIENT_OPTIONS_HELP}`;

/** `cove exec`: Cove's streaming exec (WebSocket) through the server's toolbox forwarding. */
export async function runExecCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {
    cwd: { type: 'string' },
    env: { type: 'string', short: 'e', multiple: true },
    timeout: { type: 'string' },
  });
  if (values.help) return printHelp(EXEC_USAGE, values.json);
  const [sandbox, ...command] = positionals;
  if (!sandbox) throw new UsageError('missing ID');
  if (command.length === 0) throw new UsageError('missing the command to run (after --)');
  const envs = parseAssignments(values.env, '-e');
  const timeout = parseWholeNumber(values.timeout, '--timeout', 1);
  const json = values.json === true;

  const client = createClient(loadConnection(values));
  const { base } = await client.toolbox(sandbox);
  const collected = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  let exitCode: number | undefined;
  let failure: string | undefined;
  const ws = await client.openSocket(`${base}/process/exec/stream`, (data, isBinary) => {
    if (isBinary) {
      if (data[0] !== STDERR && data[0] !== STDOUT) return;
      const stream = data[0] === STDERR ? 'stderr' : 'stdout';
      if (json) collected[stream].push(Buffer.from(data.subarray(1)));
      else process[stream].write(data.subarray(1));
      return;
    }
    const message = JSON.parse(data.toString()) as ExecServerMessage;
    if (message.type === 'exit') exitCode = message.exitCode;
    if (message.type === 'error') failure = message.message;
  });
  const send = (message: ExecClientMessage) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(message));
  const forward = (signal: 'SIGINT' | 'SIGTERM') => () => send({ type: 'signal', signal });
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');

  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.once('close', () => resolve());
    send({
      type: 'start',
      command: command.length === 1 ? command[0] : command.map(shellQuote).join(' '),
      ...(values.cwd ? { cwd: values.cwd } : {}),
      ...(Object.keys(envs).length ? { envs } : {}),
      ...(timeout ? { timeout } : {}),
    });
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    process.stdin.on('data', (chunk: Buffer) => ws.readyState === ws.OPEN && ws.send(chunk));
    process.stdin.on('end', () => send({ type: 'close-stdin' }));
  }).finally(() => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.stdin.destroy();
  });

  if (failure !== undefined) throw new Error(failure);
  if (json) {
    printJson({ exitCode: exitCode ?? null, stdout: Buffer.concat(collected.stdout).toString('utf8'), stderr: Buffer.concat(collected.stderr).toString('utf8') });
  }
  process.exitCode = exitCode ?? 1;
}
