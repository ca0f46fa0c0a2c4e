/**
 * Crash consistency: `cove serve` killed with SIGKILL in the middle of create, start, stop and delete (at several
 * points of each), then started again on the same data dir. After each restart every record is checked against the
 * engine: no sandbox left in a state of something under way, a started one runs and answers, a stopped one has its
 * container, an archived one its archive and no container, and no container of this server is left that no record
 * or the pool owns. And a Docker engine that goes away (its socket cut): calls that need it get a 503 at once, and
 * nothing changes state because of it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';
import { sandboxState, sleep, waitForState } from '../helpers/sandbox-state';

let cove: TestCove;
beforeAll(async () => {
  cove = await startCove({ pool: 0 });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

const stateOf = (id: string) => sandboxState(cove, id);
/** Waits until the sandbox shows one of `states` (or something past it: the operation may be quick). */
const waitForAny = (id: string, states: string[], ms = 60_000) => waitForState(cove, id, states, ms, 5);

async function killAndRestart(): Promise<void> {
  const { dataDir, apiKey } = cove;
  cove.process.kill('SIGKILL');
  await new Promise((r) => cove.process.once('exit', r));
  cove = await startCove({ pool: 0, dataDir, apiKey });
}

interface Row {
  id: string;
  state: string;
  container_id: string | null;
}

/** Every record against the engine; returns what is wrong, one line each. */
async function inconsistencies(): Promise<string[]> {
  const db = new Database(path.join(cove.dataDir, 'cove.db'), { readonly: true });
  const rows = db.prepare('SELECT id, state, container_id FROM sandboxes').all() as Row[];
  db.close();
  const ids = cove.containers();
  const containers = new Map<string, { state: string; pool: boolean }>();
  if (ids.length) {
    const lines = execFileSync('docker', ['inspect', '--format', '{{.Id}} {{.State.Status}} {{index .Config.Labels "dev.cove.pool"}}', ...ids], { encoding: 'utf8' });
    for (const line of lines.trim().split('\n')) {
      const [id, state, pool] = line.split(' ');
      containers.set(id, { state, pool: !!pool && pool !== '<no' });
    }
  }
  const wrong: string[] = [];
  const owned = new Set<string>();
  for (const r of rows) {
    const c = r.container_id ? containers.get(r.container_id) : undefined;
    if (r.container_id) owned.add(r.container_id);
    const say = (what: string) => wrong.push(`${r.id} (${r.state}): ${what}`);
    switch (r.state) {
      case 'started':
        if (c?.state !== 'running') say(`container ${c?.state ?? 'missing'}`);
        else {
          const res = await fetch(`${cove.url}/toolbox/${r.id}/process/execute`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ command: 'echo alive' }),
          });
          const body = res.ok ? await res.json() : undefined;
          if (body?.result !== 'alive\n') say(`does not answer: ${res.status}`);
        }
        break;
      case 'stopped':
        if (!c) say('container missing');
        else if (c.state === 'running') say('container running');
        break;
      case 'paused':
        if (c?.state !== 'paused') say(`container ${c?.state ?? 'missing'}`);
        break;
      case 'archived':
        if (c) say('container kept');
        if (!existsSync(path.join(cove.dataDir, 'archives', `${r.id}.tar.zst`))) say('archive missing');
        break;
      case 'error':
        if (r.container_id && !c) say('records a container that does not exist');
        break;
      default:
        say('left in a state of something under way');
    }
  }
  for (const [id, c] of containers) if (!owned.has(id) && !c.pool) wrong.push(`container ${id.slice(0, 12)} (${c.state}) belongs to no sandbox`);
  return wrong;
}

const post = (p: string, body?: object) => cove.api(p, { method: 'POST', body: body ? JSON.stringify(body) : undefined }).catch(() => undefined);

describe('a server killed in the middle of an operation', () => {
  // Delays after the operation is seen under way: at once, and later in it (the container being made or started).
  for (const delay of [0, 150, 600]) {
    it(`leaves every sandbox in a true state: create, start, stop, delete killed ${delay} ms in`, async () => {
      // create (cold: env keeps it off any pool)
      const creating = post('/sandbox', { env: { FAULT: 'create' }, autoStopInterval: 0 });
      const id = await (async () => {
        for (;;) {
          const list = await (await cove.api('/sandbox')).json();
          const found = list.items?.find((s: { env: Record<string, string>; state: string }) => s.env.FAULT === 'create');
          if (found) return found.id as string;
          await sleep(5);
        }
      })();
      await sleep(delay);
      await killAndRestart();
      void creating;
      expect(await inconsistencies()).toEqual([]);

      // Whatever it became, bring it to started: then stop, start and delete, each cut short.
      const state = await stateOf(id);
      if (state === 'error') {
        await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
        const made = await (await cove.api('/sandbox', { method: 'POST', body: JSON.stringify({ env: { FAULT: 'again' }, autoStopInterval: 0 }) })).json();
        await runCutShort(made.id, delay);
      } else {
        if (state !== 'started') expect((await (await cove.api(`/sandbox/${id}/start`, { method: 'POST' })).json()).state).toBe('started');
        await runCutShort(id, delay);
      }
    }, 300_000);
  }
});

