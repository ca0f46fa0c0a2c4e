/**
 * The code interpreter against a real agent process and real Python kernels: contexts, state between runs,
 * streaming, errors, timeouts, interrupts, a kernel that dies, bad input, and matplotlib charts from the
 * interpreter and from python code-run.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InterpreterContext, InterpreterServerFrame } from '../../wire/interpreter';
import type { CodeRunResponse } from '../../wire/process';
import { pathWithMatplotlib, startAgent, waitFor, type TestAgent } from '../helpers/agent';
import { fc, fuzz, timeoutFor } from '../fuzz/lib';
import { SyncSplitter } from '../../agent/src/interpreter/kernel';
import { ChartCapture } from '../../agent/src/process/code-run';

let agent: TestAgent;

beforeAll(async () => {
  agent = await startAgent({ env: { PATH: pathWithMatplotlib(), COVE_TEST_BASE: 'from-agent' } });
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

interface Run {
  frames: InterpreterServerFrame[];
  /** Milliseconds after the request was sent at which each frame arrived. */
  times: number[];
  closedAt: number;
  code: number;
  reason: string;
  stdout: string;
  stderr: string;
  error?: Extract<InterpreterServerFrame, { type: 'error' }>;
  control?: string;
  charts: Array<Record<string, any>>;
}

/** One execute WebSocket: sends `request` (an object, or raw text), collects every frame until the close. */
function execute(request: unknown, opts: { agent?: TestAgent; onFrame?: (frame: InterpreterServerFrame, ws: WebSocket) => void } = {}): Promise<Run> {
  const ws = (opts.agent ?? agent).ws('/process/interpreter/execute');
  const frames: InterpreterServerFrame[] = [];
  const times: number[] = [];
  let sentAt = 0;
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      sentAt = Date.now();
      ws.send(typeof request === 'string' ? request : JSON.stringify(request));
    });
    ws.on('message', (data: Buffer, isBinary) => {
      expect(isBinary).toBe(false);
      const frame = JSON.parse(data.toString()) as InterpreterServerFrame;
      frames.push(frame);
      times.push(Date.now() - sentAt);
      opts.onFrame?.(frame, ws);
    });
    ws.on('error', reject);
    ws.on('close', (code, reason) => {
      const text = (type: 'stdout' | 'stderr') =>
        frames
          .filter((f): f is Extract<InterpreterServerFrame, { type: 'stdout' | 'stderr' }> => f.type === type)
          .map((f) => f.text)
          .join('');
      resolve({
        frames,
        times,
        closedAt: Date.now() - sentAt,
        code,
        reason: reason.toString(),
        stdout: text('stdout'),
        stderr: text('stderr'),
        error: frames.find((f): f is Extract<InterpreterServerFrame, { type: 'error' }> => f.type === 'error'),
        control: frames.find((f): f is Extract<InterpreterServerFrame, { type: 'control' }> => f.type === 'control')?.text,
        charts: frames.filter((f): f is Extract<InterpreterServerFrame, { type: 'chart' }> => f.type === 'chart').map((f) => f.chart),
      });
    });
  });
}

/** A run expected to finish normally: its stdout, after checking it completed with 1000 and no error. */
async function ok(code: string, contextId?: string, extra: Record<string, unknown> = {}): Promise<string> {
  const run = await execute({ code, contextId, ...extra });
  expect(run.error, JSON.stringify(run.error)).toBeUndefined();
  expect(run.control).toBe('completed');
  expect(run.code).toBe(1000);
  return run.stdout;
}

const createContext = (body: unknown = {}) => agent.json<InterpreterContext>('/process/interpreter/context', { method: 'POST', json: body });
const listContexts = () => agent.json<{ contexts: InterpreterContext[] }>('/process/interpreter/context');
const deleteContext = (id: string) => agent.fetch(`/process/interpreter/context/${encodeURIComponent(id)}`, { method: 'DELETE' });

