/**
 * The Process capability against a real agent process: one-shot execute and code-run, the streaming exec WebSocket
 * and its SSE variant, and the Daytona SDK's own toolbox client.
 */
import { Configuration, ProcessApi } from '@daytona/toolbox-api-client';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STDERR, STDOUT, type ExecExitMessage, type ExecServerMessage } from '../../wire/exec-stream';
import type { CodeRunResponse, ExecuteResponse } from '../../wire/process';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

let agent: TestAgent;

beforeAll(async () => {
  agent = await startAgent({ env: { COVE_TEST_BASE: 'from-agent' } });
});
afterAll(async () => {
  await agent?.stop();
});

/** A process that exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function post(p: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await agent.fetch(p, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

const execute = (body: unknown) => agent.json<ExecuteResponse>('/process/execute', { method: 'POST', json: body });
const codeRun = (body: unknown) => agent.json<CodeRunResponse>('/process/code-run', { method: 'POST', json: body });

/** One streamed command over the WebSocket, with everything it received. */
interface StreamClient {
  ws: WebSocket;
  stdout: () => string;
  stderr: () => string;
  messages: ExecServerMessage[];
  started: Promise<number>;
  /** The exit message and the close code. */
  ended: Promise<{ exit?: ExecExitMessage; code: number; reason: string }>;
}

function streamExec(start: Record<string, unknown> | string, afterStart?: (ws: WebSocket) => void): StreamClient {
  const ws = agent.ws('/process/exec/stream');
  const out: Record<number, Buffer[]> = { [STDOUT]: [], [STDERR]: [] };
  const messages: ExecServerMessage[] = [];
  let onStarted!: (pid: number) => void;
  const started = new Promise<number>((r) => (onStarted = r));
  ws.on('open', () => {
    ws.send(typeof start === 'string' ? start : JSON.stringify({ type: 'start', ...start }));
    afterStart?.(ws);
  });
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) out[data[0]].push(data.subarray(1));
    else {
      const message = JSON.parse(data.toString()) as ExecServerMessage;
      messages.push(message);
      if (message.type === 'started') onStarted(message.pid);
    }
  });
  const ended = new Promise<{ exit?: ExecExitMessage; code: number; reason: string }>((resolve, reject) => {
    ws.on('error', reject);
    ws.on('close', (code, reason) =>
      resolve({ exit: messages.find((m): m is ExecExitMessage => m.type === 'exit'), code, reason: reason.toString() }),
    );
  });
  return {
    ws,
    stdout: () => Buffer.concat(out[STDOUT]).toString(),
    stderr: () => Buffer.concat(out[STDERR]).toString(),
    messages,
    started,
    ended,
  };
}

/** Reads a whole SSE answer into its events. */
async function sseEvents(res: Response): Promise<{ event: string; data: any }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('event: '))
    .map((block) => {
      const [eventLine, dataLine] = block.split('\n');
      return { event: eventLine.slice('event: '.length), data: JSON.parse(dataLine.slice('data: '.length)) };
    });
}

