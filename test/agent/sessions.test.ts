/**
 * Sessions: a real agent process, real shells, driven over HTTP and WebSocket (and by the Daytona SDK's own
 * toolbox client).
 */
import { Process } from '@daytonaio/sdk';
import { Configuration, ProcessApi } from '@daytona/toolbox-api-client';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import type { Session, SessionCommand, SessionCommandLogs, SessionExecuteResponse } from '../../wire/sessions';
import { STDERR_PREFIX, STDOUT_PREFIX, wantsMarkedOutput } from '../../wire/sessions';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

let agent: TestAgent;
let counter = 0;
/** Pids a test started in a session; any still alive at the end are killed so nothing leaks from a failed test. */
const startedPids: number[] = [];

beforeAll(async () => {
  agent = await startAgent();
});
afterAll(async () => {
  await agent?.stop();
  for (const pid of startedPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone, as it should be */
    }
  }
});

interface Reply<T = any> {
  status: number;
  body: T;
  text: string;
}

async function call<T = any>(method: string, path: string, json?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
  const res = await agent.fetch(path, {
    method,
    headers: { ...(json !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: json === undefined ? undefined : typeof json === 'string' ? json : JSON.stringify(json),
  });
  const text = await res.text();
  let body: any;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

async function newSession(): Promise<string> {
  const id = `s${++counter}-${process.pid}`;
  const res = await call<Session>('POST', '/process/session', { sessionId: id });
  expect(res.status).toBe(201);
  return id;
}

async function exec(sessionId: string, command: string, extra: Record<string, unknown> = {}): Promise<SessionExecuteResponse> {
  const res = await call<SessionExecuteResponse>('POST', `/process/session/${sessionId}/exec`, { command, ...extra });
  expect(res.status, res.text).toBe(extra.runAsync || extra.async ? 202 : 200);
  return res.body;
}

async function waitForExit(sessionId: string, cmdId: string): Promise<SessionCommand> {
  return waitFor<SessionCommand | undefined>(
    async () => {
      const res = await call<SessionCommand>('GET', `/process/session/${sessionId}/command/${cmdId}`);
      expect(res.status).toBe(200);
      return res.body.exitCode !== undefined ? res.body : undefined;
    },
    15_000,
    `command ${cmdId} to exit`,
  ) as Promise<SessionCommand>;
}

/** Alive means present in /proc and not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

interface Followed {
  frames: Buffer[];
  closed: Promise<{ code: number; reason: string }>;
  socket: WebSocket;
}

function follow(path: string): Followed {
  const socket = agent.ws(path);
  const frames: Buffer[] = [];
  socket.on('message', (data, isBinary) => {
    expect(isBinary).toBe(true);
    frames.push(Buffer.from(data as Buffer));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve, reject) => {
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    socket.on('error', reject);
  });
  return { frames, closed, socket };
}

/** Splits frames by their three-byte stream prefix; every frame must carry one. */
function demux(frames: Buffer[]): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  for (const f of frames) {
    const prefix = f.subarray(0, 3);
    if (prefix.equals(STDOUT_PREFIX)) out.push(f.subarray(3));
    else if (prefix.equals(STDERR_PREFIX)) err.push(f.subarray(3));
    else throw new Error(`frame without a stream prefix: ${JSON.stringify(f.toString())}`);
  }
  return { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

describe('session routes', () => {
  it('creates, lists, gets and deletes sessions', async () => {
    const id = `lifecycle-${process.pid}`;
    const created = await call<Session>('POST', '/process/session', { sessionId: id });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ sessionId: id, commands: [] });

    const listed = await call<Session[]>('GET', '/process/session');
    expect(listed.status).toBe(200);
    expect(listed.body.map((s) => s.sessionId)).toContain(id);

    const ran = await exec(id, 'true');
    const got = await call<Session>('GET', `/process/session/${id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ sessionId: id, commands: [{ id: ran.cmdId, command: 'true', exitCode: 0 }] });

    const deleted = await call<Session>('DELETE', `/process/session/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.sessionId).toBe(id);
    expect((await call('GET', `/process/session/${id}`)).status).toBe(404);
    expect((await call<Session[]>('GET', '/process/session')).body.map((s) => s.sessionId)).not.toContain(id);
  });

  it('keeps cwd, exported variables and functions from one command to the next', async () => {
    const id = await newSession();
    await exec(id, 'cd /tmp; export A=1; greet() { echo "hi $1"; }; B=local');
    const res = await exec(id, 'pwd; echo "$A"; greet you; sh -c \'echo "child sees ${A}"\'; echo "$B"');
    expect(res.stdout).toBe('/tmp\n1\nhi you\nchild sees 1\nlocal\n');
    expect(res.exitCode).toBe(0);
  });

  it('starts sessions in the work dir', async () => {
    const id = await newSession();
    expect((await exec(id, 'pwd')).stdout).toBe(`${agent.workdir}\n`);
  });

  it('runs commands synchronously with separate stdout, stderr and exit codes', async () => {
    const id = await newSession();
    const res = await exec(id, 'echo out; echo err >&2; printf more; false');
    expect(res.stdout).toBe('out\nmore');
    expect(res.stderr).toBe('err\n');
    expect(res.output).toContain('out\n');
    expect(res.output).toContain('err\n');
    expect(res.output!.length).toBe('out\nmore'.length + 'err\n'.length);
    expect(res.exitCode).toBe(1);
    expect((await exec(id, 'exit_with() { return "$1"; }; exit_with 42')).exitCode).toBe(42);
    expect((await exec(id, 'echo fine')).exitCode).toBe(0);
  });

  it('survives commands that are syntax errors or redirect the shell itself', async () => {
    const id = await newSession();
    const bad = await exec(id, 'echo "unterminated');
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).not.toBe('');
    await exec(id, 'exec >/dev/null 2>&1; echo hidden');
    const after = await exec(id, 'echo visible; echo also >&2');
    expect(after.stdout).toBe('visible\n');
    expect(after.stderr).toBe('also\n');
  });

  it('runs commands asynchronously: 202, polling, then logs', async () => {
    const id = await newSession();
    const started = await exec(id, 'read go; echo "went $go"; echo warn >&2; exit_with() { return 7; }; exit_with', { runAsync: true });
    expect(Object.keys(started)).toEqual(['cmdId']);

    const running = await call<SessionCommand>('GET', `/process/session/${id}/command/${started.cmdId}`);
    expect(running.status).toBe(200);
    expect(running.body).toEqual({ id: started.cmdId, command: expect.stringContaining('read go') });

    expect((await call('POST', `/process/session/${id}/command/${started.cmdId}/input`, { data: 'now\n' })).status).toBe(204);
    const done = await waitForExit(id, started.cmdId);
    expect(done.exitCode).toBe(7);

    const logs = await call<SessionCommandLogs>('GET', `/process/session/${id}/command/${started.cmdId}/logs`);
    expect(logs.status).toBe(200);
    expect(logs.body).toEqual({ output: expect.any(String), stdout: 'now\nwent now\n', stderr: 'warn\n' });

    // The older field name works too.
    const old = await exec(id, 'echo legacy', { async: true });
    await waitForExit(id, old.cmdId);
    expect((await call<SessionCommandLogs>('GET', `/process/session/${id}/command/${old.cmdId}/logs`)).body.stdout).toBe('legacy\n');
  });

  it('serves logs as text to clients that accept only text', async () => {
    const id = await newSession();
    const res = await exec(id, 'echo plain');
    const text = await call('GET', `/process/session/${id}/command/${res.cmdId}/logs`, undefined, { Accept: 'text/plain' });
    expect(text.status).toBe(200);
    expect(text.text).toBe('plain\n');
  });

  it('streams logs over plain HTTP with ?follow=true until the command ends', async () => {
    const id = await newSession();
    const started = await exec(id, 'echo one; read x; echo "two $x"', { runAsync: true, suppressInputEcho: true });
    const res = await agent.fetch(`/process/session/${id}/command/${started.cmdId}/logs?follow=true`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = '';
    const first = await reader.read();
    text += Buffer.from(first.value!).toString();
    expect(text).toBe('one\n');
    await call('POST', `/process/session/${id}/command/${started.cmdId}/input`, { data: 'more\n' });
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    expect(text).toBe('one\ntwo more\n');
  });
});

describe('follow-logs WebSocket', () => {
  it('streams stdout and stderr live with 0x01/0x02 prefixes and closes with 1000 when the command ends', async () => {
    const id = await newSession();
    const started = await exec(id, 'echo first; echo oops >&2; read x; echo "second $x"; echo bye >&2', {
      runAsync: true,
      suppressInputEcho: true,
    });
    const f = follow(`/process/session/${id}/command/${started.cmdId}/logs?follow=true`);
    await waitFor(() => demux(f.frames).stdout === 'first\n' && demux(f.frames).stderr === 'oops\n', 10_000, 'first output');
    await call('POST', `/process/session/${id}/command/${started.cmdId}/input`, { data: 'go\n' });
    const closed = await f.closed;
    expect(closed.code).toBe(1000);
    expect(f.frames.length).toBeGreaterThanOrEqual(4);
    expect(demux(f.frames)).toEqual({ stdout: 'first\nsecond go\n', stderr: 'oops\nbye\n' });
  });

  it('sends the whole log then closes with 1000 to a client that attaches after the command ended', async () => {
    const id = await newSession();
    const res = await exec(id, 'echo a; echo b >&2; echo c');
    const f = follow(`/process/session/${id}/command/${res.cmdId}/logs?follow=true`);
    expect((await f.closed).code).toBe(1000);
    expect(demux(f.frames)).toEqual({ stdout: 'a\nc\n', stderr: 'b\n' });
  });

  it('echoes the SDK-version subprotocol that browser runtimes of the SDK offer (the handshake fails without one)', async () => {
    const id = await newSession();
    const res = await exec(id, 'echo hi');
    const socket = agent.ws(`/process/session/${id}/command/${res.cmdId}/logs?follow=true`, ['X-Daytona-SDK-Version~0.218.0']);
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    expect(socket.protocol).toBe('X-Daytona-SDK-Version~0.218.0');
    socket.close();
  });

  it('refuses to follow an unknown command', async () => {
    const id = await newSession();
    const f = follow(`/process/session/${id}/command/nope/logs?follow=true`);
    expect((await f.closed).code).toBe(4404);
    expect(f.frames).toEqual([]);
  });
});

describe('stdin and ordering', () => {
  it('sends input to a running command, echoing it into the log unless suppressed', async () => {
    const id = await newSession();
    const quiet = await exec(id, 'read x; echo "got $x"', { runAsync: true, suppressInputEcho: true });
    await call('POST', `/process/session/${id}/command/${quiet.cmdId}/input`, { data: 'hello\n' });
    await waitForExit(id, quiet.cmdId);
    expect((await call('GET', `/process/session/${id}/command/${quiet.cmdId}/logs`)).body.stdout).toBe('got hello\n');

    const echoed = await exec(id, 'read x; echo "got $x"', { runAsync: true });
    await call('POST', `/process/session/${id}/command/${echoed.cmdId}/input`, { data: 'hello\n' });
    await waitForExit(id, echoed.cmdId);
    expect((await call('GET', `/process/session/${id}/command/${echoed.cmdId}/logs`)).body.stdout).toBe('hello\ngot hello\n');
  });

  it('queues commands: one at a time, in order, and input for a queued command waits for it', async () => {
    const id = await newSession();
    const first = await exec(id, 'read x; echo "$x" > order.txt', { runAsync: true });
    const second = await exec(id, 'cat order.txt; read y; echo "y=$y"', { runAsync: true, suppressInputEcho: true });
    // The second command has not started: input sent now must wait for it, not reach the first command.
    await call('POST', `/process/session/${id}/command/${second.cmdId}/input`, { data: 'for-second\n' });
    expect((await call<SessionCommand>('GET', `/process/session/${id}/command/${second.cmdId}`)).body.exitCode).toBeUndefined();
    await call('POST', `/process/session/${id}/command/${first.cmdId}/input`, { data: 'for-first\n' });
    const syncThird = exec(id, 'echo third');
    expect((await waitForExit(id, second.cmdId)).exitCode).toBe(0);
    expect((await call('GET', `/process/session/${id}/command/${second.cmdId}/logs`)).body.stdout).toBe('for-first\ny=for-second\n');
    expect((await syncThird).stdout).toBe('third\n');
    const session = (await call<Session>('GET', `/process/session/${id}`)).body;
    expect(session.commands.map((c) => c.id)).toEqual([first.cmdId, second.cmdId, (await syncThird).cmdId]);
  });

  it('lets a command outlive the HTTP client that started it', async () => {
    const id = await newSession();
    const aborter = new AbortController();
    const request = agent
      .fetch(`/process/session/${id}/exec`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ command: 'read x; echo "$x" > outlived.txt; echo "finished $x"' }),
        signal: aborter.signal,
      })
      .catch((err: Error) => err);
    const session = (await waitFor(async () => {
      const s = (await call<Session>('GET', `/process/session/${id}`)).body;
      return s.commands.length === 1 ? s : undefined;
    }))!;
    aborter.abort();
    expect(await request).toBeInstanceOf(Error);
    const cmdId = session.commands[0].id;
    expect((await call('POST', `/process/session/${id}/command/${cmdId}/input`, { data: 'later\n' })).status).toBe(204);
    expect((await waitForExit(id, cmdId)).exitCode).toBe(0);
    expect(readFileSync(`${agent.workdir}/outlived.txt`, 'utf8')).toBe('later\n');
    expect((await call('GET', `/process/session/${id}/command/${cmdId}/logs`)).body.stdout).toContain('finished later\n');
  });
});

