import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { compilePathGlob } from '../../agent/src/system/glob';
import { createIgnoreMatcher } from '../../agent/src/watch/ignore';
import { WatchOutbox } from '../../agent/src/watch/outbox';
import { splitGlobList, type WatchersResponse, type WatchEventMessage, type WatchServerMessage } from '../../wire/watch';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

let agent: TestAgent;
let seq = 0;

beforeAll(async () => {
  agent = await startAgent();
});
afterAll(async () => {
  await agent?.stop();
});
/** Every client a test opened; closed after it, so that a failed test does not leave a watch behind for the next. */
const open = new Set<WatchClient>();
afterEach(async () => {
  await Promise.all([...open].map((c) => c.close()));
  open.clear();
});

/** A fresh folder in the work dir, and its absolute path. */
function freshDir(): string {
  const dir = path.join(agent.workdir, `w${++seq}`);
  mkdirSync(dir);
  return dir;
}

/** A client of the watch channel that records every message. */
interface WatchClient {
  ws: WebSocket;
  messages: WatchServerMessage[];
  events(): WatchEventMessage[];
  /** Resolves with the first message matching `predicate` (already received or to come). */
  waitFor(predicate: (m: WatchServerMessage) => boolean, what: string, timeoutMs?: number): Promise<WatchServerMessage>;
  waitEvent(event: WatchEventMessage['event'], file: string, timeoutMs?: number): Promise<WatchEventMessage>;
  /** Waits for an add or change of `file` that reports `size` (a write right after another may come as a later change). */
  waitSize(file: string, size: number): Promise<WatchEventMessage>;
  ready: Promise<void>;
  closed: Promise<number>;
  /** HTTP status and body when the upgrade is refused. */
  refused: Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

function watch(query: Record<string, string>): WatchClient {
  const ws = agent.ws(`/files/watch?${new URLSearchParams(query)}`);
  const messages: WatchServerMessage[] = [];
  const client: WatchClient = {
    ws,
    messages,
    events: () => messages.filter((m): m is WatchEventMessage => m.type === 'event'),
    waitFor: (predicate, what, timeoutMs = 15_000) => waitFor(() => messages.find(predicate), timeoutMs, what) as Promise<WatchServerMessage>,
    waitEvent: (event, file, timeoutMs) =>
      client.waitFor((m) => m.type === 'event' && m.event === event && m.path === file, `${event} ${file}`, timeoutMs) as Promise<WatchEventMessage>,
    waitSize: (file, size) =>
      client.waitFor(
        (m) => m.type === 'event' && (m.event === 'add' || m.event === 'change') && m.path === file && m.size === size,
        `${file} of ${size} bytes`,
      ) as Promise<WatchEventMessage>,
    ready: undefined as unknown as Promise<void>,
    closed: new Promise((resolve) => ws.once('close', (code) => resolve(code))),
    refused: new Promise((resolve) =>
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
      }),
    ),
    async close() {
      open.delete(client);
      if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) ws.close();
      await client.closed;
    },
  };
  client.ready = client.waitFor((m) => m.type === 'ready', 'ready').then(() => undefined);
  // Tests that never wait for ready (refused watches, slow readers) must not leave a rejection unhandled.
  client.ready.catch(() => {});
  open.add(client);
  ws.on('error', () => {});
  ws.on('message', (data) => messages.push(JSON.parse(String(data))));
  return client;
}

const watchers = async () => (await agent.json<WatchersResponse>('/files/watchers')).watchers;