describe('POST /process/execute', () => {
  it('answers the exit code and the output', async () => {
    expect(await execute({ command: 'echo hi' })).toEqual({ exitCode: 0, result: 'hi\n' });
    expect(await execute({ command: 'echo failing; exit 3' })).toEqual({ exitCode: 3, result: 'failing\n' });
    expect((await execute({ command: 'no-such-command-here' })).exitCode).toBe(127);
    // A command killed by a signal reports 128 + the signal number, as shells do.
    expect((await execute({ command: 'kill -TERM $$' })).exitCode).toBe(143);
  });

  it('interleaves stdout and stderr in the order they were written', async () => {
    const command = 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "out $i"; echo "err $i" >&2; done';
    const expected = Array.from({ length: 10 }, (_, i) => `out ${i + 1}\nerr ${i + 1}\n`).join('');
    expect((await execute({ command })).result).toBe(expected);
  });

  it('runs in the work dir by default, and in a relative or absolute cwd', async () => {
    mkdirSync(path.join(agent.workdir, 'sub/deeper'), { recursive: true });
    expect((await execute({ command: 'pwd' })).result.trim()).toBe(agent.workdir);
    expect((await execute({ command: 'pwd', cwd: 'sub' })).result.trim()).toBe(path.join(agent.workdir, 'sub'));
    const abs = path.join(agent.workdir, 'sub/deeper');
    expect((await execute({ command: 'pwd', cwd: abs })).result.trim()).toBe(abs);
    const missing = await post('/process/execute', { command: 'pwd', cwd: 'not-there' });
    expect(missing.status).toBe(400);
    expect(missing.json.message).toContain('not-there');
  });

  it('passes envs over the sandbox environment', async () => {
    const res = await execute({ command: 'echo "$GREETING|$COVE_TEST_BASE|$HOME"', envs: { GREETING: 'hello world' } });
    expect(res.result.split('|').slice(0, 2)).toEqual(['hello world', 'from-agent']);
    const overridden = await execute({ command: 'echo "$COVE_TEST_BASE"', envs: { COVE_TEST_BASE: 'from-request' } });
    expect(overridden.result).toBe('from-request\n');
    // The agent's own secret never reaches user code.
    expect((await execute({ command: 'echo "[$COVE_AGENT_TOKEN]"' })).result).toBe('[]\n');
  });

  it('kills the whole process group on timeout and answers 408 PROCESS_EXECUTION_TIMEOUT', async () => {
    const dir = path.join(agent.workdir, 'timeout');
    mkdirSync(dir, { recursive: true });
    const res = await post('/process/execute', {
      command: 'echo $$ > shell.pid; sleep 300 & echo $! > sleep.pid; wait',
      cwd: dir,
      timeout: 1,
    });
    expect(res.status).toBe(408);
    expect(res.json).toMatchObject({ code: 'PROCESS_EXECUTION_TIMEOUT', source: 'DAYTONA_DAEMON' });
    expect(res.json.message).toMatch(/1 s/);
    const shellPid = Number(readFileSync(path.join(dir, 'shell.pid'), 'utf8'));
    const sleepPid = Number(readFileSync(path.join(dir, 'sleep.pid'), 'utf8'));
    expect(sleepPid).toBeGreaterThan(0);
    await waitFor(() => !alive(sleepPid) && !alive(shellPid), 10_000, 'the timed-out group to be gone');
  });

  it('answers when the command is done even if it left a background process holding its output', async () => {
    const res = await execute({ command: 'sleep 30 & echo $!; echo started' });
    const [bgPid, word] = res.result.trim().split('\n');
    expect(word).toBe('started');
    // The command is over, but what it started in the background is not killed.
    expect(alive(Number(bgPid))).toBe(true);
    process.kill(Number(bgPid), 'SIGKILL');
  });

  it('keeps at most 10 MiB of output and says what it dropped', async () => {
    const total = 11 * 1024 * 1024;
    const res = await execute({ command: `printf begin; head -c ${total} /dev/zero | tr '\\0' x; printf end` });
    expect(res.exitCode).toBe(0);
    expect(res.result.startsWith('beginxxx')).toBe(true);
    expect(res.result.endsWith('xxxend')).toBe(true);
    const marker = /\[cove: output truncated: (\d+) bytes omitted/.exec(res.result);
    expect(marker).not.toBeNull();
    expect(Number(marker![1])).toBe(total + 'beginend'.length - 10 * 1024 * 1024);
  });

  it('rejects bad input with 400 and a message', async () => {
    const missing = await post('/process/execute', { cwd: '/' });
    expect(missing.status).toBe(400);
    expect(missing.json.code).toBe('INVALID_REQUEST');
    expect(missing.json.message).toContain('command');

    const wrongType = await post('/process/execute', { command: 'echo', timeout: 'soon' });
    expect(wrongType.status).toBe(400);
    expect(wrongType.json.message).toContain('timeout');

    const wrongEnvs = await post('/process/execute', { command: 'echo', envs: { A: 1 } });
    expect(wrongEnvs.status).toBe(400);
    expect(wrongEnvs.json.message).toContain('envs');

    const empty = await post('/process/execute', { command: '' });
    expect(empty.status).toBe(400);

    const nul = await post('/process/execute', { command: 'echo a\u0000b' });
    expect(nul.status).toBe(400);
    expect(nul.json.message).toContain('NUL');

    const huge = await post('/process/execute', { command: `echo ${'x'.repeat(200 * 1024)}` });
    expect(huge.status).toBe(413);
    expect(huge.json.code).toBe('PAYLOAD_TOO_LARGE');

    const malformed = await post('/process/execute', '{"command": "echo');
    expect(malformed.status).toBe(400);
    expect(malformed.json.code).toBe('INVALID_JSON');
  });

  it('works with the Daytona SDK toolbox client, including its typed timeout', async () => {
    const api = new ProcessApi(
      new Configuration({ basePath: agent.url, baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } } }),
    );
    const res = await api.executeCommand({ command: 'echo "$WHO" && pwd', cwd: 'sub', envs: { WHO: 'sdk' } });
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ exitCode: 0, result: `sdk\n${path.join(agent.workdir, 'sub')}\n` });
    const err = await api.executeCommand({ command: 'sleep 30', timeout: 1 }).catch((e) => e);
    expect(err.response?.status).toBe(408);
    expect(err.response?.data?.code).toBe('PROCESS_EXECUTION_TIMEOUT');
  });
});

