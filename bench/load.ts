/**
 * Load through the proxy: 50 sandboxes from a warm pool of 50, each sent 20 `executeCommand('echo hi')` a second for
 * 60 s (`POST /toolbox/{id}/process/execute`), open loop: every request leaves at its scheduled time whether or not
 * the ones before were answered, so overload shows as latency (measured from the scheduled time) rather than as a
 * lower rate; a sandbox with MAX_IN_FLIGHT requests unanswered skips (drops, and counts) the next ones until one
 * returns. Reported: requests, errors, latency, achieved rate, the proxy's CPU and RSS, the agents' CPU and memory
 * (their containers' cgroups), this load generator's CPU and the whole host's.
 *
 * Baseline, in the same run: the agent without the proxy. Cove's agents are reachable only through it (their
 * address and token are the proxy's), so the baseline is 50 containers of the same image with the same limits
 * started here with a token of our own (`docker run`, as bench/sandboxes.ts does), sent the same schedule straight to
 * their agents, for a shorter window (COVE_BENCH_BASELINE_SECONDS, 20 s) after Cove's server and containers are gone.
 * A second table compares one sandbox at 20 requests a second, proxy and direct, on an otherwise idle server.
 *
 *   npm run build && node --import tsx bench/load.ts
 *   COVE_BENCH_SECONDS=60 COVE_BENCH_BASELINE_SECONDS=20 COVE_BENCH_SANDBOXES=50 COVE_BENCH_RATE=20 (per sandbox)
 *
 * Benchmark, load generator, proxy and agents share the machine's cores: on a small host the figure is what that
 * host achieves, errors and all.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { promisify } from 'node:util';
import { startCove, type TestCove } from '../test/helpers/cove';
import { AGENT_PORT } from '../wire/agent';
import { agentAnswers, containersCpuNs, containersMemoryMiB, percentile, poolReady, printTable, SANDBOX_IMAGE, stats, type Row } from './lib';

const num = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!(v > 0)) throw new Error(`${name} must be a positive number`);
  return v;
};
const SANDBOXES = num('COVE_BENCH_SANDBOXES', 50);
const RATE = num('COVE_BENCH_RATE', 20);
const SECONDS = num('COVE_BENCH_SECONDS', 60);
const BASELINE_SECONDS = num('COVE_BENCH_BASELINE_SECONDS', 20);
const SINGLE_SECONDS = 10;
/** Unanswered requests a sandbox may have before the next ones are dropped: 400 ms of its schedule. */
const MAX_IN_FLIGHT = 8;
const TIMEOUT_MS = 10_000;
const BODY = JSON.stringify({ command: 'echo hi' });

/** Where one sandbox's requests go. */
interface Target {
  host: string;
  port: number;
  path: string;
  token: string;
  agent: http.Agent;
}

interface LoadResult {
  scheduled: number;
  sent: number;
  dropped: number;
  ok: number;
  errors: Map<string, number>;
  /** ms from the scheduled time to the whole answer, successful requests only */
  latency: number[];
  /** ms from the first scheduled request to the last answer */
  elapsedMs: number;
}

