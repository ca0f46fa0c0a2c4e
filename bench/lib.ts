import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AGENT_PORT } from '../wire/agent';

/** Helpers shared by the benchmarks: timing, medians, and the table every benchmark prints. */

// Benchmarks measure what users run: the agents and servers they start do not check each JSON answer against its
// schema, as the test helpers otherwise make them do (COVE_CHECK_RESPONSES=1 costs microseconds per request).
process.env.COVE_CHECK_RESPONSES ??= '0';

export interface Stats {
  n: number;
  p50: number;
  p99: number;
  min: number;
}

export function stats(samples: number[]): Stats {
  return { n: samples.length, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), min: percentile(samples, 0) };
}

/** The sample at quantile `q` (0…1) of `samples`, nearest rank below; 1 is the largest. */
export function percentile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** Runs `fn` `warmup` times untimed, then `n` times timed; returns milliseconds per run. */
export async function timeRuns(fn: () => Promise<unknown> | unknown, n: number, warmup = Math.min(20, n)): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return stats(samples);
}

export interface Row {
  /** What was measured. */
  name: string;
  /** Cove's figure and its unit. */
  value: number;
  unit: string;
  /** The baseline measured in the same run, in the same unit. */
  baseline?: number;
  baselineName?: string;
  /** What Cove does beside what the baseline does, when the measure's name does not say it (its own column). */
  compared?: string;
  /** The target, as text (e.g. "≤ 3 ms"). */
  target?: string;
  /** Whether the figure meets its target. */
  ok?: boolean;
}

/** Text for a table cell: a `|` (a shell pipe in a description) would end the cell. */
const cell = (text: string) => text.replaceAll('|', '\\|');
const fmt = (v: number | undefined) => (v === undefined ? '' : Number.isInteger(v) || v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** Prints rows as a Markdown table: figure, baseline, ratio, target, verdict (and what is compared, if rows say). */
export function printTable(title: string, rows: Row[]): void {
  const compared = rows.some((r) => r.compared);
  const lines = [
    `\n### ${title}\n`,
    `| measure | cove | baseline | ratio | target | met |${compared ? ' compared |' : ''}`,
    `|---|---|---|---|---|---|${compared ? '---|' : ''}`,
    ...rows.map((r) => {
      const ratio = r.baseline ? `${(r.value / r.baseline).toFixed(2)}×` : '';
      const base = r.baseline !== undefined ? `${fmt(r.baseline)} ${r.unit} (${cell(r.baselineName ?? 'baseline')})` : '';
      const met = r.ok === undefined ? '' : r.ok ? 'yes' : 'NO';
      return `| ${cell(r.name)} | ${fmt(r.value)} ${r.unit} | ${base} | ${ratio} | ${r.target ?? ''} | ${met} |${compared ? ` ${cell(r.compared ?? '')} |` : ''}`;
    }),
  ];
  console.log(lines.join('\n'));
}

/** Waits until the warm pool of a test server holds `n` ready members. */
export async function poolReady(cove: { api(p: string): Promise<Response> }, n: number, timeoutMs = 10 * 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { ready } = (await (await cove.api('/pool')).json()) as { ready: number };
    if (ready >= n) return;
    if (Date.now() > deadline) throw new Error(`the pool reached ${ready}/${n} in time`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Memory of containers in MiB, one value each, as `docker stats` shows it. */
export function containersMemoryMiB(containers: string[]): number[] {
  const out = execFileSync('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', ...containers], { encoding: 'utf8' });
  const scale: Record<string, number> = { KiB: 1 / 1024, MiB: 1, GiB: 1024, kB: 1 / 1000, MB: 1, GB: 1000 };
  return out
    .trim()
    .split('\n')
    .map((line) => {
      const [value, unit] = /^([\d.]+)\s*([KMG]i?B)/.exec(line)!.slice(1);
      return Number(value) * (scale[unit] ?? 1);
    });
}

/** The image of Cove's sandboxes, which the benchmarks also run directly as their Docker baseline. */
export const SANDBOX_IMAGE = 'cove-sandbox:latest';

/** A container of the sandbox image started by a benchmark itself: its agent, address and token are its own. */
export interface AgentContainer {
  id: string;
  ip: string;
  token: string;
}

/** The address of a running container on its network (it may change across a stop and start). */
export function containerIp(id: string): string {
  return execFileSync('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', id], { encoding: 'utf8' }).trim();
}

/**
 * `docker run -d` of an image holding the agent (the sandbox image by default) on Cove's network, with a token of
 * the benchmark's own in the environment (as a bare Docker user would run it); returns at once, before the agent answers.
 */
export function runAgentContainer(opts: { image?: string; args?: string[]; token?: string } = {}): AgentContainer {
  const token = opts.token ?? randomBytes(24).toString('hex');
  const id = execFileSync('docker', ['run', '-d', '--network', 'cove', '-e', `COVE_AGENT_TOKEN=${token}`, ...(opts.args ?? []), opts.image ?? SANDBOX_IMAGE], { encoding: 'utf8' }).trim();
  return { id, ip: containerIp(id), token };
}

/** Polls `GET /version` of an agent every 10 ms until it answers 200. */
export async function agentAnswers(ip: string, token: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://${ip}:${AGENT_PORT}/version`, { headers: { Authorization: `Bearer ${token}` } });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`the agent at ${ip} did not answer in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * CPU time (ns) each container has used since it started, from its cgroup v1 `cpuacct.usage` (the cgroupfs driver's
 * `docker/<id>` group, under `cpuacct` or the combined `cpu,cpuacct` hierarchy). Undefined when the host has neither.
 */
export function containersCpuNs(containers: string[]): number[] | undefined {
  const ids = execFileSync('docker', ['inspect', '-f', '{{.Id}}', ...containers], { encoding: 'utf8' }).trim().split('\n');
  const roots = ['/sys/fs/cgroup/cpuacct/docker', '/sys/fs/cgroup/cpu,cpuacct/docker'];
  const root = roots.find((r) => existsSync(`${r}/${ids[0]}/cpuacct.usage`));
  if (!root) return undefined;
  return ids.map((id) => Number(readFileSync(`${root}/${id}/cpuacct.usage`, 'utf8')));
}

/** Writes `size` bytes of incompressible data by streaming one reused block. */
export async function makeFile(file: string, size: number): Promise<void> {
  const block = randomBytes(1 << 20);
  async function* blocks() {
    for (let i = 0; i < size / block.length; i++) {
      block.writeUInt32LE(i, 0);
      yield Buffer.from(block);
    }
  }
  await pipeline(Readable.from(blocks()), createWriteStream(file));
}