describe('POST /process/code-run', () => {
  it('runs python with argv and envs', async () => {
    const res = await codeRun({
      language: 'python',
      code: 'import os, sys\nprint(sys.argv[1:], os.environ["COLOR"])\nprint("to stderr", file=sys.stderr)\nsys.exit(5)',
      argv: ['a', 'b c'],
      envs: { COLOR: 'blue' },
    });
    expect(res).toMatchObject({ exitCode: 5, result: "['a', 'b c'] blue\nto stderr\n" });
  });

  it('runs javascript with the agent\'s own Node, argv, envs and ES module syntax', async () => {
    const cjs = await codeRun({
      language: 'javascript',
      code: 'const os = require("os"); console.log(process.argv.slice(2).join(","), process.env.COLOR, typeof os.cpus)',
      argv: ['x', 'y'],
      envs: { COLOR: 'red' },
    });
    expect(cjs).toMatchObject({ exitCode: 0, result: 'x,y red function\n' });
    const esm = await codeRun({
      language: 'javascript',
      code: 'import { join } from "node:path";\nconsole.log(join("a", "b"), await Promise.resolve(42));',
    });
    expect(esm).toMatchObject({ exitCode: 0, result: 'a/b 42\n' });
  });

  it('runs typescript with types, without a network, with argv and envs', async () => {
    const code = [
      'interface Point { x: number; y: number }',
      'function sum<T extends Point>(points: T[]): number { return points.reduce((n, p) => n + p.x + p.y, 0); }',
      'enum Color { Red = "red" }',
      'const args: string[] = process.argv.slice(2);',
      'console.log(sum([{ x: 1, y: 2 }, { x: 3, y: 4 }]), Color.Red, args.join("+"), process.env.MODE as string);',
    ].join('\n');
    const res = await codeRun({ language: 'typescript', code, argv: ['p', 'q'], envs: { MODE: 'typed' } });
    expect(res).toMatchObject({ exitCode: 0, result: '10 red p+q typed\n' });
  });

  it('reports syntax errors as a failed run', async () => {
    const py = await codeRun({ language: 'python', code: 'def broken(:\n  pass' });
    expect(py.exitCode).toBe(1);
    expect(py.result).toContain('SyntaxError');
    const js = await codeRun({ language: 'javascript', code: 'const = 1;' });
    expect(js.exitCode).toBe(1);
    expect(js.result).toContain('SyntaxError');
    const ts = await codeRun({ language: 'typescript', code: 'const n: number = ;' });
    expect(ts.exitCode).toBe(1);
    expect(ts.result).toMatch(/main\.ts\(1,\d+\): error TS\d+/);
  });

  it('kills a program that runs past its timeout', async () => {
    const res = await post('/process/code-run', { language: 'python', code: 'import time\ntime.sleep(60)', timeout: 1 });
    expect(res.status).toBe(408);
    expect(res.json.code).toBe('PROCESS_EXECUTION_TIMEOUT');
  });

  it('rejects an unknown language and bad input with 400', async () => {
    const ruby = await post('/process/code-run', { language: 'ruby', code: 'puts 1' });
    expect(ruby.status).toBe(400);
    expect(ruby.json.code).toBe('UNSUPPORTED_LANGUAGE');
    expect(ruby.json.message).toContain('ruby');
    const noCode = await post('/process/code-run', { language: 'python' });
    expect(noCode.status).toBe(400);
    expect(noCode.json.message).toContain('code');
    const noPython = await post('/process/code-run', { language: 'python', code: 'print(1)', envs: { PATH: '/nonexistent' } });
    expect(noPython.status).toBe(400);
    expect(noPython.json.code).toBe('UNSUPPORTED_LANGUAGE');
    expect(noPython.json.message).toContain('python3 was not found');
    const badArgv = await post('/process/code-run', { language: 'python', code: 'print(1)', argv: 'a b' });
    expect(badArgv.status).toBe(400);
    expect(badArgv.json.message).toContain('argv');
  });
});