describe('ending sessions', () => {
  it('delete kills everything the session started, background jobs included', async () => {
    const id = await newSession();
    const bg = Number((await exec(id, 'sleep 300 & echo $!')).stdout!.trim());
    // A double fork leaves the shell's tree but not its process group.
    const orphan = Number((await exec(id, '(sleep 301 & echo $!)')).stdout!.trim());
    const fg = await exec(id, 'sh -c \'echo $$; exec sleep 302\'', { runAsync: true });
    const fgPid = Number(
      await waitFor(async () => (await call('GET', `/process/session/${id}/command/${fg.cmdId}/logs`)).body.stdout.trim()),
    );
    startedPids.push(bg, orphan, fgPid);
    for (const pid of [bg, orphan, fgPid]) expect(alive(pid)).toBe(true);

    const deleted = await call<Session>('DELETE', `/process/session/${id}`);
    expect(deleted.status).toBe(200);
    // The foreground command was killed with the shell; its status says so (128 + SIGKILL).
    expect(deleted.body.commands.find((c) => c.id === fg.cmdId)?.exitCode).toBe(137);
    await waitFor(() => ![bg, orphan, fgPid].some(alive), 10_000, 'session processes to die');
    for (const pid of [bg, orphan, fgPid]) expect(alive(pid)).toBe(false);
  });

  it('a command that exits the shell ends the session with its exit code', async () => {
    const id = await newSession();
    await exec(id, 'echo before');
    const res = await exec(id, 'echo bye; exit 3');
    expect(res.exitCode).toBe(3);
    expect(res.stdout).toBe('bye\n');
    expect((await call<SessionCommand>('GET', `/process/session/${id}/command/${res.cmdId}`)).body.exitCode).toBe(3);

    const again = await call('POST', `/process/session/${id}/exec`, { command: 'echo after' });
    expect(again.status).toBe(410);
    expect(again.body.code).toBe('SESSION_ENDED');
    // The ended session still answers for its history until it is deleted.
    const session = (await call<Session>('GET', `/process/session/${id}`)).body;
    expect(session.commands.map((c) => c.exitCode)).toEqual([0, 3]);
    expect((await call('DELETE', `/process/session/${id}`)).status).toBe(200);
  });

  it('abandons commands queued behind one that exits the shell', async () => {
    const id = await newSession();
    const exiting = await exec(id, 'read x; exit 5', { runAsync: true });
    const queued = call<any>('POST', `/process/session/${id}/exec`, { command: 'echo never' });
    await waitFor(async () => (await call<Session>('GET', `/process/session/${id}`)).body.commands.length === 2);
    await call('POST', `/process/session/${id}/command/${exiting.cmdId}/input`, { data: '\n' });
    const res = await queued;
    expect(res.status).toBe(410);
    expect(res.body.code).toBe('SESSION_ENDED');
    expect((await waitForExit(id, exiting.cmdId)).exitCode).toBe(5);
  });
});

