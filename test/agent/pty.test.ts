import { Configuration, ProcessApi } from '@daytona/toolbox-api-client';
import { Process } from '@daytonaio/sdk';
import * as headless from '@xterm/headless';
import axios from 'axios';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { encodeEnvsProtocol, PTY_EXIT_CONTROL_PROTOCOL, type PtySessionInfo } from '../../wire/pty';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

// CommonJS: Node's ESM loader exposes only `default`, vite the names too.
const { Terminal } = ((headless as { default?: typeof headless }).default ?? headless) as typeof headless;

let agent: TestAgent;
let seq = 0;
const newId = () => `pty-${process.pid}-${++seq}`;

beforeAll(async () => {
  agent = await startAgent();
});
afterAll(async () => {
  for (const s of (await agent.json<{ sessions: PtySessionInfo[] }>('/process/pty')).sessions) {
    await agent.fetch(`/process/pty/${s.id}`, { method: 'DELETE' });
  }
  await agent.stop();
});

/** A WebSocket client of the PTY channel that records everything it receives, in order. */
interface Channel {
  ws: WebSocket;
  /** Parsed text frames (control messages), in order. */
  controls: any[];
  /** Binary frames, in order. */
  frames: Buffer[];
  /** Every frame as received: text frames as strings, binary as Buffers. */
  events: (string | Buffer)[];
  /** All output so far, decoded. */
  text(): string;
  waitText(pattern: string | RegExp, what?: string): Promise<void>;
  /** Sends once the socket is open (in call order). */
  send(data: string | Buffer): void;
  opened: Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the HTTP status when the upgrade is refused. */
  refused: Promise<number>;
}

function channel(p: string, protocols: string[] = [PTY_EXIT_CONTROL_PROTOCOL]): Channel {
  const ws = agent.ws(p, protocols);
  const decoder = new StringDecoder('utf8');
  let text = '';
  const ch: Channel = {
    ws,
    controls: [],
    frames: [],
    events: [],
    text: () => text,
    send: (data) => void ch.opened.then(() => ws.send(data)),
    waitText: (pattern, what) =>
      waitFor(() => (typeof pattern === 'string' ? ch.text().includes(pattern) : pattern.test(ch.text())), 15_000, what ?? `output ${pattern}`).then(
        () => undefined,
      ),
    opened: new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }),
    closed: new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
    refused: new Promise((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))),
  };
  ws.on('error', () => {});
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) {
      text += decoder.write(data);
      ch.frames.push(data);
      ch.events.push(data);
    } else {
      ch.controls.push(JSON.parse(data.toString()));
      ch.events.push(data.toString());
    }
  });
  return ch;
}

/** bash turns bracketed paste on each time it draws its prompt. */
const PROMPT_DRAWN = '\x1b[?2004h';

const connect = (id: string, protocols?: string[]) => channel(`/process/pty/${id}/connect`, protocols);

async function create(body: Record<string, unknown> = {}): Promise<string> {
  const res = await agent.fetch('/process/pty', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: newId(), ...body }),
  });
  expect(res.status).toBe(201);
  const { sessionId } = await res.json();
  return sessionId;
}

const info = (id: string) => agent.json<PtySessionInfo>(`/process/pty/${id}`);
const remove = (id: string) => agent.fetch(`/process/pty/${id}`, { method: 'DELETE' });

async function closeClient(ch: Channel): Promise<void> {
  ch.ws.close();
  await ch.closed;
}