describe('streaming exec WebSocket /process/exec/stream', () => {
  it('streams stdout and stderr on their channels, then the exit code, then closes with 1000', async () => {
    const c = streamExec({ command: 'echo out; echo err >&2; exit 4' });
    expect(await c.started).toBeGreaterThan(0);
    const { exit, code } = await c.ended;
    expect(c.stdout()).toBe('out\n');
    expect(c.stderr()).toBe('err\n');
    expect(exit).toEqual({ type: 'exit', exitCode: 4, signal: null, timedOut: false });
    expect(code).toBe(1000);
    expect(c.messages[0].type).toBe('started');
  });

  it('takes stdin as binary frames and ends it on close-stdin', async () => {
    const c = streamExec({ command: 'cat; echo "<eof>"', cwd: 'sub', envs: { X: '1' } });
    await c.started;
    c.ws.send(Buffer.from('line one\n'), { binary: true });
    await waitFor(() => c.stdout() === 'line one\n', 10_000, 'the first line to come back');
    c.ws.send(Buffer.from('line two\n'), { binary: true });
    c.ws.send(JSON.stringify({ type: 'close-stdin' }));
    const { exit } = await c.ended;
    expect(c.stdout()).toBe('line one\nline two\n<eof>\n');
    expect(exit?.exitCode).toBe(0);
  });

  it('keeps stdin and controls sent right behind the start message', async () => {
    const c = streamExec({ command: 'wc -c' }, (ws) => {
      ws.send(Buffer.from('12345'), { binary: true });
      ws.send(JSON.stringify({ type: 'close-stdin' }));
    });
    const { exit } = await c.ended;
    expect(c.stdout().trim()).toBe('5');
    expect(exit?.exitCode).toBe(0);
  });

  it('delivers signals to the command', async () => {
    const c = streamExec({ command: "trap 'echo got INT; exit 7' INT; echo ready; while :; do sleep 0.05; done" });
    await waitFor(() => c.stdout().includes('ready'), 10_000, 'the trap to be set');
    c.ws.send(JSON.stringify({ type: 'signal', signal: 'SIGINT' }));
    const { exit } = await c.ended;
    expect(c.stdout()).toContain('got INT');
    expect(exit?.exitCode).toBe(7);

    const killed = streamExec({ command: 'exec sleep 60' });
    await killed.started;
    killed.ws.send(JSON.stringify({ type: 'signal', signal: 'SIGKILL' }));
    expect((await killed.ended).exit).toMatchObject({ exitCode: 137, signal: 'SIGKILL', timedOut: false });
  });

  it('keeps the command running when the client disconnects', async () => {
    const marker = path.join(agent.workdir, 'after-disconnect.txt');
    const c = streamExec({ command: `sleep 1; echo finished > ${marker}` });
    const pid = await c.started;
    c.ws.terminate();
    await c.ended;
    expect(alive(pid)).toBe(true);
    await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8') === 'finished\n', 15_000, 'the command to finish');
  });

  it('ends a command at its timeout', async () => {
    const c = streamExec({ command: 'echo begun; sleep 60', timeout: 1 });
    const { exit } = await c.ended;
    expect(c.stdout()).toBe('begun\n');
    expect(exit).toMatchObject({ exitCode: 137, signal: 'SIGKILL', timedOut: true });
  });

  it('rejects a bad start with an error message and close code 4400', async () => {
    const missing = streamExec({ cwd: '/' });
    const ended = await missing.ended;
    expect(ended.code).toBe(4400);
    expect(missing.messages[0]).toMatchObject({ type: 'error', code: 'INVALID_REQUEST' });
    expect((missing.messages[0] as { message: string }).message).toContain('command');

    const malformed = streamExec('{not json');
    expect((await malformed.ended).code).toBe(4400);
    expect(malformed.messages[0]).toMatchObject({ type: 'error', code: 'INVALID_JSON' });

    const badCwd = streamExec({ command: 'pwd', cwd: 'not-there' });
    expect((await badCwd.ended).code).toBe(4400);
    expect(badCwd.messages[0]).toMatchObject({ type: 'error', code: 'INVALID_REQUEST' });
  });

  it('answers a bad control message with an error and keeps the command', async () => {
    const c = streamExec({ command: 'cat' });
    await c.started;
    c.ws.send(JSON.stringify({ type: 'signal', signal: 'SIGNOPE' }));
    await waitFor(() => c.messages.some((m) => m.type === 'error'), 10_000, 'an error message');
    c.ws.send(Buffer.from('still here\n'), { binary: true });
    c.ws.send(JSON.stringify({ type: 'close-stdin' }));
    const { exit } = await c.ended;
    expect(c.stdout()).toBe('still here\n');
    expect(exit?.exitCode).toBe(0);
  });
});

