/**
 * runc vs runsc (gVisor), and an egress policy vs none, through real `cove serve` processes and the published SDK,
 * in one run; runc without a policy is the baseline of every figure:
 * - create latency from the warm pool (hit), and cold (miss);
 * - executeCommand('echo hi');
 * - with networkBlockAll (create: a pool hit plus the firewall transaction; exec: nothing changes on its path);
 * - inside a sandbox, what gVisor makes slower: process start, a pipe, syscalls, small files, python's start;
 * - idle memory of a sandbox (the cgroup's, as `docker stats` shows it).
 */
import type { CreateSandboxFromSnapshotParams, Sandbox } from '@daytonaio/sdk';
import { startCove, type TestCove } from '../test/helpers/cove';
import { containersMemoryMiB, poolReady, printTable, stats, timeRuns, type Row } from './lib';

const HITS = 12;
const MISSES = 4;
const EXECS = 200;

/** Median milliseconds of `n` SDK creates with `params`; the sandboxes are deleted after the timing. */
async function creates(cove: TestCove, n: number, params: CreateSandboxFromSnapshotParams): Promise<number> {
  const daytona = cove.daytona();
  const samples: number[] = [];
  const made: Sandbox[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    made.push(await daytona.create(params));
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  await Promise.all(made.map((s) => s.delete()));
  return stats(samples).p50;
}

/** Shell snippets run inside a sandbox; each prints the microseconds one unit of its work took. */
const INSIDE: { name: string; unit: string; script: string }[] = [
  { name: 'process start (fork + exec /bin/true)', unit: 'µs', script: 's=$(date +%s%N); for i in $(seq 200); do /bin/true; done; echo $(( ($(date +%s%N) - s) / 200000 ))' },
  { name: 'pipe, 256 MiB through cat', unit: 'ms', script: 's=$(date +%s%N); head -c 268435456 /dev/zero | cat > /dev/null; echo $(( ($(date +%s%N) - s) / 1000000 ))' },
  { name: 'syscall (getppid, from python)', unit: 'µs', script: 'python3 -c "import os, time\nn = 200000\nt = time.perf_counter()\nfor _ in range(n): os.getppid()\nprint(round((time.perf_counter() - t) / n * 1e6, 3))"' },
  { name: 'small file write + stat + unlink', unit: 'µs', script: 'python3 -c "import os, time\nn = 2000\nt = time.perf_counter()\nfor i in range(n):\n  p = f\'/tmp/bench-{i}\'\n  with open(p, \'w\') as f: f.write(\'x\')\n  os.stat(p)\n  os.unlink(p)\nprint(round((time.perf_counter() - t) / n * 1e6, 1))"' },
  { name: 'python3 -c pass', unit: 'ms', script: 's=$(date +%s%N); for i in $(seq 10); do python3 -c pass; done; echo $(( ($(date +%s%N) - s) / 10000000 ))' },
];

async function inside(sandbox: Sandbox): Promise<number[]> {
  const out: number[] = [];
  for (const { script } of INSIDE) {
    const samples: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await sandbox.process.executeCommand(script, undefined, undefined, 120);
      if (res.exitCode !== 0) throw new Error(`${script}: ${res.result}`);
      samples.push(Number(res.result.trim()));
    }
    out.push(stats(samples).p50);
  }
  return out;
}

/** Idle memory of the sandboxes' containers (MiB, p50), as `docker stats` shows it. */
const idleMemory = (containers: string[]): number => stats(containersMemoryMiB(containers)).p50;

interface Figures {
  hit: number;
  miss: number;
  exec: number;
  inside: number[];
  memory: number;
  fillSeconds: number;
  hitBlockAll?: number;
  execBlockAll?: number;
}

async function measure(runtime: 'runc' | 'runsc'): Promise<Figures> {
  const cove = await startCove({ pool: HITS, args: ['--runtime', runtime] });
  try {
    const fillStart = Date.now();
    await poolReady(cove, HITS);
    const fillSeconds = (Date.now() - fillStart) / 1000;
    await new Promise((r) => setTimeout(r, 3000)); // let the agents settle before reading their memory
    const memory = idleMemory(cove.containers('dev.cove.pool'));
    const hit = await creates(cove, HITS, {});
    let hitBlockAll: number | undefined;
    if (runtime === 'runc') {
      await poolReady(cove, HITS);
      hitBlockAll = await creates(cove, HITS, { networkBlockAll: true });
    }
    // Misses: an environment of its own forces a cold start.
    const missSamples: number[] = [];
    for (let i = 0; i < MISSES; i++) missSamples.push(await creates(cove, 1, { envVars: { COLD: String(i) } }));
    const sandbox = await cove.daytona().create();
    const exec = (await timeRuns(() => sandbox.process.executeCommand('echo hi'), EXECS)).p50;
    const insideFigures = await inside(sandbox);
    await sandbox.delete();
    let execBlockAll: number | undefined;
    if (runtime === 'runc') {
      const blocked = await cove.daytona().create({ networkBlockAll: true });
      execBlockAll = (await timeRuns(() => blocked.process.executeCommand('echo hi'), EXECS)).p50;
      await blocked.delete();
    }
    return { hit, miss: stats(missSamples).p50, exec, inside: insideFigures, memory, fillSeconds, hitBlockAll, execBlockAll };
  } finally {
    await cove.destroy();
  }
}

const runc = await measure('runc');
const runsc = await measure('runsc');

const vsRunc = (name: string, unit: string, value: number, baseline: number): Row => ({ name, unit, value, baseline, baselineName: 'runc' });
printTable('runsc (gVisor) vs runc, through cove serve and the SDK (p50)', [
  vsRunc('create, pool hit', 'ms', runsc.hit, runc.hit),
  vsRunc('create, pool miss (cold start)', 'ms', runsc.miss, runc.miss),
  vsRunc("executeCommand('echo hi')", 'ms', runsc.exec, runc.exec),
  vsRunc(`filling a pool of ${HITS}`, 's', runsc.fillSeconds, runc.fillSeconds),
  vsRunc('idle memory per sandbox', 'MiB', runsc.memory, runc.memory),
  ...INSIDE.map((m, i) => vsRunc(`inside: ${m.name}`, m.unit, runsc.inside[i], runc.inside[i])),
]);
printTable('networkBlockAll vs no policy, under runc, through the SDK (p50)', [
  { name: 'create, pool hit', unit: 'ms', value: runc.hitBlockAll!, baseline: runc.hit, baselineName: 'no policy' },
  { name: "executeCommand('echo hi')", unit: 'ms', value: runc.execBlockAll!, baseline: runc.exec, baselineName: 'no policy' },
]);
process.exit(0);