async function runCutShort(id: string, delay: number): Promise<void> {
  void post(`/sandbox/${id}/stop`);
  await waitForAny(id, ['stopping', 'stopped']);
  await sleep(delay);
  await killAndRestart();
  expect(await inconsistencies()).toEqual([]);

  if ((await stateOf(id)) !== 'stopped') expect((await (await cove.api(`/sandbox/${id}/stop`, { method: 'POST' })).json()).state).toBe('stopped');
  void post(`/sandbox/${id}/start`);
  await waitForAny(id, ['starting', 'started']);
  await sleep(delay);
  await killAndRestart();
  expect(await inconsistencies()).toEqual([]);

  void cove.api(`/sandbox/${id}`, { method: 'DELETE' }).catch(() => undefined);
  await waitForAny(id, ['destroying', 'gone']);
  await sleep(delay);
  await killAndRestart();
  expect(await inconsistencies()).toEqual([]);
  // A delete cut short can be asked again, and then nothing of the sandbox is left.
  if ((await stateOf(id)) !== 'gone') await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
  expect(await stateOf(id)).toBe('gone');
  expect(await inconsistencies()).toEqual([]);
}

/**
 * A unix socket in front of the Docker engine that the test can cut and restore: the engine, as Cove sees it, goes
 * away. It runs in a process of its own, since the test's docker commands run synchronously (test/helpers/cove.ts).
 */
async function engineRelay(): Promise<{ host: string; cut(): Promise<void>; restore(): Promise<void>; close(): void }> {
  const file = path.join(os.tmpdir(), `cove-engine-${process.pid}-${Date.now()}.sock`);
  // SIGUSR1 cuts (stops listening, ends every connection), SIGUSR2 listens again; each prints a line when done.
  const script = `
    const net = require('node:net');
    const sockets = new Set();
    const server = net.createServer((client) => {
      const engine = net.connect('/var/run/docker.sock');
      sockets.add(client).add(engine);
      const end = () => { client.destroy(); engine.destroy(); sockets.delete(client); sockets.delete(engine); };
      client.on('error', end).on('close', end);
      engine.on('error', end).on('close', end);
      client.pipe(engine).pipe(client);
    });
    const listen = () => server.listen(${JSON.stringify(file)}, () => console.log('up'));
    process.on('SIGUSR1', () => { server.close(() => console.log('down')); for (const s of sockets) s.destroy(); });
    process.on('SIGUSR2', listen);
    setInterval(() => {}, 1 << 30); // alive while cut
    listen();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const next = (line: string) =>
    new Promise<void>((resolve) => {
      const onData = (d: Buffer) => {
        if (d.toString().includes(line)) {
          child.stdout!.off('data', onData);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
    });
  await next('up');
  return {
    host: `unix://${file}`,
    cut: () => {
      const done = next('down');
      child.kill('SIGUSR1');
      return done;
    },
    restore: () => {
      const done = next('up');
      child.kill('SIGUSR2');
      return done;
    },
    close: () => void child.kill('SIGKILL'),
  };
}

describe('a Docker engine that goes away', () => {
  it('answers calls that need it with a 503 at once, keeps every sandbox as it was, and once back sees what happened meanwhile', async () => {
    const relay = await engineRelay();
    const outage = await startCove({ pool: 0, dockerHost: relay.host });
    const call = (p: string, method = 'POST', body?: object) =>
      outage.api(p, { method, body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(30_000) });
    const exec = async (id: string) => {
      const res = await fetch(`${outage.url}/toolbox/${id}/process/execute`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${outage.apiKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ command: 'echo alive' }),
      });
      return res.ok ? ((await res.json()).result as string) : `status ${res.status}`;
    };
    try {
      const running = await (await call('/sandbox', 'POST', { autoStopInterval: 0 })).json();
      const stopped = await (await call('/sandbox', 'POST', { autoStopInterval: 0 })).json();
      expect((await (await call(`/sandbox/${stopped.id}/stop`)).json()).state).toBe('stopped');
      await relay.cut();
      for (const [p, body] of [['/sandbox', { autoStopInterval: 0 }], [`/sandbox/${stopped.id}/start`], [`/sandbox/${running.id}/stop`], [`/sandbox/${running.id}/pause`]] as const) {
        const res = await call(p, 'POST', body);
        expect(res.status, p).toBe(503);
        expect((await res.json()).message, p).toMatch(/Docker engine/);
      }
      expect((await (await call(`/sandbox/${running.id}`, 'GET')).json()).state).toBe('started');
      expect((await (await call(`/sandbox/${stopped.id}`, 'GET')).json()).state).toBe('stopped');
      // Its agent needs no engine: the running sandbox still works.
      expect(await exec(running.id)).toBe('alive\n');
      // As an engine restart does, its container dies while Cove cannot see the engine.
      execFileSync('docker', ['kill', '--signal', 'KILL', `cove-${running.id}`], { stdio: 'ignore' });

      await relay.restore();
      // Once it can see the engine again, Cove finds out what happened meanwhile.
      const until = Date.now() + 120_000;
      let after: { state: string; errorReason?: string } = { state: 'started' };
      while (after.state === 'started' && Date.now() < until) {
        await sleep(200);
        after = await (await call(`/sandbox/${running.id}`, 'GET')).json();
      }
      expect(after.state).toBe('error');
      expect(after.errorReason).toMatch(/killed outside Cove|exited with code 137/);
      expect((await (await call(`/sandbox/${running.id}/recover`)).json()).state).toBe('started');
      expect(await exec(running.id)).toBe('alive\n');
      expect((await (await call(`/sandbox/${running.id}/stop`)).json()).state).toBe('stopped');
      expect((await (await call(`/sandbox/${stopped.id}/start`)).json()).state).toBe('started');
      expect(await exec(stopped.id)).toBe('alive\n');
    } finally {
      await outage.destroy();
      relay.close();
    }
  }, 300_000);
});
