/**
 * File-watch latency: from a write (fs.writeFile here) to its event arriving over the agent's /files/watch WebSocket,
 * beside chokidar used directly in this process with the agent's options, in the same run and interleaved so that
 * both see the same machine load. New files (add) and writes to existing files (change), each file written once so
 * that chokidar's per-file change throttle never delays a sample.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { watch } from 'chokidar';
import type { WatchServerMessage } from '../wire/watch';
import { printTable, stats } from './lib';
import { startAgent } from '../test/helpers/agent';

const RUNS = 300;
const WARMUP = 20;
const TIMEOUT_MS = 5_000;

type Waiters = Map<string, () => void>;
/** Resolves when `waiters` is told about `key` (event + path). */
const expectEvent = (waiters: Waiters, key: string) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no event ${key} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    waiters.set(key, () => {
      clearTimeout(timer);
      resolve();
    });
  });
const notify = (waiters: Waiters, key: string) => {
  const done = waiters.get(key);
  if (done) {
    waiters.delete(key);
    done();
  }
};

const agent = await startAgent();
const viaAgentDir = path.join(agent.workdir, 'via-agent');
const directDir = path.join(agent.workdir, 'direct');
mkdirSync(viaAgentDir);
mkdirSync(directDir);
const total = WARMUP + RUNS;
// Files for the change samples exist before either watch starts, so they are not reported as adds.
for (let i = 0; i < total; i++) {
  writeFileSync(path.join(viaAgentDir, `c${i}`), '');
  writeFileSync(path.join(directDir, `c${i}`), '');
}

const agentWaiters: Waiters = new Map();
const ws = agent.ws(`/files/watch?path=${encodeURIComponent(viaAgentDir)}`);
await new Promise<void>((resolve, reject) => {
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as WatchServerMessage;
    if (m.type === 'ready') resolve();
    else if (m.type === 'event') notify(agentWaiters, `${m.event} ${m.path}`);
    else if (m.type === 'overflow') reject(new Error('overflow during the benchmark'));
  });
  ws.once('error', reject);
});

const directWaiters: Waiters = new Map();
const direct = watch(directDir, { ignoreInitial: true, followSymlinks: false, ignorePermissionErrors: true });
direct.on('all', (event, file) => notify(directWaiters, `${event} ${file}`));
await new Promise<void>((resolve) => direct.once('ready', () => resolve()));

/** One sample: write `file` and wait for `event` on it; milliseconds. */
async function sample(waiters: Waiters, event: 'add' | 'change', file: string): Promise<number> {
  const arrived = expectEvent(waiters, `${event} ${file}`);
  const t = process.hrtime.bigint();
  await writeFile(file, 'x');
  await arrived;
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const results = { add: { cove: [] as number[], bare: [] as number[] }, change: { cove: [] as number[], bare: [] as number[] } };
try {
  for (let i = 0; i < total; i++) {
    for (const event of ['add', 'change'] as const) {
      const name = event === 'add' ? `a${i}` : `c${i}`;
      const runAgent = async () => {
        const ms = await sample(agentWaiters, event, path.join(viaAgentDir, name));
        if (i >= WARMUP) results[event].cove.push(ms);
      };
      const runDirect = async () => {
        const ms = await sample(directWaiters, event, path.join(directDir, name));
        if (i >= WARMUP) results[event].bare.push(ms);
      };
      // Alternate which goes first, so neither always runs right after the other.
      if (i % 2) {
        await runAgent();
        await runDirect();
      } else {
        await runDirect();
        await runAgent();
      }
    }
  }
  const rows = (['add', 'change'] as const).flatMap((event) => {
    const c = stats(results[event].cove);
    const b = stats(results[event].bare);
    return [
      {
        name: `p50 write → ${event} event over WebSocket`,
        value: c.p50,
        unit: 'ms',
        baseline: b.p50,
        baselineName: 'chokidar in-process',
        target: '≤ direct + 2 ms',
        ok: c.p50 <= b.p50 + 2,
      },
      { name: `p99 write → ${event} event over WebSocket`, value: c.p99, unit: 'ms', baseline: b.p99, baselineName: 'chokidar in-process' },
    ];
  });
  printTable(`File watch latency: write to event, ${RUNS} files each`, rows);
} finally {
  ws.close();
  await direct.close();
  await agent.stop();
}