/** Renders bytes in a terminal of the given size and returns its visible lines and active buffer. */
async function render(bytes: Buffer, cols: number, rows: number): Promise<{ lines: string[]; buffer: string }> {
  const term = new Terminal({ cols, rows, allowProposedApi: true });
  await new Promise<void>((resolve) => term.write(bytes, resolve));
  const b = term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) lines.push(b.getLine(b.viewportY + i)?.translateToString(true) ?? '');
  const result = { lines, buffer: b.type };
  term.dispose();
  return result;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('PTY sessions over HTTP', () => {
  it('creates, lists, gets and deletes a session', async () => {
    const id = await create({ cols: 90, rows: 20 });
    const got = await info(id);
    expect(got).toMatchObject({ id, active: true, cols: 90, rows: 20, cwd: agent.workdir, envs: {}, lazyStart: false, clients: 0 });
    expect(got.processId).toBeGreaterThan(0);
    expect(Number.isNaN(Date.parse(got.createdAt))).toBe(false);
    expect(alive(got.processId!)).toBe(true);

    const list = await agent.json<{ sessions: PtySessionInfo[] }>('/process/pty');
    expect(list.sessions.map((s) => s.id)).toContain(id);

    expect((await remove(id)).status).toBe(204);
    expect((await agent.fetch(`/process/pty/${id}`)).status).toBe(404);
    await waitFor(() => !alive(got.processId!), 10_000, 'the shell to be killed');
    const after = await agent.json<{ sessions: PtySessionInfo[] }>('/process/pty');
    expect(after.sessions.map((s) => s.id)).not.toContain(id);
  });

  it('runs the shell in the requested cwd with the requested envs', async () => {
    const dir = path.join(agent.workdir, 'sub dir');
    mkdirSync(dir, { recursive: true });
    const id = await create({ cwd: 'sub dir', envs: { COVE_PTY_VAR: 'hello-env' } });
    expect((await info(id)).cwd).toBe(dir);
    expect((await info(id)).envs).toEqual({ COVE_PTY_VAR: 'hello-env' });
    const ch = connect(id);
    ch.send('echo "[$COVE_PTY_VAR|$PWD|$TERM]"\r');
    await ch.waitText(`[hello-env|${dir}|xterm-256color]`);
    await closeClient(ch);
    await remove(id);
  });

  it('resizes the terminal and the program sees the new size', async () => {
    const id = await create({ cols: 80, rows: 24 });
    const ch = connect(id);
    ch.send('stty size; echo size-done-$((1+1))\r');
    await ch.waitText(/24 80\r\nsize-done-2/);
    const resized = await agent.json<PtySessionInfo>(`/process/pty/${id}/resize`, { method: 'POST', json: { cols: 132, rows: 40 } });
    expect(resized).toMatchObject({ id, cols: 132, rows: 40 });
    expect(await info(id)).toMatchObject({ cols: 132, rows: 40 });
    ch.send('stty size; echo size-done-$((2+2))\r');
    await ch.waitText(/40 132\r\nsize-done-4/);
    await closeClient(ch);
    await remove(id);
  });

  it('kill ends the whole terminal session (background jobs too) and attached clients see the exit', async () => {
    const id = await create();
    const ch = connect(id);
    ch.send('sleep 3000 & echo "bg=$!="\r');
    await ch.waitText(/bg=\d+=/);
    const bg = Number(/bg=(\d+)=/.exec(ch.text())![1]);
    expect(alive(bg)).toBe(true);
    expect((await remove(id)).status).toBe(204);
    const closed = await ch.closed;
    expect(closed.code).toBe(1011);
    expect(JSON.parse(closed.reason)).toEqual({ exitCode: 137, exitReason: 'killed by SIGKILL' });
    expect(ch.controls.at(-1)).toEqual({ type: 'control', status: 'exited', exitCode: 137, exitReason: 'killed by SIGKILL' });
    await waitFor(() => !alive(bg), 10_000, 'the background job to be killed');
  });

  it('lazyStart starts the shell on the first attach', async () => {
    const id = await create({ lazyStart: true });
    const before = await info(id);
    expect(before).toMatchObject({ active: false, lazyStart: true });
    expect(before.processId).toBeUndefined();
    expect(before.exitCode).toBeUndefined();
    const ch = connect(id);
    await ch.opened;
    ch.send('echo lazy-$((3*3))\r');
    await ch.waitText('lazy-9');
    const after = await info(id);
    expect(after.active).toBe(true);
    expect(after.processId).toBeGreaterThan(0);
    await closeClient(ch);
    await remove(id);
  });

  it('keeps the exit code after the process ends, until the session is deleted', async () => {
    const id = await create();
    const ch = connect(id);
    ch.send('exit 9\r');
    await ch.closed;
    const got = await info(id);
    expect(got).toMatchObject({ active: false, exitCode: 9, exitReason: 'exited with code 9' });
    const listed = (await agent.json<{ sessions: PtySessionInfo[] }>('/process/pty')).sessions.find((s) => s.id === id);
    expect(listed).toMatchObject({ exitCode: 9 });
    // Attaching to an ended session replays its screen and reports the exit.
    const late = connect(id);
    const closed = await late.closed;
    expect(closed.code).toBe(1011);
    expect(late.controls).toEqual([
      { type: 'control', status: 'connected' },
      { type: 'control', status: 'exited', exitCode: 9, exitReason: 'exited with code 9' },
    ]);
    expect(late.text()).toContain('exit 9');
    expect((await remove(id)).status).toBe(204);
    expect((await agent.fetch(`/process/pty/${id}`)).status).toBe(404);
  });
});