describe('errors', () => {
  it('answers unknown sessions with 404 SESSION_NOT_FOUND', async () => {
    for (const [method, path, body] of [
      ['GET', '/process/session/missing'],
      ['DELETE', '/process/session/missing'],
      ['POST', '/process/session/missing/exec', { command: 'true' }],
      ['GET', '/process/session/missing/command/x'],
      ['GET', '/process/session/missing/command/x/logs'],
      ['POST', '/process/session/missing/command/x/input', { data: 'x' }],
    ] as const) {
      const res = await call(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toMatchObject({ code: 'SESSION_NOT_FOUND', source: 'DAYTONA_DAEMON', message: expect.stringContaining('missing') });
    }
  });

  it('refuses a duplicate session id with 409 SESSION_EXISTS', async () => {
    const id = await newSession();
    const res = await call('POST', '/process/session', { sessionId: id });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('SESSION_EXISTS');
  });

  it('answers unknown commands with 404 COMMAND_NOT_FOUND', async () => {
    const id = await newSession();
    for (const path of [`/process/session/${id}/command/nope`, `/process/session/${id}/command/nope/logs`]) {
      const res = await call('GET', path);
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('COMMAND_NOT_FOUND');
    }
    const input = await call('POST', `/process/session/${id}/command/nope/input`, { data: 'x' });
    expect(input.status).toBe(404);
  });

  it('refuses input to a finished command with 409 COMMAND_ALREADY_COMPLETED', async () => {
    const id = await newSession();
    const res = await exec(id, 'true');
    const input = await call('POST', `/process/session/${id}/command/${res.cmdId}/input`, { data: 'late\n' });
    expect(input.status).toBe(409);
    expect(input.body.code).toBe('COMMAND_ALREADY_COMPLETED');
  });

  it('refuses bad bodies with 400 and a message naming the field', async () => {
    const id = await newSession();
    const cases: [string, string, unknown, string][] = [
      ['POST', '/process/session', {}, 'sessionId'],
      ['POST', '/process/session', { sessionId: '' }, 'sessionId'],
      ['POST', '/process/session', { sessionId: 'a/b' }, 'sessionId'],
      ['POST', `/process/session/${id}/exec`, {}, 'command'],
      ['POST', `/process/session/${id}/exec`, { command: 42 }, 'command'],
      ['POST', `/process/session/${id}/exec`, { command: '' }, 'command'],
      ['POST', `/process/session/${id}/exec`, { command: 'true', runAsync: 'yes' }, 'runAsync'],
      ['POST', `/process/session/${id}/exec`, { command: 'echo \u0000' }, 'command'],
      ['POST', `/process/session/${id}/exec`, '{not json', ''],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await call(method, path, body);
      expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(res.body.message).toContain(field);
    }
    const ran = await exec(id, 'read x', { runAsync: true });
    const badInput = await call('POST', `/process/session/${id}/command/${ran.cmdId}/input`, { data: 7 });
    expect(badInput.status).toBe(400);
    expect(badInput.body.message).toContain('data');
    // Nothing above broke the session.
    await call('POST', `/process/session/${id}/command/${ran.cmdId}/input`, { data: '\n' });
    expect((await exec(id, 'echo still here')).stdout).toBe('still here\n');
  });
});

describe('limits', () => {
  it('keeps only the newest 10 MiB of a command’s output', async () => {
    const id = await newSession();
    const started = await exec(id, "head -c 12000000 /dev/zero | tr '\\0' a; echo END", { runAsync: true });
    await waitForExit(id, started.cmdId);
    const logs = (await call<SessionCommandLogs>('GET', `/process/session/${id}/command/${started.cmdId}/logs`)).body;
    expect(logs.stdout.length).toBe(10 * 1024 * 1024);
    expect(logs.stdout.endsWith('aaaEND\n')).toBe(true);
    expect(/^a+END\n$/.test(logs.stdout)).toBe(true);
  });

  it('refuses more input for a command that does not read it', async () => {
    const id = await newSession();
    const started = await exec(id, 'sleep 60', { runAsync: true, suppressInputEcho: true });
    const chunk = 'x'.repeat(3 * 1024 * 1024);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await call('POST', `/process/session/${id}/command/${started.cmdId}/input`, { data: chunk })).status);
    }
    expect(statuses.slice(0, 3)).toEqual([204, 204, 204]);
    expect(statuses.at(-1)).toBe(413);
    expect((await call('DELETE', `/process/session/${id}`)).status).toBe(200);
  });
});

