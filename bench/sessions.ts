/**
 * Session exec round trip: `echo hi` through POST /process/session/{id}/exec (sync) on a real agent, beside a
 * direct `sh -c` spawn from Node and the agent's one-shot POST /process/execute, interleaved so that all three see
 * the same machine load. A session command needs no fork of a new shell, only a script written to a running one.
 * Also: async exec plus the follow-logs WebSocket until its close.
 *   npx tsx bench/sessions.ts            (COVE_CLI=dist-sessions/cli.mjs to use another bundle)
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { printTable, stats } from './lib';
import { startAgent } from '../test/helpers/agent';

const RUNS = 300;
const WARMUP = 30;
const COMMAND = 'echo hi';
const SESSION = 'bench';

const agent = await startAgent();
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

function post(path: string, json: unknown): Promise<{ status: number; text: string }> {
  const body = JSON.stringify(json);
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, agent.url),
      {
        method: 'POST',
        agent: keepAlive,
        headers: { Authorization: `Bearer ${agent.token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function viaSession(): Promise<void> {
  const res = await post(`/process/session/${SESSION}/exec`, { command: COMMAND });
  if (res.status !== 200 || JSON.parse(res.text).stdout !== 'hi\n') throw new Error(`session exec: ${res.status} ${res.text}`);
}

async function viaExecute(): Promise<void> {
  const res = await post('/process/execute', { command: COMMAND });
  if (res.status !== 200) throw new Error(`execute: ${res.status} ${res.text}`);
}

function direct(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', COMMAND], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout.resume();
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', () => resolve());
  });
}

/** Async exec, then the follow WebSocket from open to its 1000 close. */
async function viaFollow(): Promise<void> {
  const res = await post(`/process/session/${SESSION}/exec`, { command: COMMAND, runAsync: true });
  const { cmdId } = JSON.parse(res.text);
  await new Promise<void>((resolve, reject) => {
    const ws = agent.ws(`/process/session/${SESSION}/command/${cmdId}/logs?follow=true`);
    ws.on('close', (code) => (code === 1000 ? resolve() : reject(new Error(`closed with ${code}`))));
    ws.on('error', reject);
  });
}

const time = async (fn: () => Promise<unknown>, into: number[]) => {
  const t = process.hrtime.bigint();
  await fn();
  into.push(Number(process.hrtime.bigint() - t) / 1e6);
};

try {
  const created = await post('/process/session', { sessionId: SESSION });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const hasExecute = (await post('/process/execute', { command: 'true' })).status === 200;
  const fns = [viaSession, direct, viaFollow, ...(hasExecute ? [viaExecute] : [])];
  const samples = fns.map(() => [] as number[]);
  for (let i = 0; i < WARMUP; i++) for (const fn of fns) await fn();
  for (let i = 0; i < RUNS; i++) {
    // Rotate the order so that none always runs right after another.
    for (let k = 0; k < fns.length; k++) {
      const j = (i + k) % fns.length;
      await time(fns[j], samples[j]);
    }
  }
  const [session, bare, followed, execute] = samples.map((s) => (s.length ? stats(s) : undefined));
  printTable(`Session exec round trip: \`${COMMAND}\`, ${RUNS} runs each`, [
    {
      name: 'p50 session exec (sync)',
      value: session!.p50,
      unit: 'ms',
      baseline: bare!.p50,
      baselineName: 'direct sh -c spawn',
      target: '≤ 3 ms and ≤ 2×',
      ok: session!.p50 <= 3 && session!.p50 <= 2 * bare!.p50,
    },
    { name: 'p99 session exec (sync)', value: session!.p99, unit: 'ms', baseline: bare!.p99, baselineName: 'direct sh -c spawn' },
    ...(execute
      ? [{ name: 'p50 session exec vs one-shot', value: session!.p50, unit: 'ms', baseline: execute.p50, baselineName: 'POST /process/execute' }]
      : []),
    { name: 'p50 async exec + follow WebSocket to close', value: followed!.p50, unit: 'ms', baseline: bare!.p50, baselineName: 'direct sh -c spawn' },
  ]);
} finally {
  keepAlive.destroy();
  await agent.stop();
}