describe('PTY WebSocket channel', () => {
  it('two-step flow: echoes the exit-control subprotocol, sends connected first, exited then close 1000 for exit 0', async () => {
    const id = await create();
    const ch = connect(id);
    await ch.opened;
    expect(ch.ws.protocol).toBe(PTY_EXIT_CONTROL_PROTOCOL);
    await waitFor(() => ch.events.length > 0, 10_000, 'a first frame');
    expect(ch.events[0]).toBe('{"type":"control","status":"connected"}');
    ch.send(Buffer.from('exit 0\r'));
    const closed = await ch.closed;
    expect(closed.code).toBe(1000);
    expect(JSON.parse(closed.reason)).toEqual({ exitCode: 0 });
    expect(ch.controls).toEqual([
      { type: 'control', status: 'connected' },
      { type: 'control', status: 'exited', exitCode: 0 },
    ]);
    // The exited message is the last frame: all output came before it.
    expect(ch.events.at(-1)).toBe('{"type":"control","status":"exited","exitCode":0}');
    expect(ch.text()).toContain('exit 0');
    await remove(id);
  });

  it('closes with 1011 and the exit as JSON for a non-zero exit', async () => {
    const id = await create();
    const ch = connect(id);
    ch.send('exit 5\r');
    const closed = await ch.closed;
    expect(closed.code).toBe(1011);
    expect(JSON.parse(closed.reason)).toEqual({ exitCode: 5, exitReason: 'exited with code 5' });
    expect(ch.controls.at(-1)).toEqual({ type: 'control', status: 'exited', exitCode: 5, exitReason: 'exited with code 5' });
    await remove(id);
  });

  it('sends no exited message to a client that did not offer the exit-control subprotocol', async () => {
    const id = await create();
    const ch = connect(id, []);
    await ch.opened;
    expect(ch.ws.protocol).toBe('');
    ch.send('exit 4\r');
    const closed = await ch.closed;
    expect(closed.code).toBe(1011);
    expect(JSON.parse(closed.reason)).toEqual({ exitCode: 4, exitReason: 'exited with code 4' });
    expect(ch.controls).toEqual([{ type: 'control', status: 'connected' }]);
    await remove(id);
  });

  it('create-connect: one step with size, cwd and the envs subprotocol, as SDK 0.218 sends them', async () => {
    const id = newId();
    const envsToken = encodeEnvsProtocol({ CC_VAR: 'from-subprotocol', OTHER: 'x y' });
    const q = new URLSearchParams({ id, cols: '101', rows: '33', cwd: agent.workdir });
    const ch = channel(`/process/pty/create-connect?${q}`, [envsToken, PTY_EXIT_CONTROL_PROTOCOL]);
    await ch.opened;
    expect(ch.ws.protocol).toBe(PTY_EXIT_CONTROL_PROTOCOL);
    await waitFor(() => ch.events.length > 0, 10_000, 'a first frame');
    expect(ch.events[0]).toBe('{"type":"control","status":"connected"}');
    expect(await info(id)).toMatchObject({ id, cols: 101, rows: 33, cwd: agent.workdir, active: true, clients: 1 });
    expect((await info(id)).envs).toEqual({ CC_VAR: 'from-subprotocol', OTHER: 'x y' });
    ch.send(Buffer.from('echo "<$CC_VAR|$OTHER>"; stty size\r'));
    await ch.waitText(/<from-subprotocol\|x y>\r\n33 101/);
    ch.send(Buffer.from('exit 7\r'));
    const closed = await ch.closed;
    expect(closed.code).toBe(1011);
    expect(JSON.parse(closed.reason)).toEqual({ exitCode: 7, exitReason: 'exited with code 7' });
    expect(ch.controls.at(-1)).toEqual({ type: 'control', status: 'exited', exitCode: 7, exitReason: 'exited with code 7' });
    expect(await info(id)).toMatchObject({ active: false, exitCode: 7 });
    await remove(id);
  });

  it('takes input as text frames and as binary frames (including control bytes)', async () => {
    const id = await create();
    const ch = connect(id);
    ch.send('echo text-$((10+1))\r'); // text frame
    await ch.waitText('text-11');
    ch.send(Buffer.from('echo bin-$((10+2))\r')); // binary frame
    await ch.waitText('bin-12');
    // UTF-8 split across two binary frames arrives whole.
    const word = Buffer.from('echo "ünï-$((6+7))"\r');
    const cut = word.indexOf(0xc3) + 1;
    ch.send(word.subarray(0, cut));
    ch.send(word.subarray(cut));
    await ch.waitText('ünï-13');
    // Ctrl-C as one byte interrupts a foreground command.
    ch.send('sleep 3000\r');
    await ch.waitText(/sleep 3000\r\n/);
    ch.send(Buffer.from([3]));
    ch.send('echo after-int-$((20+1))\r');
    await ch.waitText('after-int-21');
    await closeClient(ch);
    await remove(id);
  });

  it('serves several clients at once: all see the output and all can type', async () => {
    const id = await create();
    const a = connect(id);
    const b = connect(id);
    await Promise.all([a.opened, b.opened]);
    await waitFor(async () => (await info(id)).clients === 2, 10_000, 'two clients');
    a.send('echo from-a-$((100+1))\r');
    await Promise.all([a.waitText('from-a-101'), b.waitText('from-a-101')]);
    b.send(Buffer.from('echo from-b-$((100+2))\r'));
    await Promise.all([a.waitText('from-b-102'), b.waitText('from-b-102')]);
    await closeClient(a);
    // One client leaving changes nothing for the other.
    b.send('echo still-$((100+3))\r');
    await b.waitText('still-103');
    expect((await info(id)).clients).toBe(1);
    await closeClient(b);
    await remove(id);
  });

  it('delivers a large burst whole and in order to a slow reader and a fast one', async () => {
    const id = await create();
    const slow = connect(id);
    const fast = connect(id);
    await Promise.all([slow.opened, fast.opened]);
    // The slow client stops reading its socket: the agent's sends to it back up until it pauses the PTY.
    const slowSocket = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket;
    slowSocket.pause();
    const LINES = 1_500_000;
    fast.send(`seq 1 ${LINES}; echo END-$((2+3))\r`);
    await fast.waitText('\r\n100000\r\n');
    slowSocket.resume();
    await Promise.all([slow.waitText('\nEND-5'), fast.waitText('\nEND-5')]);
    for (const ch of [slow, fast]) {
      const lines = ch.text().split('\r\n');
      // bash ends bracketed paste (`ESC[?2004l CR`) just before the command's output starts.
      const first = lines.findIndex((l, i) => l.endsWith('\r1') && lines[i + 1] === '2');
      expect(first).toBeGreaterThan(0);
      const numbers = lines.slice(first + 1, first + LINES);
      expect(numbers.length).toBe(LINES - 1);
      expect(numbers.every((line, i) => line === String(i + 2))).toBe(true);
      expect(lines[first + LINES]).toBe('END-5');
    }
    await Promise.all([closeClient(slow), closeClient(fast)]);
    // The agent is fine and the shell still answers.
    const again = connect(id);
    again.send('echo alive-$((7+7))\r');
    await again.waitText('alive-14');
    await closeClient(again);
    await remove(id);
  });

  it('a PTY outlives its client: output made while nobody is attached is replayed on the next attach', async () => {
    const id = await create();
    const ch = connect(id);
    const marker = path.join(agent.workdir, `marker-${id}`);
    ch.send(`sleep 1; echo "late-$((6*7))"; touch '${marker}'\r`);
    await ch.waitText(/sleep 1;/);
    await closeClient(ch);
    await waitFor(() => existsSync(marker), 15_000, 'the command to finish while detached');
    const got = await info(id);
    expect(got).toMatchObject({ active: true, clients: 0 });
    expect(alive(got.processId!)).toBe(true);
    const again = connect(id);
    await waitFor(() => again.frames.length > 0, 10_000, 'the replay');
    const screen = await render(again.frames[0], got.cols, got.rows);
    expect(screen.lines.join('\n')).toContain('late-42');
    // And it is still the same live shell.
    again.send('echo back-$((6*8))\r');
    await again.waitText('back-48');
    await closeClient(again);
    await remove(id);
  });

  it('replays the screen of a full-screen program (vi on the alternate screen) to a new client', async () => {
    const file = path.join(agent.workdir, `vi-${process.pid}.txt`);
    writeFileSync(file, 'first line of the buffer\nsecond: quick brown fox\nthird and last\n');
    const id = await create({ cols: 80, rows: 24 });
    const first = connect(id);
    first.send(`vi '${file}'\r`);
    await first.waitText('quick brown fox');
    await closeClient(first);

    const second = connect(id);
    await waitFor(() => second.frames.length > 0, 10_000, 'the replay');
    // The first output frame is the replay; vi does not redraw on its own, so this is what the agent kept.
    const screen = await render(second.frames[0], 80, 24);
    expect(screen.buffer).toBe('alternate');
    const text = screen.lines.join('\n');
    expect(text).toContain('first line of the buffer');
    expect(text).toContain('second: quick brown fox');
    expect(text).toContain('third and last');
    expect(screen.lines.filter((l) => l.startsWith('~')).length).toBeGreaterThan(5);
    // The primary screen under it is kept too: leaving vi brings the shell back.
    // vi discards input typed ahead of its exit: wait for the shell to draw its prompt again.
    const mark = second.text().length;
    second.send(':q!\r');
    await waitFor(() => second.text().slice(mark).includes(PROMPT_DRAWN), 15_000, 'the shell prompt after vi');
    second.send('echo left-vi-$((5*5))\r');
    await second.waitText('left-vi-25');
    const after = await render(Buffer.concat(second.frames), 80, 24);
    expect(after.buffer).toBe('normal');
    await closeClient(second);
    await remove(id);
  });

  it('replays the screen of top (header and process table) to a new client', async () => {
    const id = await create({ cols: 100, rows: 30 });
    const first = connect(id);
    first.send('top -d 5\r');
    await first.waitText('Tasks:');
    await closeClient(first);
    const second = connect(id);
    await waitFor(() => second.frames.length > 0, 10_000, 'the replay');
    const screen = await render(second.frames[0], 100, 30);
    expect(screen.lines[0]).toMatch(/^top - /);
    expect(screen.lines.join('\n')).toMatch(/Tasks:.*total/);
    expect(screen.lines.join('\n')).toMatch(/PID\s+USER/);
    // top hides the cursor; the replay restores that too.
    expect(second.frames[0].toString()).toContain('\x1b[?25l');
    const mark = second.text().length;
    second.send('q');
    await waitFor(() => second.text().slice(mark).includes(PROMPT_DRAWN), 15_000, 'the shell prompt after top');
    second.send('echo left-top-$((4*4))\r');
    await second.waitText('left-top-16');
    await closeClient(second);
    await remove(id);
  });
});