async function post(p: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await agent.fetch(p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const isPng = (base64: unknown) => typeof base64 === 'string' && Buffer.from(base64, 'base64').subarray(0, 8).equals(PNG_SIGNATURE);

/** Cuts `data` at the given offsets (sorted, deduplicated, within bounds). */
function cut(data: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((n) => n % (data.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let last = 0;
  for (const p of [...points, data.length]) {
    parts.push(data.subarray(last, p));
    last = p;
  }
  return parts;
}

describe('output markers (pure)', () => {
  const text = fc.string({ maxLength: 30 }).map((s) => s.replace(/\x1f/g, ''));

  it('SyncSplitter finds end-of-run markers however the output is cut, and passes everything else on', () => {
    const token = 'ab'.repeat(12);
    const marker = `\x1fcove-sync:${token}\x1f`;
    fc.assert(
      fc.property(text, text, fc.constantFrom('', '\x1fcove-sync:', '\x1fcove-sync:zz', '\x1fcove'), fc.array(fc.nat(), { maxLength: 6 }), (before, after, decoy, at) => {
        const input = Buffer.from(before + decoy + marker + after);
        const splitter = new SyncSplitter();
        let data = '';
        const tokens: string[] = [];
        for (const part of cut(input, at)) {
          for (const piece of splitter.push(part)) {
            if ('token' in piece) tokens.push(piece.token);
            else if (tokens.length === 0) data += piece.data.toString();
          }
        }
        expect(tokens).toEqual([token]);
        expect(data).toBe(before + decoy);
      }),
    );
  });

  it('ChartCapture takes its record out of the output however it is cut, and ignores other tokens', () => {
    fc.assert(
      fc.property(text, text, fc.array(fc.nat(), { maxLength: 6 }), (before, after, at) => {
        const capture = new ChartCapture();
        const record = `\x1fcove-charts:${capture.token}:[{"type":"line","title":"t"}]\x1f`;
        const forged = '\x1fcove-charts:000000000000000000000000:[{"type":"bar"}]\x1f';
        const input = Buffer.from(before + forged + record + after);
        const out: Buffer[] = [];
        for (const part of cut(input, at)) capture.push(part, (d) => out.push(Buffer.from(d)));
        capture.end((d) => out.push(Buffer.from(d)));
        expect(Buffer.concat(out).toString()).toBe(before + forged + after);
        expect(capture.charts()).toEqual([{ type: 'line', title: 't' }]);
      }),
    );
  });
});

describe('interpreter contexts', () => {
  it('creates, lists and deletes contexts; deleting kills the kernel', async () => {
    const ctx = await createContext();
    expect(ctx).toMatchObject({ cwd: agent.workdir, language: 'python', active: true });
    expect(ctx.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number.isNaN(Date.parse(ctx.createdAt))).toBe(false);
    expect((await listContexts()).contexts.map((c) => c.id)).toContain(ctx.id);

    const pid = Number(await ok('import os\nos.getpid()', ctx.id));
    expect(alive(pid)).toBe(true);
    const res = await deleteContext(ctx.id);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message: 'Context deleted successfully' });
    expect((await listContexts()).contexts.map((c) => c.id)).not.toContain(ctx.id);
    await waitFor(() => !alive(pid), 5000, 'the kernel to be gone');

    const again = await deleteContext(ctx.id);
    expect(again.status).toBe(404);
    expect((await again.json()).message).toContain(ctx.id);
    const run = await execute({ code: '1', contextId: ctx.id });
    expect(run.code).toBe(4404);
  });

  it('runs in the context cwd, as the sandbox user, with the sandbox environment', async () => {
    const ctx = await createContext({ cwd: '.', language: 'python' });
    expect(ctx.cwd).toBe(agent.workdir);
    await ok('import os\nos.makedirs("sub", exist_ok=True)', ctx.id);
    const sub = await createContext({ cwd: 'sub' });
    expect(sub.cwd).toBe(path.join(agent.workdir, 'sub'));
    const out = await ok('import os\nprint(os.getcwd(), os.getuid(), os.environ["COVE_TEST_BASE"], "COVE_AGENT_TOKEN" in os.environ)', sub.id);
    expect(out).toBe(`${path.join(agent.workdir, 'sub')} ${process.getuid!()} from-agent False\n`);
    await deleteContext(ctx.id);
    await deleteContext(sub.id);
  });

  it('refuses other languages, a missing cwd, and deleting the default context, naming what is wrong', async () => {
    const ruby = await post('/process/interpreter/context', { language: 'ruby' });
    expect(ruby.status).toBe(400);
    expect(ruby.json.code).toBe('UNSUPPORTED_LANGUAGE');
    expect(ruby.json.message).toContain('language');
    expect(ruby.json.message).toContain('ruby');
    const missing = await post('/process/interpreter/context', { cwd: 'does/not/exist' });
    expect(missing.status).toBe(400);
    expect(missing.json.message).toContain('cwd');
    const badType = await post('/process/interpreter/context', { cwd: 5 });
    expect(badType.status).toBe(400);
    expect(badType.json.message).toContain('cwd');
    const def = await deleteContext('default');
    expect(def.status).toBe(400);
  });

  it('caps the number of contexts with a 409 that says so, also when they are created at once', async () => {
    const before = (await listContexts()).contexts.length;
    const attempts = await Promise.all(Array.from({ length: 22 - before }, () => post('/process/interpreter/context', {})));
    const created = attempts.filter((a) => a.status === 200).map((a) => a.json as InterpreterContext);
    const refused = attempts.filter((a) => a.status !== 200);
    expect(created.length + before).toBe(20);
    expect(refused.length).toBe(2);
    for (const r of refused) {
      expect(r.status).toBe(409);
      expect(r.json.message).toContain('20');
    }
    await Promise.all(created.map((c) => deleteContext(c.id)));
    expect((await listContexts()).contexts.length).toBe(before);
  });
});

describe('running code', () => {
  it('keeps state between runs of a context, and contexts apart', async () => {
    const a = await createContext();
    const b = await createContext();
    await ok('x = 41\ndef bump(n):\n    return n + 1', a.id);
    expect(await ok('bump(x)', a.id)).toBe('42\n');
    const other = await execute({ code: 'x', contextId: b.id });
    expect(other.error).toMatchObject({ name: 'NameError', value: "name 'x' is not defined" });
    await deleteContext(a.id);
    await deleteContext(b.id);
  });

  it('prints the value of a trailing expression as the Python prompt does, and keeps it in _', async () => {
    const ctx = await createContext();
    expect(await ok('"hello"', ctx.id)).toBe("'hello'\n");
    expect(await ok('None', ctx.id)).toBe('');
    expect(await ok('x = 3', ctx.id)).toBe('');
    expect(await ok('[x, x * 2]', ctx.id)).toBe('[3, 6]\n');
    expect(await ok('_', ctx.id)).toBe('[3, 6]\n');
    expect(await ok('x * 10;  ', ctx.id)).toBe('');
    expect(await ok('import asyncio\nawait asyncio.sleep(0.01)\n"awaited"', ctx.id)).toBe("'awaited'\n");
    await deleteContext(ctx.id);
  });

  it('streams output as it is written, stdout and stderr in order, including subprocesses', async () => {
    const ctx = await createContext();
    const run = await execute({
      code: [
        'import sys, time, subprocess',
        'print("one")',
        'time.sleep(0.05)',
        'print("two", file=sys.stderr)',
        'time.sleep(0.05)',
        'subprocess.run(["echo", "three"])',
        'time.sleep(0.6)',
        'print("four")',
      ].join('\n'),
      contextId: ctx.id,
    });
    expect(run.control).toBe('completed');
    const outputs = run.frames.filter((f) => f.type === 'stdout' || f.type === 'stderr') as Array<{ type: string; text: string }>;
    expect(outputs.map((f) => `${f.type}:${f.text.trim()}`).filter((s) => !s.endsWith(':'))).toEqual([
      'stdout:one',
      'stderr:two',
      'stdout:three',
      'stdout:four',
    ]);
    // "one" came while the code still ran, not with the end.
    const first = run.frames.findIndex((f) => f.type === 'stdout');
    expect(run.closedAt - run.times[first]).toBeGreaterThan(400);
    await deleteContext(ctx.id);
  });

  it('bounds each output frame and loses nothing of a large print', async () => {
    const run = await execute({ code: 'print("x" * 300000)\nprint("é" * 70000)' });
    expect(run.control).toBe('completed');
    for (const f of run.frames) if (f.type === 'stdout') expect(f.text.length).toBeLessThanOrEqual(64 * 1024);
    expect(run.stdout).toBe(`${'x'.repeat(300000)}\n${'é'.repeat(70000)}\n`);
  });

  it('holds the kernel back for a slow client and delivers all of its output, in order', async () => {
    const ctx = await createContext();
    const ws = agent.ws('/process/interpreter/execute');
    let stdout = '';
    let control = '';
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as InterpreterServerFrame;
      if (frame.type === 'stdout') stdout += frame.text;
      if (frame.type === 'control') control = frame.text;
    });
    await new Promise<void>((resolve) => ws.on('open', () => resolve()));
    ws.send(JSON.stringify({ code: 'for i in range(50000):\n    print("%07d" % i + "x" * 92)\nprint("end")', contextId: ctx.id }));
    // The client reads nothing for a while: the agent must pause the kernel, not drop output or end the run early.
    ws.pause();
    await new Promise((r) => setTimeout(r, 2500));
    ws.resume();
    expect(await closed).toBe(1000);
    expect(control).toBe('completed');
    const lines = stdout.split('\n');
    expect(lines.length).toBe(50002);
    expect(lines[49999]).toBe(`0049999${'x'.repeat(92)}`);
    expect(lines[50000]).toBe('end');
    expect(await ok('"next run"', ctx.id)).toBe("'next run'\n");
    await deleteContext(ctx.id);
  });

  it('gives user code end of file on stdin', async () => {
    const run = await execute({ code: 'input("prompt? ")' });
    expect(run.error).toMatchObject({ name: 'EOFError' });
  });

  it('reports exceptions as an error frame with the traceback of the user code only', async () => {
    const ctx = await createContext();
    const run = await execute({ code: 'def divide(a, b):\n    return a / b\n\nprint("before")\ndivide(1, 0)', contextId: ctx.id });
    expect(run.stdout).toBe('before\n');
    expect(run.error).toMatchObject({ type: 'error', name: 'ZeroDivisionError', value: 'division by zero' });
    expect(run.error!.traceback).toMatch(/^Traceback \(most recent call last\):\n {2}File "<cell-\d+>", line 5, in <module>/);
    expect(run.error!.traceback).toContain('in divide');
    expect(run.error!.traceback).toContain('return a / b');
    expect(run.error!.traceback).not.toContain('cove');
    expect(run.control).toBe('completed');
    expect(run.code).toBe(1000);

    const syntax = await execute({ code: 'def broken(:\n    pass', contextId: ctx.id });
    expect(syntax.error).toMatchObject({ name: 'SyntaxError' });
    expect(syntax.error!.traceback).toContain('def broken(:');
    expect(syntax.error!.traceback).not.toContain('cove');

    const exit = await execute({ code: 'import sys\nsys.exit(3)', contextId: ctx.id });
    expect(exit.error).toMatchObject({ name: 'SystemExit', value: '3' });
    expect(await ok('import sys\nsys.exit(0)', ctx.id)).toBe('');
    // The kernel survived all of it.
    expect(await ok('divide(4, 2)', ctx.id)).toBe('2.0\n');
    await deleteContext(ctx.id);
  });

  it('sets envs for one run only', async () => {
    const ctx = await createContext();
    expect(await ok('import os\nos.environ.get("RUN_VAR")', ctx.id, { envs: { RUN_VAR: 'set' } })).toBe("'set'\n");
    expect(await ok('os.environ.get("RUN_VAR")', ctx.id)).toBe('');
    await deleteContext(ctx.id);
  });

  it('runs the runs of one context one after another, in order', async () => {
    const ctx = await createContext();
    await ok('log = []', ctx.id);
    const slow = execute({ code: 'import time\ntime.sleep(0.4)\nlog.append("slow")', contextId: ctx.id });
    await new Promise((r) => setTimeout(r, 100));
    const fast = execute({ code: 'log.append("fast")\nlog', contextId: ctx.id });
    const [s, f] = await Promise.all([slow, fast]);
    expect(s.control).toBe('completed');
    expect(f.stdout).toBe("['slow', 'fast']\n");
    await deleteContext(ctx.id);
  });

  it('uses the default context without a contextId: made on first use, kept, not listed', async () => {
    await ok('default_value = 7');
    expect(await ok('default_value * 6')).toBe('42\n');
    expect(await ok('default_value', 'default')).toBe('7\n');
    expect((await listContexts()).contexts.map((c) => c.id)).not.toContain('default');
  });

  it('lets a run go on when its client leaves', async () => {
    const ctx = await createContext();
    const marker = path.join(agent.workdir, 'left-behind.txt');
    const ws = agent.ws('/process/interpreter/execute');
    await new Promise<void>((resolve) => ws.on('open', () => resolve()));
    ws.send(JSON.stringify({ code: `import time\ntime.sleep(0.3)\nprint("x" * 100000)\nopen(${JSON.stringify(marker)}, "w").write("done")`, contextId: ctx.id }));
    ws.close();
    await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8') === 'done', 10_000, 'the run to finish without its client');
    expect(await ok('1 + 1', ctx.id)).toBe('2\n');
    await deleteContext(ctx.id);
  });
});

