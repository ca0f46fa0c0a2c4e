/**
 * File transfers as users make them: 1 GiB into and out of a real sandbox through `cove serve` (the toolbox routes
 * the SDK uses, with the API key), beside `docker cp` of the same file into and out of the same container in the same
 * run — what someone without Cove would use. curl is the HTTP client (a native stack, so the figures measure the
 * server side). Runs are interleaved and the median of RUNS is reported.
 *
 * Rows: upload multipart (`files/upload`, the SDK's uploadFile), upload raw body (`files/upload-v2`), download
 * (`files/download`), each vs `docker cp`; multipart vs raw; peak RSS (VmHWM) of the proxy and of the sandbox's agent.
 *
 * Targets (issue: performance): ≥ 1.5× docker cp both ways, multipart ≥ 0.9× raw, peak RSS < 150 MB each.
 *
 *   npm run build && npx tsx bench/transfers.ts
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startCove } from '../test/helpers/cove';
import { makeFile, printTable, stats } from './lib';

const run = promisify(execFile);
const SIZE = 1 << 30;
const RUNS = 3;
const MB = 1e6;
const SANDBOX_DIR = '/home/cove';

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

const scratch = path.join(os.tmpdir(), `cove-bench-transfers-${process.pid}`);
mkdirSync(scratch, { recursive: true });
const cove = await startCove({ pool: 1 });
try {
  const res = await cove.api('/sandbox', { method: 'POST', body: '{}' });
  const sandbox = (await res.json()) as { id: string; toolboxProxyUrl: string };
  if (!res.ok) throw new Error(`create failed: ${JSON.stringify(sandbox)}`);
  const toolbox = `${sandbox.toolboxProxyUrl.replace(/\/$/, '')}/${sandbox.id}`;
  const auth = ['-H', `Authorization: Bearer ${cove.apiKey}`];
  const exec = async (command: string): Promise<string> => {
    const r = await fetch(`${toolbox}/process/execute`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ command }),
    });
    const body = (await r.json()) as { result: string; exitCode: number };
    if (!r.ok || body.exitCode !== 0) throw new Error(`${command}: ${JSON.stringify(body)}`);
    return body.result.trim();
  };
  // Docker names a container's host after the start of its id.
  const container = await exec('cat /etc/hostname');
  // The agent's host pid: the container's first process may be an init that runs it.
  const top = execFileSync('docker', ['top', container, '-eo', 'pid,args'], { encoding: 'utf8' }).split('\n');
  const agentLine = top.find((l) => /^\s*\d+\s+\S*\/node \S*\/agent\/cli\.mjs agent\b/.test(l)) ?? '';
  const agentPid = Number(/^\s*(\d+)\s/.exec(agentLine)?.[1]);
  if (!agentPid) throw new Error(`no agent process in the container:\n${top.join('\n')}`);
  const proxyPeakBefore = peakRssMb(cove.process.pid!);

  const source = path.join(scratch, 'source.bin');
  await makeFile(source, SIZE);
  const downloaded = path.join(scratch, 'downloaded.bin');
  const inside = (name: string) => `${SANDBOX_DIR}/${name}`;
  const checkDownload = () => {
    if (statSync(downloaded).size !== SIZE) throw new Error('download is short');
    rmSync(downloaded, { force: true });
  };
  const removeInside = (name: string) => execFileSync('docker', ['exec', container, 'rm', '-f', inside(name)]);

  const curl = async (args: string[]): Promise<number> => {
    const t = process.hrtime.bigint();
    const { stdout } = await run('curl', ['-sS', '-w', '%{http_code}', ...args]);
    const s = seconds(t);
    if (!stdout.trim().endsWith('200')) throw new Error(`transfer failed (${args.at(-1)}): ${stdout.slice(-500)}`);
    return s;
  };
  const timed = (cmd: string, args: string[]) => {
    const t = process.hrtime.bigint();
    execFileSync(cmd, args, { stdio: 'ignore' });
    return seconds(t);
  };
  const q = (name: string) => encodeURIComponent(inside(name));
  const transfers = {
    upload: async () => {
      const s = await curl(['-o', '/dev/null', ...auth, '-F', `file=@${source}`, `${toolbox}/files/upload?path=${q('multipart.bin')}`]);
      removeInside('multipart.bin');
      return s;
    },
    uploadRaw: async () => {
      const s = await curl(['-o', '/dev/null', ...auth, '-H', 'Content-Type: application/octet-stream', '-X', 'POST', '-T', source, `${toolbox}/files/upload-v2?path=${q('raw.bin')}`]);
      removeInside('raw.bin');
      return s;
    },
    dockerCpIn: async () => {
      const s = timed('docker', ['cp', source, `${container}:${inside('cp.bin')}`]);
      removeInside('cp.bin');
      return s;
    },
    download: async () => {
      const s = await curl(['-o', downloaded, ...auth, `${toolbox}/files/download?path=${q('stored.bin')}`]);
      checkDownload();
      return s;
    },
    dockerCpOut: async () => {
      const s = timed('docker', ['cp', `${container}:${inside('stored.bin')}`, downloaded]);
      checkDownload();
      return s;
    },
  };
  // The file both downloads read, put there once.
  execFileSync('docker', ['cp', source, `${container}:${inside('stored.bin')}`]);

  const samples = {} as Record<keyof typeof transfers, number[]>;
  // Interleaved, so cache and disk state drift the same way for every method.
  for (let i = 0; i < RUNS; i++) {
    for (const [name, transfer] of Object.entries(transfers) as [keyof typeof transfers, () => Promise<number>][]) {
      (samples[name] ??= []).push(await transfer());
    }
  }
  const rate = (key: keyof typeof transfers) => SIZE / MB / stats(samples[key]).p50;
  const vs = (name: string, key: keyof typeof transfers, base: keyof typeof transfers, baselineName: string, factor: number) => ({
    name,
    value: rate(key),
    unit: 'MB/s',
    baseline: rate(base),
    baselineName,
    target: `≥ ${factor}× ${baselineName}`,
    ok: rate(key) >= factor * rate(base),
  });
  const proxyRss = peakRssMb(cove.process.pid!);
  const agentRss = peakRssMb(agentPid);
  printTable(`Transfers: 1 GiB through cove serve into and out of a sandbox (median of ${RUNS}, loopback)`, [
    vs('upload (multipart, files/upload)', 'upload', 'dockerCpIn', 'docker cp in', 1.5),
    vs('upload (raw body, files/upload-v2)', 'uploadRaw', 'dockerCpIn', 'docker cp in', 1.5),
    vs('download (files/download)', 'download', 'dockerCpOut', 'docker cp out', 1.5),
    vs('upload multipart vs raw', 'upload', 'uploadRaw', 'raw', 0.9),
    { name: 'proxy peak RSS (VmHWM)', value: proxyRss, unit: 'MB', baseline: proxyPeakBefore, baselineName: 'its peak before the transfers', target: '< 150 MB', ok: proxyRss < 150 },
    { name: 'agent peak RSS (VmHWM)', value: agentRss, unit: 'MB', target: '< 150 MB', ok: agentRss < 150 },
  ]);
  const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ');
  console.log(`\nruns (s): ${Object.entries(samples).map(([k, xs]) => `${k} ${list(xs)}`).join(' · ')}\nagent: ${agentLine.trim()}`);
  await cove.api(`/sandbox/${sandbox.id}`, { method: 'DELETE' });
} finally {
  await cove.destroy();
  rmSync(scratch, { recursive: true, force: true });
}