describe('sessions in a POSIX sh (images without bash)', () => {
  it('keeps state, separates streams, takes input and ends on exit', async () => {
    // A PATH without bash: the agent must fall back to /bin/sh (dash here).
    const bin = mkdtempSync(path.join(os.tmpdir(), 'cove-nobash-'));
    for (const tool of ['cat', 'sleep', 'mkdir']) symlinkSync(`/usr/bin/${tool}`, path.join(bin, tool));
    const shAgent = await startAgent({ env: { PATH: bin } });
    try {
      const post = async (p: string, json: unknown) => {
        const res = await shAgent.fetch(p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(json) });
        const text = await res.text();
        return { status: res.status, body: text ? JSON.parse(text) : undefined };
      };
      expect((await post('/process/session', { sessionId: 'sh' })).status).toBe(201);
      const kind = await post('/process/session/sh/exec', { command: 'echo "bash=${BASH_VERSION:-none}"' });
      expect(kind.body.stdout).toBe('bash=none\n');
      await post('/process/session/sh/exec', { command: 'mkdir -p d && cd d; export V=7; f() { echo "f$1"; }' });
      const state = await post('/process/session/sh/exec', { command: 'echo "${PWD##*/} $V"; f 1; echo e >&2; return_with() { return 4; }; return_with' });
      expect(state.body).toMatchObject({ stdout: 'd 7\nf1\n', stderr: 'e\n', exitCode: 4 });
      const bad = await post('/process/session/sh/exec', { command: 'echo "unterminated' });
      expect(bad.body.exitCode).not.toBe(0);
      const started = await post('/process/session/sh/exec', { command: 'read x; echo "got $x"', runAsync: true, suppressInputEcho: true });
      await post(`/process/session/sh/command/${started.body.cmdId}/input`, { data: 'sh-input\n' });
      const after = await post('/process/session/sh/exec', { command: 'echo after; exit 6' });
      expect(after.body).toMatchObject({ stdout: 'after\n', exitCode: 6 });
      const logs = await shAgent.json(`/process/session/sh/command/${started.body.cmdId}/logs`);
      expect(logs.stdout).toBe('got sh-input\n');
      expect((await post('/process/session/sh/exec', { command: 'true' })).status).toBe(410);
    } finally {
      await shAgent.stop();
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('Daytona SDK', () => {
  it('drives sessions through the toolbox client and the SDK Process class', async () => {
    const config = new Configuration({
      basePath: agent.url,
      baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } },
    });
    // The client's own axios: passing ours trips over two copies of axios's type declarations.
    const api = new ProcessApi(config);
    const id = `sdk-${process.pid}`;
    await api.createSession({ sessionId: id });
    await api.sessionExecuteCommand(id, { command: 'cd /tmp && export SDK_VAR=ok' });
    const sync = (await api.sessionExecuteCommand(id, { command: 'echo "$PWD $SDK_VAR"; echo e >&2; exit_with() { return 2; }; exit_with' })).data;
    expect(sync).toMatchObject({ stdout: '/tmp ok\n', stderr: 'e\n', exitCode: 2 });
    const logs = (await api.getSessionCommandLogs(id, sync.cmdId)).data;
    expect(logs).toMatchObject({ stdout: '/tmp ok\n', stderr: 'e\n' });

    const sdk = new Process(config, api, async () => agent.token, 'python', 60_000);
    const started = await sdk.executeSessionCommand(id, { command: 'echo streamed; echo warned >&2; read x; echo "last $x"', runAsync: true, suppressInputEcho: true });
    let out = '';
    let err = '';
    const streaming = sdk.getSessionCommandLogs(id, started.cmdId, (s) => (out += s), (s) => (err += s));
    await waitFor(() => out === 'streamed\n' && err === 'warned\n', 10_000, 'streamed output');
    await sdk.sendSessionCommandInput(id, started.cmdId, 'x\n');
    await streaming;
    expect(out).toBe('streamed\nlast x\n');
    expect(err).toBe('warned\n');
    expect((await sdk.getSessionCommand(id, started.cmdId)).exitCode).toBe(0);
    expect((await sdk.listSessions()).map((s) => s.sessionId)).toContain(id);
    await sdk.deleteSession(id);
    await expect(sdk.getSession(id)).rejects.toThrow();
  });
});

describe('SDKs before 0.167 (X-Daytona-SDK-Version), which split marked output themselves', () => {
  it('reads versions: below 0.167.0 is marked, the rest (and no or bad header) is not', () => {
    expect(['0.143.0', '0.166.9', 'v0.27.1', '0.143.0-rc.1'].map(wantsMarkedOutput)).toEqual([true, true, true, true]);
    expect(['0.167.0', '0.218.0', '1.0.0', '', 'dev', undefined].map(wantsMarkedOutput)).toEqual([false, false, false, false, false, false]);
  });

  it('marks exec output and answers logs as marked text; today\'s SDKs keep JSON and plain output', async () => {
    const id = await newSession();
    const old = { 'X-Daytona-SDK-Version': '0.143.0' };
    const command = 'echo o1; sleep 0.05; echo e1 >&2; sleep 0.05; echo o2; sleep 0.05; echo e2 >&2';
    const marked = await call<SessionExecuteResponse>('POST', `/process/session/${id}/exec`, { command }, old);
    expect(marked.status).toBe(200);
    const M = (prefix: Buffer, s: string) => prefix.toString() + s;
    const expected = M(STDOUT_PREFIX, 'o1\n') + M(STDERR_PREFIX, 'e1\n') + M(STDOUT_PREFIX, 'o2\n') + M(STDERR_PREFIX, 'e2\n');
    expect(marked.body).toMatchObject({ output: expected, stdout: 'o1\no2\n', stderr: 'e1\ne2\n', exitCode: 0 });
    const logs = await call('GET', `/process/session/${id}/command/${marked.body.cmdId}/logs`, undefined, { ...old, Accept: 'application/json, text/plain, */*' });
    expect(logs.text).toBe(expected);
    const today = await call<SessionExecuteResponse>('POST', `/process/session/${id}/exec`, { command }, { 'X-Daytona-SDK-Version': '0.218.0' });
    expect(today.body.output).toBe('o1\ne1\no2\ne2\n');
    const json = await call<SessionCommandLogs>('GET', `/process/session/${id}/command/${today.body.cmdId}/logs`);
    expect(json.body).toEqual({ output: 'o1\ne1\no2\ne2\n', stdout: 'o1\no2\n', stderr: 'e1\ne2\n' });
  });
});

describe('the entrypoint session', () => {
  it('is held (--hold-entrypoint) through the agent\'s own warm-up, until the first request with the token', async () => {
    const marker = path.join(mkdtempSync(path.join(os.tmpdir(), 'cove-hold-')), 'started');
    const held = await startAgent({ args: ['--hold-entrypoint', '--', 'sh', '-c', `touch ${marker}; exec sleep 304`] });
    try {
      // The warm-up (an authorized request dispatched in the agent, and a command of its own) runs after the ready
      // line; nothing of it may start the entrypoint.
      await new Promise((r) => setTimeout(r, 1500));
      expect((await fetch(`${held.url}/version`)).status).toBe(401);
      await new Promise((r) => setTimeout(r, 300));
      expect(existsSync(marker)).toBe(false);
      expect((await held.fetch('/version')).status).toBe(200);
      await waitFor(() => existsSync(marker), 10_000, 'the entrypoint to start');
    } finally {
      await held.stop('SIGTERM');
    }
  });

  it('runs the image entrypoint as a session whose logs the SDK can read, and stops it with the agent', async () => {
    const withEntrypoint = await startAgent({ args: ['--', 'sh', '-c', 'echo booted; echo $$; echo warn >&2; exec sleep 303'] });
    try {
      const auth = { Authorization: `Bearer ${withEntrypoint.token}` };
      const config = new Configuration({ basePath: withEntrypoint.url, baseOptions: { headers: auth } });
      const sdk = new Process(config, new ProcessApi(config), async () => withEntrypoint.token, 'python', 60_000);
      const logs = (await waitFor(async () => {
        const l = await sdk.getEntrypointLogs();
        return (l.stdout ?? '').split('\n').length >= 3 ? l : undefined;
      }))!;
      expect(logs.stdout).toMatch(/^booted\n\d+\n$/);
      expect(logs.stderr).toBe('warn\n');
      const pid = Number(logs.stdout!.split('\n')[1]);
      startedPids.push(pid);
      const session = await sdk.getEntrypointSession();
      expect(session.sessionId).toBe('entrypoint');
      expect(session.commands).toHaveLength(1);
      expect(session.commands[0].exitCode).toBeUndefined();
      expect(alive(pid)).toBe(true);

      await withEntrypoint.stop('SIGTERM');
      await waitFor(() => !alive(pid), 10_000, 'the entrypoint to stop with the agent');
      expect(alive(pid)).toBe(false);
    } finally {
      await withEntrypoint.stop('SIGKILL');
    }
  });
});