describe('PTY errors', () => {
  const expectError = async (res: Response, status: number, code: string) => {
    expect(res.status).toBe(status);
    const body = await res.json();
    expect(body).toMatchObject({ code, source: 'DAYTONA_DAEMON' });
    expect(typeof body.message).toBe('string');
    return body;
  };
  const post = (p: string, body: unknown) =>
    agent.fetch(p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

  it('unknown sessions are 404 on every route', async () => {
    await expectError(await agent.fetch('/process/pty/no-such-pty'), 404, 'PTY_NOT_FOUND');
    await expectError(await remove('no-such-pty'), 404, 'PTY_NOT_FOUND');
    await expectError(await post('/process/pty/no-such-pty/resize', { cols: 10, rows: 10 }), 404, 'PTY_NOT_FOUND');
    const ch = connect('no-such-pty');
    const closed = await ch.closed;
    expect(closed.code).toBe(4404);
    expect(JSON.parse(closed.reason)).toEqual({ error: 'PTY session no-such-pty not found' });
    expect(ch.controls).toEqual([{ type: 'control', status: 'error', error: 'PTY session no-such-pty not found' }]);
  });

  it('a duplicate id is 409, over HTTP and over create-connect', async () => {
    const id = await create();
    await expectError(await post('/process/pty', { id }), 409, 'PTY_EXISTS');
    const ch = channel(`/process/pty/create-connect?id=${id}`);
    const closed = await ch.closed;
    expect(closed.code).toBe(4409);
    expect(JSON.parse(closed.reason).error).toContain('already exists');
    // The existing session is untouched.
    expect((await info(id)).active).toBe(true);
    await remove(id);
  });

  it('bad sizes, ids, bodies and cwd are 4xx with a clear message', async () => {
    const bad = [
      { cols: 0 },
      { rows: -1 },
      { cols: 5000 },
      { cols: 10.5 },
      { rows: 'many' },
      { id: 'a/b' },
      { id: '' },
      { envs: { A: 1 } },
      { lazyStart: 'yes' },
    ];
    for (const body of bad) {
      const res = await post('/process/pty', { id: newId(), ...body });
      const err = await expectError(res, 400, 'INVALID_REQUEST');
      expect(err.message).toMatch(/^Invalid request body\./);
    }
    expect((await post('/process/pty', { id: newId(), cols: 0 }).then((r) => r.json())).message).toContain('cols must be at least 1');
    await expectError(await agent.fetch('/process/pty', { method: 'POST', body: '{nope' }), 400, 'INVALID_JSON');
    await expectError(await post('/process/pty', { id: newId(), cwd: '/no/such/dir' }), 404, 'FILE_NOT_FOUND');
    const file = path.join(agent.workdir, 'plain-file');
    writeFileSync(file, 'x');
    await expectError(await post('/process/pty', { id: newId(), cwd: file }), 400, 'NOT_A_DIRECTORY');

    const id = await create();
    await expectError(await post(`/process/pty/${id}/resize`, { cols: 0, rows: 10 }), 400, 'INVALID_REQUEST');
    await expectError(await post(`/process/pty/${id}/resize`, { cols: 10 }), 400, 'INVALID_REQUEST');
    await expectError(await post(`/process/pty/${id}/resize`, { cols: 10, rows: 1001 }), 400, 'INVALID_REQUEST');
    expect((await info(id)).cols).toBe(80);
    await remove(id);

    // create-connect validates its query before the upgrade.
    for (const q of ['id=x&cols=0', 'id=x&rows=abc', 'cols=10', 'id=a%2Fb']) {
      expect(await channel(`/process/pty/create-connect?${q}`).refused).toBe(400);
    }
    // None of the refused requests left a session behind.
    const ids = (await agent.json<{ sessions: PtySessionInfo[] }>('/process/pty')).sessions.map((s) => s.id);
    expect(ids).not.toContain('x');
  });

  it('a malformed envs subprotocol fails the create-connect with 4400 and creates nothing', async () => {
    const id = newId();
    const ch = channel(`/process/pty/create-connect?id=${id}`, ['X-Daytona-Pty-Envs~!!!not-base64-json', PTY_EXIT_CONTROL_PROTOCOL]);
    const closed = await ch.closed;
    expect(closed.code).toBe(4400);
    expect(JSON.parse(closed.reason).error).toMatch(/envs subprotocol/);
    expect((await agent.fetch(`/process/pty/${id}`)).status).toBe(404);
  });

  it('resizing an ended session is refused; the agent keeps serving', async () => {
    const id = await create();
    const ch = connect(id);
    ch.send('exit 0\r');
    await ch.closed;
    await expectError(await post(`/process/pty/${id}/resize`, { cols: 10, rows: 10 }), 410, 'SESSION_ENDED');
    await remove(id);
    expect(agent.process.exitCode).toBeNull();
  });
});

describe('the published Daytona SDK (Process and PtyHandle) against a bare agent', () => {
  // Process builds its WebSocket URLs from clientConfig.basePath, which the SDK sets to the toolbox URL; pointing it
  // at the agent itself gives the SDK's own createPty/connectPty/PtyHandle flow without a proxy.
  const sdk = () => {
    const config = new Configuration({ basePath: agent.url, baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } } });
    const api = new ProcessApi(config, '', axios.create() as never);
    return new Process(config as never, api, async () => '', 'python');
  };

  it('createPty (create-connect), sendInput, resize, wait for the exit code', async () => {
    const proc = sdk();
    const id = newId();
    let out = '';
    const handle = await proc.createPty({
      id,
      cols: 120,
      rows: 35,
      envs: { SDK_VAR: 'sdk-env-ok' },
      onData: (data: Uint8Array) => {
        out += Buffer.from(data).toString();
      },
    });
    expect(handle.isConnected()).toBe(true);
    await handle.sendInput('echo "[$SDK_VAR]"; stty size\n');
    await waitFor(() => /\[sdk-env-ok\]\r\n35 120/.test(out), 15_000, 'env and size from the SDK');
    const resized = await handle.resize(90, 25);
    expect(resized).toMatchObject({ id, cols: 90, rows: 25 });
    await handle.sendInput('stty size\n');
    await waitFor(() => out.includes('25 90'), 15_000, 'the new size');
    await handle.sendInput('exit 3\n');
    const result = await handle.wait();
    expect(result).toEqual({ exitCode: 3, error: 'exited with code 3' });
    expect(handle.exitCode).toBe(3);
    const got = await proc.getPtySessionInfo(id);
    expect(got).toMatchObject({ id, active: false, exitCode: 3 });
    await proc.killPtySession(id);
    await expect(proc.getPtySessionInfo(id)).rejects.toThrow();
  });

  it('connectPty re-attaches with the screen; list and kill; wait reports the kill', async () => {
    const proc = sdk();
    const id = newId();
    let out = '';
    const handle = await proc.createPty({ id, onData: (d: Uint8Array) => void (out += Buffer.from(d).toString()) });
    await handle.sendInput('echo "sdk-screen-$((9*9))"\n');
    await waitFor(() => out.includes('sdk-screen-81'), 15_000, 'the output');
    await handle.disconnect();
    await waitFor(async () => (await info(id)).clients === 0, 10_000, 'the SDK client to leave');
    expect((await proc.getPtySessionInfo(id)).active).toBe(true);

    let replay = '';
    const again = await proc.connectPty(id, { onData: (d: Uint8Array) => void (replay += Buffer.from(d).toString()) });
    await waitFor(() => replay.includes('sdk-screen-81'), 10_000, 'the replayed screen');
    const sessions = await proc.listPtySessions();
    expect(sessions.find((s) => s.id === id)).toMatchObject({ id, active: true, cols: 80, rows: 24, lazyStart: false });

    await again.kill();
    const result = await again.wait();
    expect(result).toEqual({ exitCode: 137, error: 'killed by SIGKILL' });
    await expect(proc.getPtySessionInfo(id)).rejects.toThrow();
  });
});

describe('agent shutdown', () => {
  it('SIGTERM to the agent ends every PTY (shells ignore SIGTERM) and their jobs', async () => {
    const own = await startAgent();
    try {
      const res = await own.fetch('/process/pty', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: 'shutdown' }),
      });
      expect(res.status).toBe(201);
      const shellPid = (await own.json<PtySessionInfo>('/process/pty/shutdown')).processId!;
      const ws = own.ws('/process/pty/shutdown/connect');
      let out = '';
      ws.on('message', (d: Buffer, bin) => bin && (out += d.toString()));
      await new Promise((r) => ws.once('open', r));
      ws.send('sleep 3000 & echo "bg=$!="\r');
      await waitFor(() => /bg=\d+=/.test(out), 15_000, 'the background job');
      const bg = Number(/bg=(\d+)=/.exec(out)![1]);
      expect(alive(shellPid) && alive(bg)).toBe(true);
      expect(await own.stop('SIGTERM')).toBe(0);
      await waitFor(() => !alive(shellPid) && !alive(bg), 10_000, 'the PTY processes to end');
    } finally {
      await own.stop('SIGKILL');
    }
  });
});
