/**
 * Idle memory of a freshly started agent, beside a bare Node process that does nothing, in the same run.
 * VmRSS counts the Node binary's file-backed pages, which every sandbox shares through the page cache; RssAnon is
 * what each agent costs on its own. The second agent row is an agent that has answered one `GET /version`, as every
 * sandbox has (the proxy's readiness probe): what lazily loaded code an idle agent still carries after it.
 *
 *   npx tsx bench/idle.ts            (after node scripts/build.mjs; FLAGS="--v8-flag …" to try Node/V8 flags)
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { printTable, stats } from './lib';
import { ROOT } from '../test/helpers/agent';

const RUNS = 5;
const SETTLE_MS = 3000;
const TOKEN = 'bench-token-0123456789abcdef';
const FLAGS = (process.env.FLAGS ?? '').split(' ').filter(Boolean);

interface Memory {
  rss: number;
  anon: number;
  file: number;
}

function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024 };
}

async function sample(args: string[], probe = false): Promise<Memory> {
  const started = Date.now();
  const child = spawn(process.execPath, [...FLAGS, ...args], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, COVE_AGENT_TOKEN: TOKEN } });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  if (probe) {
    const url = await new Promise<string>((resolve, reject) => {
      const onData = () => {
        const m = /listening on (\S+)/.exec(out);
        if (m) resolve(m[1]);
      };
      child.stdout!.on('data', onData);
      child.once('exit', () => reject(new Error(`agent exited: ${out}`)));
    });
    const res = await fetch(`${url}/version`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    if (!res.ok) throw new Error(`GET /version: ${res.status}`);
    await res.text();
  }
  await new Promise((r) => setTimeout(r, Math.max(0, SETTLE_MS - (Date.now() - started))));
  const mem = memoryOf(child.pid!);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return mem;
}

const agentArgs = [path.join(ROOT, 'dist/agent.mjs'), '--port', '0', '--host', '127.0.0.1'];
const bare: Memory[] = [];
const agent: Memory[] = [];
const probed: Memory[] = [];
for (let i = 0; i < RUNS; i++) {
  bare.push(await sample(['-e', 'setInterval(() => {}, 1e6)']));
  agent.push(await sample(agentArgs));
  probed.push(await sample(agentArgs, true));
}
const med = (xs: Memory[], k: keyof Memory) => stats(xs.map((m) => m[k])).p50;
const bareName = FLAGS.length ? `bare node ${FLAGS.join(' ')}` : 'bare node';
printTable(`Idle agent memory (3 s after start, median of ${RUNS})`, [
  { name: 'VmRSS', value: med(agent, 'rss'), unit: 'MB', baseline: med(bare, 'rss'), baselineName: bareName, target: '≤ 45 MB', ok: med(agent, 'rss') <= 45 },
  { name: 'RssAnon (private)', value: med(agent, 'anon'), unit: 'MB', baseline: med(bare, 'anon'), baselineName: bareName },
  { name: 'RssFile (shared node binary)', value: med(agent, 'file'), unit: 'MB', baseline: med(bare, 'file'), baselineName: bareName },
  { name: 'VmRSS after GET /version', value: med(probed, 'rss'), unit: 'MB', baseline: med(bare, 'rss'), baselineName: bareName, target: '≤ 45 MB', ok: med(probed, 'rss') <= 45 },
  { name: 'RssAnon after GET /version', value: med(probed, 'anon'), unit: 'MB', baseline: med(bare, 'anon'), baselineName: bareName },
]);