/** Inotify watches the agent process holds now (one `inotify wd:` line per watched inode in /proc/PID/fdinfo). */
function inotifyWatches(): number {
  const dir = `/proc/${agent.process.pid}/fdinfo`;
  let count = 0;
  for (const fd of readdirSync(dir)) {
    try {
      count += readFileSync(path.join(dir, fd), 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // The fd closed while we looked.
    }
  }
  return count;
}

/**
 * Absence of an event cannot be waited for; instead write a marker after the change that must not be reported and
 * wait for the marker: the watcher has then seen the earlier change and chose not to report it.
 */
async function settle(client: WatchClient, dir: string): Promise<void> {
  const marker = path.join(dir, `marker-${++seq}`);
  writeFileSync(marker, '');
  await client.waitEvent('add', marker);
}

describe('file watching', () => {
  it('reports files created, changed, moved and deleted by another process', async () => {
    const dir = freshDir();
    const w = watch({ path: dir });
    await w.ready;
    const a = path.join(dir, 'a.txt');
    writeFileSync(a, 'one');
    expect(await w.waitEvent('add', a)).toMatchObject({ isDir: false });
    const written = await w.waitSize(a, 3);
    expect(Date.parse(written.mtime!)).toBeGreaterThan(0);

    // writeFile truncates, then writes: the change that counts is the last one.
    writeFileSync(a, 'three');
    await w.waitEvent('change', a);
    expect(await w.waitSize(a, 5)).toMatchObject({ event: 'change', isDir: false });

    const b = path.join(dir, 'b.txt');
    renameSync(a, b);
    await w.waitEvent('unlink', a);
    await w.waitEvent('add', b);

    rmSync(b);
    await w.waitEvent('unlink', b);
    await w.close();
  });

  it('reports changes made by a command run through the agent, with a path relative to the work dir', async () => {
    const dir = freshDir();
    const w = watch({ path: path.basename(dir) });
    await w.ready;
    expect(w.messages.find((m) => m.type === 'ready')).toMatchObject({ path: dir, recursive: true });
    const cwd = dir;
    await agent.json('/process/execute', { method: 'POST', json: { command: 'mkdir sub && echo hi > sub/f.txt && echo x > top.txt', cwd } });
    await w.waitEvent('addDir', path.join(dir, 'sub'));
    await w.waitEvent('add', path.join(dir, 'sub/f.txt'));
    await w.waitEvent('add', path.join(dir, 'top.txt'));

    await agent.json('/process/execute', { method: 'POST', json: { command: 'echo more >> top.txt && rm -r sub', cwd } });
    await w.waitEvent('change', path.join(dir, 'top.txt'));
    await w.waitEvent('unlink', path.join(dir, 'sub/f.txt'));
    await w.waitEvent('unlinkDir', path.join(dir, 'sub'));
    await w.close();
  });

  it('reports folders added and removed, nested ones included', async () => {
    const dir = freshDir();
    const w = watch({ path: dir });
    await w.ready;
    const outer = path.join(dir, 'outer');
    const inner = path.join(outer, 'inner');
    mkdirSync(outer);
    await w.waitEvent('addDir', outer);
    mkdirSync(inner);
    expect(await w.waitEvent('addDir', inner)).toMatchObject({ isDir: true });
    writeFileSync(path.join(inner, 'deep.txt'), 'x');
    await w.waitEvent('add', path.join(inner, 'deep.txt'));

    rmSync(outer, { recursive: true });
    await w.waitEvent('unlinkDir', outer);
    await w.waitEvent('unlinkDir', inner);
    await w.waitEvent('unlink', path.join(inner, 'deep.txt'));
    await w.close();
  });

  it('reports every entry of folders created and filled at once (none lost between reading a new folder and watching it)', async () => {
    const dir = freshDir();
    const w = watch({ path: dir });
    await w.ready;
    // Another process makes 120 folders with a file at two depths each, pausing a little between steps so that some
    // land while the agent is reading a folder it has just been told about.
    const script = [
      'import os, sys, time',
      'root = sys.argv[1]',
      'for i in range(120):',
      '    d = os.path.join(root, "f%d" % i)',
      '    os.makedirs(os.path.join(d, "sub"))',
      '    time.sleep((i % 8) * 0.0004)',
      '    open(os.path.join(d, "sub", "inner.txt"), "w").close()',
      '    time.sleep((i % 5) * 0.0004)',
      '    open(os.path.join(d, "outer.txt"), "w").close()',
    ].join('\n');
    await new Promise<void>((resolve, reject) =>
      execFile('python3', ['-c', script, dir], (err) => (err ? reject(err) : resolve())),
    );
    const expected: string[] = [];
    for (let i = 0; i < 120; i++) expected.push(`f${i}/sub/inner.txt`, `f${i}/outer.txt`);
    await waitFor(
      () => {
        const added = new Set(w.events().filter((e) => e.event === 'add').map((e) => path.relative(dir, e.path)));
        return expected.every((f) => added.has(f));
      },
      15_000,
      'an add for every file',
    ).catch((err) => {
      const added = new Set(w.events().filter((e) => e.event === 'add').map((e) => path.relative(dir, e.path)));
      throw new Error(`${err.message}; missing: ${expected.filter((f) => !added.has(f)).join(', ')}`);
    });
    await settle(w, dir);
    const adds = w.events().filter((e) => e.event === 'add').map((e) => e.path);
    expect(adds.length).toBe(new Set(adds).size);
    await w.close();
  });

  it('watches one file', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'one.txt');
    const other = path.join(dir, 'other.txt');
    writeFileSync(file, 'a');
    const w = watch({ path: file });
    await w.ready;
    writeFileSync(other, 'not watched');
    writeFileSync(file, 'changed');
    expect(await w.waitSize(file, 7)).toMatchObject({ event: 'change' });
    rmSync(file);
    await w.waitEvent('unlink', file);
    expect(w.events().some((e) => e.path === other)).toBe(false);
    await w.close();
  });

  it('reports what exists before ready only when asked (initial=true)', async () => {
    const dir = freshDir();
    mkdirSync(path.join(dir, 'old'));
    writeFileSync(path.join(dir, 'old/existing.txt'), 'x');

    const quiet = watch({ path: dir });
    const verbose = watch({ path: dir, initial: 'true' });
    await Promise.all([quiet.ready, verbose.ready]);
    const beforeReady = verbose.messages.slice(0, verbose.messages.findIndex((m) => m.type === 'ready'));
    expect(beforeReady).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ event: 'addDir', path: dir }),
        expect.objectContaining({ event: 'addDir', path: path.join(dir, 'old') }),
        expect.objectContaining({ event: 'add', path: path.join(dir, 'old/existing.txt'), size: 1 }),
      ]),
    );
    expect(quiet.messages[0]).toMatchObject({ type: 'ready' });
    await Promise.all([quiet.close(), verbose.close()]);
  });

  it('does not report nested changes when not recursive', async () => {
    const dir = freshDir();
    mkdirSync(path.join(dir, 'nested'));
    const w = watch({ path: dir, recursive: 'false' });
    await w.ready;
    expect(w.messages.find((m) => m.type === 'ready')).toMatchObject({ recursive: false });
    writeFileSync(path.join(dir, 'nested/hidden.txt'), 'x');
    mkdirSync(path.join(dir, 'nested/deeper'));
    mkdirSync(path.join(dir, 'sibling'));
    writeFileSync(path.join(dir, 'top.txt'), 'x');
    await w.waitEvent('addDir', path.join(dir, 'sibling'));
    await w.waitEvent('add', path.join(dir, 'top.txt'));
    await settle(w, dir);
    expect(w.events().filter((e) => e.path.includes('/nested/'))).toEqual([]);
    await w.close();
  });

  it('ignores node_modules and .git by default, and reports them when asked', async () => {
    const dir = freshDir();
    const byDefault = watch({ path: dir });
    const everything = watch({ path: dir, ignoreDefaults: 'false' });
    await Promise.all([byDefault.ready, everything.ready]);
    mkdirSync(path.join(dir, 'node_modules/pkg'), { recursive: true });
    writeFileSync(path.join(dir, 'node_modules/pkg/index.js'), 'x');
    mkdirSync(path.join(dir, '.git'));
    writeFileSync(path.join(dir, '.git/HEAD'), 'ref');
    writeFileSync(path.join(dir, 'kept.txt'), 'x');

    await everything.waitEvent('addDir', path.join(dir, 'node_modules'));
    await everything.waitEvent('add', path.join(dir, '.git/HEAD'));
    await byDefault.waitEvent('add', path.join(dir, 'kept.txt'));
    await settle(byDefault, dir);
    expect(byDefault.events().filter((e) => /node_modules|\.git/.test(e.path))).toEqual([]);
    await Promise.all([byDefault.close(), everything.close()]);
  });

  it('ignores the globs it is given: names at any depth, paths from the watched folder, braces', async () => {
    const dir = freshDir();
    const w = watch({ path: dir, ignore: '*.log,build/**,tmp/*.{bak,swp}' });
    await w.ready;
    mkdirSync(path.join(dir, 'src/deep'), { recursive: true });
    mkdirSync(path.join(dir, 'build/out'), { recursive: true });
    mkdirSync(path.join(dir, 'tmp'));
    const ignored = ['app.log', 'src/deep/debug.log', 'build/out/main.js', 'tmp/a.bak', 'tmp/b.swp'];
    const kept = ['src/deep/app.ts', 'tmp/c.txt', 'src/build.txt', 'log.txt'];
    for (const f of [...ignored, ...kept]) writeFileSync(path.join(dir, f), 'x');
    for (const f of kept) await w.waitEvent('add', path.join(dir, f));
    await settle(w, dir);
    const reported = w.events().map((e) => path.relative(dir, e.path));
    for (const f of ignored) expect(reported).not.toContain(f);
    await w.close();
  });

  it('refuses the upgrade of an unknown path with 404, and of a bad query with 400', async () => {
    const missing = watch({ path: 'no/such/folder' });
    expect(await missing.refused).toMatchObject({
      status: 404,
      body: { code: 'FILE_NOT_FOUND', source: 'DAYTONA_DAEMON', message: expect.stringContaining('no/such/folder') },
    });
    const bad = watch({ path: '.', recursive: 'maybe' });
    expect(await bad.refused).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST' } });
    const none = agent.ws('/files/watch');
    const status = await new Promise<number>((resolve) => none.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(400);
  });

  it('releases its watchers when sockets close: none listed, inotify watches back where they were', async () => {
    await waitFor(async () => (await watchers()).length === 0, 10_000, 'earlier watches to end').catch(async (err) => {
      throw new Error(`${err.message}: ${JSON.stringify(await watchers())}`);
    });
    const baseline = inotifyWatches();
    const dir = freshDir();
    for (let i = 0; i < 20; i++) mkdirSync(path.join(dir, `d${i}`));
    // Several sockets on the same folder, and one on another.
    const clients = [watch({ path: dir }), watch({ path: dir }), watch({ path: dir, recursive: 'false' }), watch({ path: freshDir() })];
    await Promise.all(clients.map((c) => c.ready));
    expect(await watchers()).toHaveLength(4);
    expect(inotifyWatches()).toBeGreaterThanOrEqual(baseline + 21);

    // One closed from the client's side, one whose TCP connection just drops.
    await clients[0].close();
    clients[1].ws.terminate();
    await clients[1].closed;
    await clients[2].close();
    await clients[3].close();
    await waitFor(async () => (await watchers()).length === 0, 10_000, 'watchers to be released');
    await waitFor(() => inotifyWatches() <= baseline, 10_000, `inotify watches back to ${baseline}`);
  });

  it('keeps a slow client’s queue bounded, drops what does not fit, and says so with one overflow message', async () => {
    // Long names make each event large, so that the kernel's socket buffers (a few MB on loopback) fill with a
    // few thousand events instead of tens of thousands.
    const root = path.join(freshDir(), 'r'.repeat(200), 's'.repeat(200), 't'.repeat(200));
    mkdirSync(root, { recursive: true });
    const w = watch({ path: root });
    await w.ready;
    const socket = (w.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();

    const DIRS = 10;
    const PER_DIR = 1000;
    let peakQueuedBytes = 0;
    let peakQueued = 0;
    let peakBuffered = 0;
    const sample = async () => {
      const info = (await watchers()).find((x) => x.path === root)!;
      peakQueuedBytes = Math.max(peakQueuedBytes, info.queuedBytes);
      peakQueued = Math.max(peakQueued, info.queued);
      peakBuffered = Math.max(peakBuffered, info.bufferedBytes);
      return info;
    };
    for (let d = 0; d < DIRS; d++) {
      const sub = path.join(root, `d${d}`);
      mkdirSync(sub);
      for (let i = 0; i < PER_DIR; i++) writeFileSync(path.join(sub, `${String(i).padStart(5, '0')}-${'f'.repeat(200)}`), '');
      await sample();
    }
    // The agent has seen more than fits: some events were dropped.
    await waitFor(async () => (await sample()).dropped > 0, 60_000, 'events to be dropped');
    expect(peakQueuedBytes).toBeLessThanOrEqual(1024 * 1024);
    expect(peakQueued).toBeLessThanOrEqual(4096);
    // Writes stop at the high-water mark (256 KiB); one message may cross it.
    expect(peakBuffered).toBeLessThan(256 * 1024 + 4096);

    socket.resume();
    const overflow = await w.waitFor((m) => m.type === 'overflow', 'overflow message', 60_000);
    expect(overflow).toMatchObject({ type: 'overflow', dropped: expect.any(Number) });
    expect((overflow as { dropped: number }).dropped).toBeGreaterThan(0);
    expect(w.messages.filter((m) => m.type === 'overflow')).toHaveLength(1);
    expect(w.events().length).toBeLessThan(DIRS * (PER_DIR + 1));

    // After the overflow message, events are complete again.
    const after = path.join(root, 'after.txt');
    writeFileSync(after, 'x');
    await w.waitEvent('add', after, 30_000);
    expect((await sample()).queued).toBe(0);
    await w.close();
  }, 180_000);
});