describe('timeouts, interrupts and dead kernels', () => {
  it('interrupts code past its timeout (close 4008, no control frame) and keeps the context and its state', async () => {
    const ctx = await createContext();
    await ok('kept = "still here"', ctx.id);
    const started = Date.now();
    const run = await execute({ code: 'print("working")\nwhile True:\n    pass', contextId: ctx.id, timeout: 1 });
    expect(Date.now() - started).toBeLessThan(4000);
    expect(run.stdout).toBe('working\n');
    expect(run.code).toBe(4008);
    expect(run.control).toBeUndefined();
    expect(run.error).toMatchObject({ name: 'TimeoutError' });
    expect(run.error!.value).toContain('keeps its state');
    expect(run.error!.traceback).toContain('KeyboardInterrupt');
    expect(run.error!.traceback).not.toContain('cove');
    expect(await ok('kept', ctx.id)).toBe("'still here'\n");
    await deleteContext(ctx.id);
  });

  it('kills a kernel that ignores SIGINT past its timeout; the next run gets a fresh kernel', async () => {
    const ctx = await createContext();
    const pid = Number(await ok('import os\nlost = 1\nos.getpid()', ctx.id));
    const run = await execute({ code: 'import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)', contextId: ctx.id, timeout: 1 });
    expect(run.code).toBe(4008);
    expect(run.error).toMatchObject({ name: 'TimeoutError' });
    expect(run.error!.value).toContain('killed');
    await waitFor(() => !alive(pid), 5000, 'the old kernel to be gone');
    const after = await execute({ code: 'lost', contextId: ctx.id });
    expect(after.error).toMatchObject({ name: 'NameError' });
    const newPid = Number(await ok('import os\nos.getpid()', ctx.id));
    expect(newPid).not.toBe(pid);
    await deleteContext(ctx.id);
  });

  it('interrupts a run when the client asks (KeyboardInterrupt, control "interrupted", close 1000)', async () => {
    const ctx = await createContext();
    await ok('state = "kept"', ctx.id);
    const run = await execute(
      { code: 'import time\nprint("sleeping", flush=True)\ntime.sleep(30)', contextId: ctx.id },
      { onFrame: (frame, ws) => frame.type === 'stdout' && ws.send(JSON.stringify({ type: 'interrupt' })) },
    );
    expect(run.closedAt).toBeLessThan(10_000);
    expect(run.control).toBe('interrupted');
    expect(run.error).toBeUndefined();
    expect(run.code).toBe(1000);
    expect(await ok('state', ctx.id)).toBe("'kept'\n");
    await deleteContext(ctx.id);
  });

  it('ends the run with KernelDied when the kernel exits, and restarts it on the next run', async () => {
    const ctx = await createContext();
    const pid = Number(await ok('import os\ngone = True\nos.getpid()', ctx.id));
    const run = await execute({ code: 'import os\nprint("last words", flush=True)\nos._exit(3)', contextId: ctx.id });
    expect(run.stdout).toBe('last words\n');
    expect(run.error).toMatchObject({ name: 'KernelDied' });
    expect(run.error!.value).toContain('exited with code 3');
    expect(run.control).toBe('completed');
    expect(run.code).toBe(1000);
    expect((await listContexts()).contexts.find((c) => c.id === ctx.id)?.active).toBe(false);
    expect(alive(pid)).toBe(false);

    const fresh = await execute({ code: 'gone', contextId: ctx.id });
    expect(fresh.error).toMatchObject({ name: 'NameError' });
    expect((await listContexts()).contexts.find((c) => c.id === ctx.id)?.active).toBe(true);

    const killed = await execute({ code: 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)', contextId: ctx.id });
    expect(killed.error).toMatchObject({ name: 'KernelDied' });
    expect(killed.error!.value).toContain('SIGKILL');
    expect(await ok('"back"', ctx.id)).toBe("'back'\n");
    await deleteContext(ctx.id);
  });

  it('ends the running and queued runs of a context that is deleted', async () => {
    const ctx = await createContext();
    const running = execute({ code: 'import time\ntime.sleep(30)', contextId: ctx.id });
    const queued = execute({ code: '1', contextId: ctx.id });
    await new Promise((r) => setTimeout(r, 300));
    expect((await deleteContext(ctx.id)).status).toBe(200);
    const [r, q] = await Promise.all([running, queued]);
    expect(r.error).toMatchObject({ name: 'ContextDeleted' });
    expect(q.error).toMatchObject({ name: 'ContextDeleted' });
  });
});

describe('bad input', () => {
  it('answers bad JSON, a missing or empty code, and an unknown context with an error frame and a 44xx close', async () => {
    const badJson = await execute('{not json');
    expect(badJson.error).toMatchObject({ name: 'INVALID_JSON' });
    expect(badJson.code).toBe(4400);

    const noCode = await execute({ contextId: 'default' });
    expect(noCode.error).toMatchObject({ name: 'INVALID_REQUEST' });
    expect(noCode.error!.value).toContain('code');
    expect(noCode.code).toBe(4400);

    const empty = await execute({ code: '' });
    expect(empty.code).toBe(4400);
    expect(empty.reason).toContain('code');

    const wrongType = await execute({ code: 'print(1)', timeout: 'soon' });
    expect(wrongType.code).toBe(4400);
    expect(wrongType.reason).toContain('timeout');

    const unknown = await execute({ code: '1', contextId: 'no-such-context' });
    expect(unknown.error).toMatchObject({ name: 'NOT_FOUND' });
    expect(unknown.error!.value).toContain('no-such-context');
    expect(unknown.code).toBe(4404);

    const notObject = await execute('[1,2,3]');
    expect(notObject.code).toBe(4400);
  });

  it('survives hostile messages after the request and frames that look like the kernel protocol', async () => {
    const run = await execute(
      {
        code: [
          'import os, sys, time',
          // Output that imitates the kernel's messages and markers is only output.
          'print(\'{"type":"done","error":null,"charts":[]}\')',
          'sys.stdout.write("\\x1fcove-sync:0123456789abcdef01234567\\x1f")',
          'sys.stdout.write("\\x1fcove-sync:")',
          'time.sleep(0.3)',
          'print("end")',
        ].join('\n'),
      },
      {
        onFrame: (frame, ws) => {
          if (frame.type !== 'stdout') return;
          ws.send('not json at all');
          ws.send(Buffer.from([0xff, 0x00, 0x01]));
          ws.send(JSON.stringify({ type: 'nonsense' }));
        },
      },
    );
    expect(run.control).toBe('completed');
    expect(run.stdout).toBe('{"type":"done","error":null,"charts":[]}\n\x1fcove-sync:end\n');
    expect(await ok('"agent alive"')).toBe("'agent alive'\n");
  });

  it(
    'ends every hostile first message with a run or a 4xx close, and keeps serving (property)',
    async () => {
      // Messages that would run code run only `pass`: whatever else the generator makes stays as it is.
      const harmless = (value: unknown) => {
        if (value && typeof value === 'object' && !Array.isArray(value) && typeof (value as { code?: unknown }).code === 'string') {
          (value as { code: string }).code = 'pass';
        }
        return value;
      };
      const message = fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(harmless(v))),
        fc
          .record(
            {
              code: fc.oneof(fc.constant('pass'), fc.integer(), fc.constant(null)),
              contextId: fc.oneof(fc.constant('default'), fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null)),
              envs: fc.oneof(fc.dictionary(fc.stringMatching(/^FZ_[A-Z]{1,4}$/), fc.string({ maxLength: 6 }), { maxKeys: 2 }), fc.constant([]), fc.string({ maxLength: 4 })),
              timeout: fc.oneof(fc.constant(0), fc.double(), fc.integer({ min: -5, max: 5 }), fc.string({ maxLength: 3 })),
            },
            { requiredKeys: [] },
          )
          .map((v) => JSON.stringify(v)),
      );
      await fuzz(
        'interpreter first message',
        fc.asyncProperty(message, async (text) => {
          const since = agent.output().length;
          const run = await execute(text);
          if (run.code === 1000) expect(run.control).toBe('completed');
          // A timeout of a few microseconds may interrupt even `pass`.
          else if (run.code === 4008) expect(run.error?.name).toBe('TimeoutError');
          else {
            expect([4400, 4404]).toContain(run.code);
            expect(run.error?.name).toMatch(/^(INVALID_JSON|INVALID_REQUEST|NOT_FOUND)$/);
          }
          expect(agent.output().slice(since)).not.toMatch(/unexpected error|\(uncaught\)|unhandled rejection/);
        }),
        3000,
      );
      expect(await ok('"still serving"')).toBe("'still serving'\n");
    },
    timeoutFor(3000),
  );

  it('refuses a run on a context whose queue is full, with 4429', async () => {
    const ctx = await createContext();
    const blockers = [execute({ code: 'import time\ntime.sleep(2)', contextId: ctx.id })];
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 32; i++) blockers.push(execute({ code: 'pass', contextId: ctx.id }));
    await new Promise((r) => setTimeout(r, 300));
    const refused = await execute({ code: 'pass', contextId: ctx.id });
    expect(refused.code).toBe(4429);
    expect(refused.error!.value).toContain('32');
    const done = await Promise.all(blockers);
    expect(done.every((d) => d.control === 'completed')).toBe(true);
    await deleteContext(ctx.id);
  });
});