describe('streaming exec SSE POST /process/exec/stream', () => {
  it('sends started, stdout, stderr and exit events', async () => {
    const res = await agent.fetch('/process/exec/stream', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ command: 'echo "$A"; echo oops >&2; printf "caf\\303\\251"; exit 2', envs: { A: 'hi' } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = await sseEvents(res);
    expect(events[0].event).toBe('started');
    expect(events[0].data.pid).toBeGreaterThan(0);
    const text = (name: string) => events.filter((e) => e.event === name).map((e) => e.data.data).join('');
    expect(text('stdout')).toBe('hi\ncafé');
    expect(text('stderr')).toBe('oops\n');
    expect(events.at(-1)).toEqual({ event: 'exit', data: { type: 'exit', exitCode: 2, signal: null, timedOut: false } });
  });

  it('rejects a bad body with 400 before streaming', async () => {
    const bad = await post('/process/exec/stream', { command: 42 });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain('command');
  });
});

describe('agent shutdown', () => {
  it('ends the process groups it started, background ones included', async () => {
    const own = await startAgent();
    try {
      const res = await own.json<ExecuteResponse>('/process/execute', { method: 'POST', json: { command: 'sleep 300 & echo $!' } });
      const bgPid = Number(res.result.trim());
      expect(alive(bgPid)).toBe(true);
      await own.stop();
      await waitFor(() => !alive(bgPid), 10_000, 'the background process to end with the agent');
    } finally {
      await own.stop();
    }
  });
});
