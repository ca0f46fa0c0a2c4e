/**
 * Idle memory of a freshly started agent, beside a bare Node process that does nothing, in the same run.
 * VmRSS counts the Node binary's file-backed pages, which every sandbox shares through the page cache; RssAnon is
 * what each agent costs on its own.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { printTable, stats } from './lib';
import { ROOT } from '../test/helpers/agent';

const RUNS = 3;
const SETTLE_MS = 3000;

function memoryOf(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 };
}

async function sample(args: string[]): Promise<{ rss: number; anon: number }> {
  const child = spawn(process.execPath, args, { stdio: 'ignore', env: { ...process.env, COVE_AGENT_TOKEN: 'bench-token-0123456789abcdef' } });
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const mem = memoryOf(child.pid!);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return mem;
}

const bare: { rss: number; anon: number }[] = [];
const agent: { rss: number; anon: number }[] = [];
for (let i = 0; i < RUNS; i++) {
  bare.push(await sample(['-e', 'setInterval(() => {}, 1e6)']));
  agent.push(await sample([path.join(ROOT, 'dist/cli.mjs'), 'agent', '--port', '0', '--host', '127.0.0.1']));
}
const med = (xs: number[]) => stats(xs).p50;
const rss = med(agent.map((m) => m.rss));
printTable('Idle agent memory (3 s after start)', [
  { name: 'VmRSS', value: rss, unit: 'MB', baseline: med(bare.map((m) => m.rss)), baselineName: 'bare node', target: '≤ 45 MB', ok: rss <= 45 },
  { name: 'RssAnon (private)', value: med(agent.map((m) => m.anon)), unit: 'MB', baseline: med(bare.map((m) => m.anon)), baselineName: 'bare node' },
]);