function post(target: Target): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: target.host,
        port: target.port,
        path: target.path,
        method: 'POST',
        agent: target.agent,
        headers: { Authorization: `Bearer ${target.token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(BODY) },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('error', (err) => resolve(err.message));
        res.on('end', () => {
          if (res.statusCode !== 200) return resolve(`HTTP ${res.statusCode}`);
          try {
            const { exitCode, result } = JSON.parse(body) as { exitCode: number; result: string };
            resolve(exitCode === 0 && result === 'hi\n' ? undefined : `wrong output (exit ${exitCode}: ${JSON.stringify(result.slice(0, 100))})`);
          } catch {
            resolve('unparsable answer');
          }
        });
      },
    );
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end(BODY);
  });
}

/** Sends `rate` requests a second to each target for `seconds`, targets staggered evenly; resolves once all answered. */
async function drive(targets: Target[], rate: number, seconds: number): Promise<LoadResult> {
  const gap = 1000 / (rate * targets.length);
  const scheduled = Math.round(seconds * rate) * targets.length;
  const inFlight = new Array<number>(targets.length).fill(0);
  const result: LoadResult = { scheduled, sent: 0, dropped: 0, ok: 0, errors: new Map(), latency: [], elapsedMs: 0 };
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  let next = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      const now = performance.now();
      // Everything due by now leaves now: after a stall of this loop, a burst, as an open-loop client would send.
      for (; next < scheduled && t0 + next * gap <= now; next++) {
        const k = next % targets.length;
        if (inFlight[k] >= MAX_IN_FLIGHT) {
          result.dropped++;
          continue;
        }
        const due = t0 + next * gap;
        inFlight[k]++;
        result.sent++;
        const p: Promise<void> = post(targets[k]).then((error) => {
          inFlight[k]--;
          pending.delete(p);
          if (error) result.errors.set(error, (result.errors.get(error) ?? 0) + 1);
          else {
            result.ok++;
            result.latency.push(performance.now() - due);
          }
        });
        pending.add(p);
      }
      if (next < scheduled) setTimeout(pump, Math.max(0, t0 + next * gap - performance.now()));
      else resolve();
    };
    pump();
  });
  while (pending.size) await Promise.all(pending);
  result.elapsedMs = performance.now() - t0;
  return result;
}

const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
/** CPU seconds a process has used (utime + stime of /proc/<pid>/stat). */
function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
/** Busy and total CPU seconds of the whole host (/proc/stat), all cores. */
function hostCpu(): { busy: number; total: number } {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = ticks[3] + (ticks[4] ?? 0);
  return { busy: (total - idle) / TICK, total: total / TICK };
}
const sumCpuNs = (containers: string[]) => containersCpuNs(containers)?.reduce((a, b) => a + b, 0);

interface Measured extends LoadResult {
  /** CPU seconds used over the window */
  agentsCpu?: number;
  proxyCpu?: number;
  generatorCpu: number;
  hostBusy: number;
  /** MiB */
  proxyRss?: number;
  proxyRssPeak?: number;
  agentsMemory: number[];
}

/** `drive` with the CPU of the agents, the proxy (when there is one), this process and the host counted around it. */
async function measured(targets: Target[], containers: string[], seconds: number, proxyPid?: number): Promise<Measured> {
  const agents0 = sumCpuNs(containers);
  const proxy0 = proxyPid ? processCpuSeconds(proxyPid) : 0;
  const gen0 = process.cpuUsage();
  const host0 = hostCpu();
  let proxyRssPeak = 0;
  const sampler = proxyPid ? setInterval(() => (proxyRssPeak = Math.max(proxyRssPeak, rssMiB(proxyPid))), 1000) : undefined;
  const result = await drive(targets, RATE, seconds);
  clearInterval(sampler);
  const gen = process.cpuUsage(gen0);
  const host = hostCpu();
  const agents1 = sumCpuNs(containers);
  return {
    ...result,
    agentsCpu: agents0 !== undefined && agents1 !== undefined ? (agents1 - agents0) / 1e9 : undefined,
    proxyCpu: proxyPid ? processCpuSeconds(proxyPid) - proxy0 : undefined,
    proxyRss: proxyPid ? rssMiB(proxyPid) : undefined,
    proxyRssPeak: proxyPid ? Math.max(proxyRssPeak, rssMiB(proxyPid)) : undefined,
    generatorCpu: (gen.user + gen.system) / 1e6,
    hostBusy: host.busy - host0.busy,
    agentsMemory: containersMemoryMiB(containers),
  };
}

const run = promisify(execFile);
async function createSandbox(cove: TestCove): Promise<{ id: string; cpu: number; memory: number }> {
  const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify({}) });
  const json = (await res.json()) as { id: string; cpu: number; memory: number };
  if (!res.ok) throw new Error(`create failed: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
async function hostnameOf(cove: TestCove, id: string): Promise<string> {
  const res = await fetch(`${cove.url}/toolbox/${id}/process/execute`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ command: 'cat /etc/hostname' }),
  });
  const { result } = (await res.json()) as { result: string };
  if (!res.ok) throw new Error(`exec in ${id}: ${res.status} ${result}`);
  return result.trim();
}

