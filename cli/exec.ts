import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { shellQuote } from '../lib/shell';
import { STDERR, STDOUT, type ExecClientMessage, type ExecServerMessage } from '../wire/exec-stream';

const EXEC_USAGE = `Usage: cove exec SANDBOX [--api-url URL] [--cwd DIR] [-e NAME=VALUE]... [--timeout S] -- COMMAND [ARG...]

Runs a command in a sandbox with its stdout, stderr and stdin connected to this terminal's, forwards Ctrl-C
(SIGINT) and SIGTERM to it, and exits with its exit code.

  --api-url URL   the Cove API (COVE_API_URL, default http://localhost:3000/api)
  --cwd DIR       working directory in the sandbox
  -e NAME=VALUE   environment variable for the command (repeatable)
  --timeout S     kill the command after S seconds

The API key comes from COVE_API_KEY.`;

/** `cove exec`: Cove's streaming exec (WebSocket) through the server's toolbox forwarding. */
export async function runExecCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'api-url': { type: 'string' },
      cwd: { type: 'string' },
      env: { type: 'string', short: 'e', multiple: true },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [sandbox, ...command] = positionals;
  if (values.help || !sandbox || command.length === 0) {
    process.stdout.write(`${EXEC_USAGE}\n`);
    if (!values.help) process.exitCode = 2;
    return;
  }
  const apiKey = process.env.COVE_API_KEY;
  if (!apiKey) throw new Error('set COVE_API_KEY to an API key of the Cove server');
  const apiUrl = (values['api-url'] ?? process.env.COVE_API_URL ?? 'http://localhost:3000/api').replace(/\/$/, '');
  const envs: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new Error(`-e wants NAME=VALUE, got "${pair}"`);
    envs[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const headers = { Authorization: `Bearer ${apiKey}` };
  const answer = await fetch(`${apiUrl}/sandbox/${encodeURIComponent(sandbox)}/toolbox-proxy-url`, { headers });
  const body = (await answer.json()) as { url?: string; message?: string };
  if (!answer.ok || !body.url) throw new Error(body.message ?? `the server answered ${answer.status}`);

  const ws = new WebSocket(`${body.url.replace(/^http/, 'ws')}/${encodeURIComponent(sandbox)}/process/exec/stream`, { headers, perMessageDeflate: false });
  const send = (message: ExecClientMessage) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(message));
  const forward = (signal: 'SIGINT' | 'SIGTERM') => () => send({ type: 'signal', signal });
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');

  await new Promise<void>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        try {
          reject(new Error((JSON.parse(text) as { message?: string }).message));
        } catch {
          reject(new Error(`the server answered ${res.statusCode}`));
        }
      });
    });
    ws.once('error', reject);
    ws.once('open', () => {
      send({
        type: 'start',
        command: command.length === 1 ? command[0] : command.map(shellQuote).join(' '),
        ...(values.cwd ? { cwd: values.cwd } : {}),
        ...(Object.keys(envs).length ? { envs } : {}),
        ...(values.timeout ? { timeout: Number(values.timeout) } : {}),
      });
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
      process.stdin.on('data', (chunk: Buffer) => ws.readyState === ws.OPEN && ws.send(chunk));
      process.stdin.on('end', () => send({ type: 'close-stdin' }));
    });
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        (data[0] === STDERR ? process.stderr : data[0] === STDOUT ? process.stdout : process.stdout).write(data.subarray(1));
        return;
      }
      const message = JSON.parse(data.toString()) as ExecServerMessage;
      if (message.type === 'exit') process.exitCode = message.exitCode;
      if (message.type === 'error') {
        process.stderr.write(`cove exec: ${message.message}\n`);
        process.exitCode = 1;
      }
    });
    ws.once('close', () => resolve());
  }).finally(() => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.stdin.destroy();
  });
}