describe('ignore globs', () => {
  it('match names at any depth, paths from the root, classes and alternations; never the root itself', () => {
    expect(splitGlobList('*.log, build/**,*.{js,ts},,')).toEqual(['*.log', 'build/**', '*.{js,ts}']);
    const ignored = createIgnoreMatcher('/r', ['*.log', 'build/**', 'src/*.{bak,swp}', 'x[0-9]', '**/gen/*.c', 'node_modules']);
    for (const p of ['/r/a.log', '/r/deep/b.log', '/r/build/x/y.js', '/r/src/a.bak', '/r/x7', '/r/gen/a.c', '/r/a/gen/b.c', '/r/node_modules', '/r/a/node_modules/b/c.js']) {
      expect(ignored(p), p).toBe(true);
    }
    for (const p of ['/r', '/r/log', '/r/a.log.txt', '/r/build', '/r/src/deep/a.bak', '/r/xa', '/r/gen/a.h', '/r/a/b.js', '/elsewhere/a.log']) {
      expect(ignored(p), p).toBe(false);
    }
  });

  it('leading and trailing slashes, dotfiles, and a path named like the parent folder', () => {
    const ignored = createIgnoreMatcher('/r', ['/out', 'tmp/', '.cache']);
    for (const p of ['/r/out', '/r/out/a', '/r/tmp', '/r/a/tmp/b', '/r/.cache', '/r/a/.cache/b']) expect(ignored(p), p).toBe(true);
    for (const p of ['/r/a/out', '/r/..out', '/r/..', '/r/../x']) expect(ignored(p), p).toBe(false);
  });
});

