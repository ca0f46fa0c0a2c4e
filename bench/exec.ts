/**
 * One-shot exec round trip: `echo hi` through POST /process/execute on a real agent (keep-alive HTTP), beside the
 * same `sh -c` spawned directly from Node, in the same run and interleaved so that both see the same machine load.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { printTable, stats } from './lib';
import { startAgent } from '../test/helpers/agent';

const RUNS = 400;
const WARMUP = 30;
const COMMAND = 'echo hi';

const agent = await startAgent();
const url = new URL('/process/execute', agent.url);
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
const body = JSON.stringify({ command: COMMAND });

function viaAgent(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: keepAlive,
        headers: {
          Authorization: `Bearer ${agent.token}`,
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${res.statusCode}: ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** What the agent does at its core, without HTTP: `sh -c` in its own process group, output read to the end. */
function direct(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', COMMAND], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

const time = async (fn: () => Promise<unknown>, into: number[]) => {
  const t = process.hrtime.bigint();
  await fn();
  into.push(Number(process.hrtime.bigint() - t) / 1e6);
};

try {
  const check = JSON.parse(await viaAgent());
  if (check.result !== 'hi\n' || check.exitCode !== 0) throw new Error(`unexpected answer ${JSON.stringify(check)}`);
  for (let i = 0; i < WARMUP; i++) {
    await viaAgent();
    await direct();
  }
  const cove: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    // Alternate which goes first, so neither always runs right after the other.
    if (i % 2) {
      await time(viaAgent, cove);
      await time(direct, bare);
    } else {
      await time(direct, bare);
      await time(viaAgent, cove);
    }
  }
  const c = stats(cove);
  const b = stats(bare);
  printTable(`Exec round trip: \`${COMMAND}\`, ${RUNS} runs each`, [
    {
      name: 'p50 POST /process/execute',
      value: c.p50,
      unit: 'ms',
      baseline: b.p50,
      baselineName: 'direct spawn',
      target: '≤ 3 ms and ≤ 2×',
      ok: c.p50 <= 3 && c.p50 <= 2 * b.p50,
    },
    { name: 'p99 POST /process/execute', value: c.p99, unit: 'ms', baseline: b.p99, baselineName: 'direct spawn' },
    { name: 'min POST /process/execute', value: c.min, unit: 'ms', baseline: b.min, baselineName: 'direct spawn' },
  ]);
} finally {
  keepAlive.destroy();
  await agent.stop();
}
