import { execFileSync } from 'node:child_process';

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
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { n: s.length, p50: at(0.5), p99: at(0.99), min: s[0] };
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
  /** The target, as text (e.g. "≤ 3 ms"). */
  target?: string;
  /** Whether the figure meets its target. */
  ok?: boolean;
}

const fmt = (v: number | undefined) => (v === undefined ? '' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** Prints rows as a Markdown table: figure, baseline, ratio, target, verdict. */
export function printTable(title: string, rows: Row[]): void {
  const lines = [
    `\n### ${title}\n`,
    '| measure | cove | baseline | ratio | target | met |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const ratio = r.baseline ? `${(r.value / r.baseline).toFixed(2)}×` : '';
      const base = r.baseline !== undefined ? `${fmt(r.baseline)} ${r.unit} (${r.baselineName ?? 'baseline'})` : '';
      const met = r.ok === undefined ? '' : r.ok ? 'yes' : 'NO';
      return `| ${r.name} | ${fmt(r.value)} ${r.unit} | ${base} | ${ratio} | ${r.target ?? ''} | ${met} |`;
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