/** The one glob semantics that file search and watch ignores share (system/glob.ts). */
describe('path globs', () => {
  const cases: [glob: string, matches: string[], misses: string[]][] = [
    ['*.ts', ['a.ts', 'src/a.ts', '.ts'], ['a.tsx', 'a.ts/b']],
    ['*', ['a', '.hidden', 'x/.hidden'], []],
    ['src/*.ts', ['src/a.ts'], ['src/x/a.ts', 'a/src/a.ts']],
    ['/src', ['src'], ['a/src']],
    ['src/', ['src', 'a/src'], []],
    ['**/gen/*.c', ['gen/a.c', 'x/y/gen/a.c'], ['gen/a.h', 'gen/x/a.c']],
    ['a/**/b', ['a/b', 'a/x/b', 'a/x/y/b'], ['ab', 'a/xb']],
    ['a/**', ['a/b', 'a/b/c'], ['a']],
    ['a**/b', ['ax/b', 'a/b', 'a/x/y/b'], ['ab']],
    ['d/a**b', ['d/ab', 'd/a/x/b'], ['ab']],
    ['{**/x,y}/z', ['x/z', 'q/x/z', 'y/z'], ['qy/z']],
    ['q{**/x,y}', ['q/x', 'qy', 'q**/x'], ['qx']],
    ['g?.txt', ['g1.txt', 'g..txt'], ['g22.txt', 'g/.txt']],
    ['x[0-9]', ['x7'], ['xa', 'x77']],
    ['x[!0-9]', ['xa', 'x.'], ['x7', 'x/']],
    ['x[^0-9]', ['xa'], ['x7']],
    ['x[]a]', ['x]', 'xa'], ['xb']],
    ['x[!]]', ['xa'], ['x]']],
    ['d/x[/]y', [], ['d/x/y']],
    ['x[', ['x['], ['x']],
    ['*.{js,ts}', ['a.js', 'a.ts'], ['a.md']],
    ['a{,.bak}', ['a', 'a.bak'], ['a.b']],
    ['{a,{b,c}d}', ['a', 'bd', 'cd'], ['d', 'ad']],
    ['{1..3}', ['1..3'], ['2']],
    ['a,b}', ['a,b}'], ['a']],
    ['\\*', ['*'], ['a']],
    ['é?', ['éa', 'éé'], ['e']],
    ['/', [], ['', 'a']],
  ];
  for (const [glob, matches, misses] of cases) {
    it(glob, () => {
      const g = compilePathGlob(glob);
      for (const m of matches) expect(g.test(m), m).toBe(true);
      for (const m of misses) expect(g.test(m), m).toBe(false);
    });
  }

  it('a class JavaScript refuses is an invalid request', () => {
    expect(() => compilePathGlob('[z-a]')).toThrow(expect.objectContaining({ code: 'INVALID_REQUEST' }));
  });
});