describe('charts', () => {
  it('sends open and shown matplotlib figures after a run, as PNG with type, title and elements', async () => {
    const ctx = await createContext();
    const run = await execute({
      code: [
        'import matplotlib.pyplot as plt',
        'plt.figure()',
        'plt.plot([1, 2, 3], [2, 4, 8], label="growth")',
        'plt.title("Line chart")',
        'plt.xlabel("x")',
        'plt.show()',
        'print("after show")',
        'plt.figure()',
        'plt.bar(["a", "b", "c"], [3, 1.5, 2], label="sales")',
        'plt.title("Bar chart");',
      ].join('\n'),
      contextId: ctx.id,
    });
    expect(run.error).toBeUndefined();
    expect(run.stdout).toBe('after show\n');
    expect(run.stderr).toBe('');
    expect(run.charts.map((c) => [c.type, c.title])).toEqual([
      ['line', 'Line chart'],
      ['bar', 'Bar chart'],
    ]);
    const [line, bar] = run.charts;
    expect(isPng(line.png)).toBe(true);
    expect(isPng(bar.png)).toBe(true);
    expect(line.x_label).toBe('x');
    expect(line.elements).toEqual([{ label: 'growth', points: [[1, 2], [2, 4], [3, 8]] }]);
    expect(bar.elements).toEqual([
      { label: 'a', group: 'sales', value: '3' },
      { label: 'b', group: 'sales', value: '1.5' },
      { label: 'c', group: 'sales', value: '2' },
    ]);
    // Charts come after the output and before the end.
    const kinds = run.frames.map((f) => f.type);
    expect(kinds.indexOf('chart')).toBeGreaterThan(kinds.indexOf('stdout'));
    expect(kinds.at(-1)).toBe('control');
    // Figures are closed once sent.
    const next = await execute({ code: 'len(plt.get_fignums())', contextId: ctx.id });
    expect(next.charts).toEqual([]);
    expect(next.stdout).toBe('0\n');
    await deleteContext(ctx.id);
  });

  it('describes scatter, pie, box and composite figures', async () => {
    const run = await execute({
      code: [
        'import matplotlib.pyplot as plt',
        'plt.figure(); plt.scatter([1, 2], [3, 4], label="pts"); plt.title("S")',
        'plt.figure(); plt.pie([1, 3], labels=["small", "big"]); plt.title("P")',
        'plt.figure(); plt.boxplot([[1, 2, 3, 4, 50]]); plt.title("B")',
        'fig, (a, b) = plt.subplots(1, 2); a.plot([1, 2]); b.bar([1], [2]); fig.suptitle("Both")',
      ].join('\n'),
    });
    expect(run.error).toBeUndefined();
    const [scatter, pie, box, composite] = run.charts;
    expect(scatter).toMatchObject({ type: 'scatter', title: 'S', elements: [{ label: 'pts', points: [[1, 3], [2, 4]] }] });
    expect(pie.type).toBe('pie');
    expect(pie.elements.map((e: any) => [e.label, Math.round(e.angle)])).toEqual([
      ['small', 90],
      ['big', 270],
    ]);
    expect(box).toMatchObject({ type: 'box_and_whisker', title: 'B' });
    expect(box.elements[0]).toMatchObject({ median: 3, first_quartile: 2, third_quartile: 4, outliers: [50] });
    expect(composite.type).toBe('composite_chart');
    expect(composite.title).toBe('Both');
    expect(composite.elements.map((e: any) => e.type)).toEqual(['line', 'bar']);
    for (const c of run.charts) expect(isPng(c.png)).toBe(true);
  });

  it('returns artifacts.charts from python code-run without changing its output', async () => {
    const res = await post('/process/code-run', {
      language: 'python',
      code: [
        'import sys',
        'import matplotlib.pyplot as plt',
        'plt.plot([0, 1], [1, 0], label="down")',
        'plt.title("From code-run")',
        'plt.show()',
        'plt.figure()',
        'plt.bar(["x"], [5])',
        'plt.title("Left open")',
        'print("argv", sys.argv[1:])',
        'print("to stderr", file=sys.stderr)',
        'sys.stdout.write("no newline")',
      ].join('\n'),
      argv: ['one'],
    });
    expect(res.status).toBe(200);
    const body = res.json as CodeRunResponse & { artifacts: { charts: Array<Record<string, any>> } };
    expect(body.exitCode).toBe(0);
    expect(body.result).toBe("argv ['one']\nto stderr\nno newline");
    expect(body.artifacts.charts.map((c) => [c.type, c.title])).toEqual([
      ['line', 'From code-run'],
      ['bar', 'Left open'],
    ]);
    expect(body.artifacts.charts[0].elements).toEqual([{ label: 'down', points: [[0, 1], [1, 0]] }]);
    for (const c of body.artifacts.charts) expect(isPng(c.png)).toBe(true);
  });

  it('keeps code-run as it was for programs without matplotlib: output, exit codes, tracebacks, no artifacts', async () => {
    const plain = await post('/process/code-run', {
      language: 'python',
      code: 'import sys\nprint(sys.argv, __name__, "matplotlib" in sys.modules)\nsys.exit(4)',
      argv: ['a'],
    });
    expect(plain.json).toEqual({ exitCode: 4, result: "['-', 'a'] __main__ False\n" });
    const raised = await post('/process/code-run', { language: 'python', code: 'def f():\n    raise ValueError("bad")\nf()' });
    expect(raised.json).toEqual({
      exitCode: 1,
      result: 'Traceback (most recent call last):\n  File "<stdin>", line 3, in <module>\n  File "<stdin>", line 2, in f\nValueError: bad\n',
    });
    const syntax = await post('/process/code-run', { language: 'python', code: 'def broken(:\n  pass' });
    expect(syntax.json.exitCode).toBe(1);
    expect(syntax.json.result).toMatch(/^ {2}File "<stdin>", line 1\n/);
    // A program that imports pyplot but leaves no figure has no artifacts either.
    const none = await post('/process/code-run', { language: 'python', code: 'import matplotlib.pyplot as plt\nprint("quiet")' });
    expect(none.json).toEqual({ exitCode: 0, result: 'quiet\n' });
  });
});

describe('agent shutdown', () => {
  it('kills every kernel when the agent stops', async () => {
    const own = await startAgent({ env: { PATH: pathWithMatplotlib() } });
    const ctx = await own.json<InterpreterContext>('/process/interpreter/context', { method: 'POST', json: {} });
    const userPid = Number((await execute({ code: 'import os\nos.getpid()', contextId: ctx.id }, { agent: own })).stdout);
    const defaultPid = Number((await execute({ code: 'import os\nos.getpid()' }, { agent: own })).stdout);
    expect(alive(userPid) && alive(defaultPid)).toBe(true);
    await own.stop();
    await waitFor(() => !alive(userPid) && !alive(defaultPid), 5000, 'kernels to be gone');
  });
});
