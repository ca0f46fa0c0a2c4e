/**
 * How soon `cove serve` serves once its images are up to date: from the spawn of `node bin/cove.mjs serve` to its ready
 * line and a first answered `GET /api/sandbox`, with a new data dir (first start: database made, admin key, CA) and
 * with the same data dir again (a restart). Beside it, the same measure for a bare Node HTTP server, and the one call
 * every start makes to the Docker engine (`docker info`), so the table shows what Cove adds.
 *
 *   npm run build && node --import tsx bench/serve.ts
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureImages } from '../images/src/build';
import { COVE_BIN } from '../test/helpers/agent';
import { printTable, stats, timeRuns } from './lib';

const RUNS = 7;
const KEY = 'bench-serve-key-0123456789abcdef0123';

/** Milliseconds from the spawn of `args` to its printing `ready` and an answer from the URL it printed. */
function timeStart(args: string[], ready: RegExp, probe: (url: string) => Promise<void>): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { env: { ...process.env, COVE_NO_BUILD: '1', COVE_API_KEY: KEY }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (!m) return;
      child.stdout.off('data', onData);
      probe(m[1]).then(
        () => {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          child.once('exit', () => resolve(ms));
          child.kill('SIGTERM');
        },
        (err: Error) => {
          child.kill('SIGKILL');
          reject(err);
        },
      );
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => code !== 0 && code !== null && reject(new Error(`exited with ${code}:\n${out.slice(-2000)}`)));
  });
}

async function answers(url: string, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(url, { headers });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
}

async function main(): Promise<void> {
  await ensureImages();
  const serveArgs = (dataDir: string) => [COVE_BIN, 'serve', '--port', '0', '--ssh-port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--pool', '0', '--log-level', 'warn'];
  const ready = /cove listening on (\S+)[^\n]*\n/;
  const api = (url: string) => answers(`${url}/api/sandbox`, { Authorization: `Bearer ${KEY}` });

  const fresh: number[] = [];
  const again: number[] = [];
  const bare: number[] = [];
  const bareServer = "require('http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', function () { console.log('ready http://127.0.0.1:' + this.address().port) })";
  for (let i = 0; i < RUNS; i++) {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'cove-bench-serve-'));
    try {
      fresh.push(await timeStart(serveArgs(dataDir), ready, api));
      again.push(await timeStart(serveArgs(dataDir), ready, api));
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
    bare.push(await timeStart(['-e', bareServer], /ready (\S+)\n/, (url) => answers(url)));
  }
  const dockerInfo = await timeRuns(() => execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore' }), RUNS, 1);
  const bareP50 = stats(bare).p50;
  printTable(`cove serve start, images up to date (medians of ${RUNS})`, [
    { name: 'first start (new data dir) → ready, first API answer', value: stats(fresh).p50, unit: 'ms', baseline: bareP50, baselineName: 'bare Node HTTP server', target: '≤ 2000 ms', ok: stats(fresh).p50 <= 2000 },
    { name: 'restart (same data dir) → ready, first API answer', value: stats(again).p50, unit: 'ms', baseline: bareP50, baselineName: 'bare Node HTTP server', target: '≤ 2000 ms', ok: stats(again).p50 <= 2000 },
    { name: 'docker info (one engine round trip, part of every start)', value: dockerInfo.p50, unit: 'ms' },
  ]);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