let cove: TestCove | undefined;
const baseline: string[] = [];
const agents: http.Agent[] = [];
try {
  // 1. Cove: a pool of SANDBOXES, all claimed, the pool refilled (its cold starts out of the window), then the load.
  cove = await startCove({ pool: SANDBOXES });
  const { port } = new URL(cove.url);
  await poolReady(cove, SANDBOXES);
  const sandboxes = await Promise.all(Array.from({ length: SANDBOXES }, () => createSandbox(cove!)));
  // A claimed pool container keeps its pool labels: find each sandbox's container by its hostname (its short id).
  const hostnames = await Promise.all(sandboxes.map((s) => hostnameOf(cove!, s.id)));
  const all = cove.containers();
  const containers = hostnames.map((h) => {
    const c = all.find((id) => id.startsWith(h) || h.startsWith(id));
    if (!c) throw new Error(`no container of this server has the hostname ${h}`);
    return c;
  });
  await poolReady(cove, SANDBOXES);
  const viaProxy = new http.Agent({ keepAlive: true, maxSockets: SANDBOXES * MAX_IN_FLIGHT });
  agents.push(viaProxy);
  const proxyTargets: Target[] = sandboxes.map((s) => ({ host: '127.0.0.1', port: Number(port), path: `/toolbox/${s.id}/process/execute`, token: cove!.apiKey, agent: viaProxy }));
  const proxySingle = await drive([proxyTargets[0]], RATE, SINGLE_SECONDS);
  const proxyLoad = await measured(proxyTargets, containers, SECONDS, cove.process.pid);
  const idleMemory = containersMemoryMiB(cove.containers('dev.cove.pool').filter((c) => !containers.includes(c)));
  const { cpu, memory } = sandboxes[0];
  await cove.destroy();
  cove = undefined;

  // 2. Baseline: the same image and limits, each agent sent the same schedule directly.
  const limits = ['--init', '--stop-signal', 'SIGTERM', '--cpus', String(cpu), '--memory', `${memory}g`, '--memory-swap', `${memory}g`, '--pids-limit', '1024'];
  const direct: { id: string; ip: string; token: string }[] = [];
  for (let i = 0; i < SANDBOXES; i += 4) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(4, SANDBOXES - i) }, async () => {
        const token = randomBytes(24).toString('hex');
        const id = (await run('docker', ['run', '-d', '--network', 'cove', '-e', `COVE_AGENT_TOKEN=${token}`, ...limits, SANDBOX_IMAGE])).stdout.trim();
        baseline.push(id);
        const ip = (await run('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', id])).stdout.trim();
        await agentAnswers(ip, token);
        return { id, ip, token };
      }),
    );
    direct.push(...batch);
  }
  const directTargets: Target[] = direct.map((c) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
    agents.push(agent);
    return { host: c.ip, port: AGENT_PORT, path: '/process/execute', token: c.token, agent };
  });
  const directSingle = await drive([directTargets[0]], RATE, SINGLE_SECONDS);
  const directLoad = await measured(
    directTargets,
    direct.map((c) => c.id),
    BASELINE_SECONDS,
  );

  // 3. The tables.
  const errorCount = (r: LoadResult) => [...r.errors.values()].reduce((a, b) => a + b, 0);
  const rate = (r: LoadResult) => r.ok / (r.elapsedMs / 1000);
  const cores = (cpuSeconds: number | undefined, r: LoadResult) => (cpuSeconds === undefined ? NaN : cpuSeconds / (r.elapsedMs / 1000));
  const perRequest = (cpuSeconds: number | undefined, r: LoadResult) => (cpuSeconds === undefined || r.ok === 0 ? NaN : (cpuSeconds * 1000) / r.ok);
  const lat = (r: LoadResult, q: number) => (r.latency.length ? percentile(r.latency, q) : NaN);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const pct = (part: number, whole: number) => (whole ? (100 * part) / whole : NaN);
  const BASE = `direct, ${BASELINE_SECONDS} s`;
  const p = proxyLoad;
  const d = directLoad;
  const rows: Row[] = [
    { name: 'offered rate', value: p.scheduled / SECONDS, unit: 'req/s', baseline: d.scheduled / BASELINE_SECONDS, baselineName: BASE, compared: `${SANDBOXES} × ${RATE}/s, open loop, for ${SECONDS} s through the proxy vs the same schedule for ${BASELINE_SECONDS} s to ${SANDBOXES} agents started with docker run, no proxy` },
    { name: 'achieved rate (correct answers / s)', value: rate(p), unit: 'req/s', baseline: rate(d), baselineName: BASE, compared: 'answers "hi" with exit 0, over first send to last answer' },
    { name: 'sent (% of scheduled)', value: pct(p.sent, p.scheduled), unit: '%', baseline: pct(d.sent, d.scheduled), baselineName: BASE, compared: `${p.sent} of ${p.scheduled} (baseline ${d.sent} of ${d.scheduled})` },
    { name: `dropped (% of scheduled; ${MAX_IN_FLIGHT} in flight per sandbox)`, value: pct(p.dropped, p.scheduled), unit: '%', baseline: pct(d.dropped, d.scheduled), baselineName: BASE, compared: `${p.dropped} (baseline ${d.dropped}) not sent: the sandbox already had ${MAX_IN_FLIGHT} unanswered` },
    { name: 'errors (% of sent)', value: pct(errorCount(p), p.sent), unit: '%', baseline: pct(errorCount(d), d.sent), baselineName: BASE, compared: `${errorCount(p)} (baseline ${errorCount(d)}): non-200, wrong output, refused or reset, no answer in ${TIMEOUT_MS / 1000} s` },
    { name: 'latency p50', value: lat(p, 0.5), unit: 'ms', baseline: lat(d, 0.5), baselineName: BASE, compared: 'scheduled time → whole answer, correct answers only' },
    { name: 'latency p99', value: lat(p, 0.99), unit: 'ms', baseline: lat(d, 0.99), baselineName: BASE },
    { name: 'latency max', value: lat(p, 1), unit: 'ms', baseline: lat(d, 1), baselineName: BASE },
    { name: 'proxy CPU (avg)', value: cores(p.proxyCpu, p), unit: 'cores', compared: '/proc/<pid>/stat utime+stime over the window; no proxy in the baseline' },
    { name: 'proxy CPU per answer', value: perRequest(p.proxyCpu, p), unit: 'ms' },
    { name: 'proxy RSS (end of the window)', value: p.proxyRss!, unit: 'MiB', compared: '/proc/<pid>/status VmRSS' },
    { name: 'proxy RSS (peak, sampled each second)', value: p.proxyRssPeak!, unit: 'MiB' },
    { name: `agents CPU, ${SANDBOXES} containers (avg)`, value: cores(p.agentsCpu, p), unit: 'cores', baseline: cores(d.agentsCpu, d), baselineName: BASE, compared: 'cgroup cpuacct.usage over the window (agent + each `sh -c echo hi`)' },
    { name: 'agents CPU per answer', value: perRequest(p.agentsCpu, p), unit: 'ms', baseline: perRequest(d.agentsCpu, d), baselineName: BASE },
    { name: 'agent memory per sandbox p50 (end)', value: stats(p.agentsMemory).p50, unit: 'MiB', baseline: stats(d.agentsMemory).p50, baselineName: BASE, compared: 'docker stats of each container after the window' },
    { name: 'agent memory per sandbox max (end)', value: percentile(p.agentsMemory, 1), unit: 'MiB', baseline: percentile(d.agentsMemory, 1), baselineName: BASE },
    { name: `agents memory, ${SANDBOXES} containers (end)`, value: sum(p.agentsMemory), unit: 'MiB', baseline: sum(d.agentsMemory), baselineName: BASE },
    { name: 'idle pool member memory p50', value: stats(idleMemory).p50, unit: 'MiB', compared: `the ${idleMemory.length} refilled pool containers that took no requests` },
    { name: 'load generator CPU (avg)', value: cores(p.generatorCpu, p), unit: 'cores', baseline: cores(d.generatorCpu, d), baselineName: BASE, compared: 'this process (node:http client)' },
    { name: 'host CPU busy (avg, all processes)', value: cores(p.hostBusy, p), unit: 'cores', baseline: cores(d.hostBusy, d), baselineName: BASE, compared: `/proc/stat, of ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores; includes other work on the machine` },
  ];
  printTable(`Load: ${SANDBOXES} sandboxes × ${RATE} executeCommand('echo hi')/s, open loop (${SECONDS} s; baseline ${BASELINE_SECONDS} s)`, rows);
  const errorsOf = (r: LoadResult) =>
    [...r.errors]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([k, v]) => `\n  ${v} × ${k}`)
      .join('') || ' none';
  console.log(`\nErrors through the proxy (most frequent kinds):${errorsOf(p)}\nErrors direct:${errorsOf(d)}`);
  printTable(`One sandbox at ${RATE}/s for ${SINGLE_SECONDS} s, nothing else running`, [
    { name: 'latency p50', value: lat(proxySingle, 0.5), unit: 'ms', baseline: lat(directSingle, 0.5), baselineName: 'direct to an agent', compared: 'POST /toolbox/{id}/process/execute through the proxy vs POST /process/execute to a docker-run agent' },
    { name: 'latency p99', value: lat(proxySingle, 0.99), unit: 'ms', baseline: lat(directSingle, 0.99), baselineName: 'direct to an agent' },
    { name: 'errors + dropped', value: errorCount(proxySingle) + proxySingle.dropped, unit: 'requests', baseline: errorCount(directSingle) + directSingle.dropped, baselineName: 'direct to an agent', compared: `of ${proxySingle.scheduled} each` },
  ]);
} finally {
  for (const a of agents) a.destroy();
  if (baseline.length) {
    try {
      execFileSync('docker', ['rm', '-f', ...baseline], { stdio: 'ignore' });
    } catch {
      /* gone already */
    }
  }
  await cove?.destroy();
}
process.exit(0);