describe('watch outbox', () => {
  /** An in-memory transport whose peer reads only when told to. */
  function transport(highWater: number) {
    const sent: WatchServerMessage[] = [];
    const pending: Array<() => void> = [];
    let buffered = 0;
    return {
      sent,
      t: {
        isOpen: () => true,
        buffered: () => buffered,
        send(text: string, done: () => void) {
          sent.push(JSON.parse(text));
          buffered += highWater; // every message fills the transport until it is read
          pending.push(() => {
            buffered -= highWater;
            done();
          });
        },
      },
      readAll() {
        while (pending.length) pending.shift()!();
      },
    };
  }
  const ev = (event: WatchEventMessage['event'], p: string, size?: number): WatchServerMessage => ({ type: 'event', event, path: p, isDir: false, size });

  it('coalesces changes of a queued file into its add, then keeps order', () => {
    const { sent, t, readAll } = transport(10);
    const box = new WatchOutbox(t, { maxMessages: 100, maxBytes: 1e6, highWater: 10 });
    box.push(ev('add', '/a', 0)); // sent at once; the transport is now full
    box.push(ev('add', '/b', 0));
    box.push(ev('change', '/b', 5));
    box.push(ev('change', '/a', 3));
    box.push(ev('change', '/a', 4));
    box.push(ev('unlink', '/b'));
    box.push(ev('change', '/b', 9)); // after the unlink: not merged into the add before it
    expect(box.status().queued).toBe(4);
    for (let i = 0; i < 10; i++) readAll();
    expect(sent.map((m) => (m.type === 'event' ? `${m.event} ${m.path} ${m.size ?? ''}` : m.type))).toEqual([
      'add /a 0',
      'add /b 5',
      'change /a 4',
      'unlink /b ',
      'change /b 9',
    ]);
  });

  it('on overflow drops the queue, keeps ready, and sends one overflow message once the client reads', () => {
    const { sent, t, readAll } = transport(10);
    const box = new WatchOutbox(t, { maxMessages: 3, maxBytes: 1e6, highWater: 10 });
    box.push(ev('add', '/0'));
    box.push(ev('add', '/1'));
    box.push({ type: 'ready', path: '/', recursive: true });
    box.push(ev('add', '/2'));
    box.push(ev('add', '/3')); // queue full: /1 and /2 go, and so does /3
    box.push(ev('add', '/4')); // still overflowing
    expect(box.status()).toMatchObject({ queued: 1, dropped: 4 });
    for (let i = 0; i < 10; i++) readAll();
    box.push(ev('add', '/5'));
    readAll();
    expect(sent).toEqual([ev('add', '/0'), { type: 'ready', path: '/', recursive: true }, { type: 'overflow', dropped: 4 }, ev('add', '/5')]);
  });
});
