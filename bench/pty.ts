/**
 * Keystroke-to-echo latency of an interactive terminal: one character sent over the PTY WebSocket of a real agent
 * until `cat` (the terminal in raw mode, so the echo is cat's own write) sends it back, beside the same measured on a
 * node-pty terminal spawned in this process. Interleaved so that both see the same machine load.
 */
import * as nodePty from 'node-pty';
import type WebSocket from 'ws';
import { printTable, stats } from './lib';
import { startAgent } from '../test/helpers/agent';
import { PTY_EXIT_CONTROL_PROTOCOL } from '../wire/pty';

const KEYSTROKES = 400;
const WARMUP = 40;
const SCRIPT = 'stty raw -echo; echo READY-$((40+2)); exec cat';
const KEYS = 'abcdefghijklmnopqrstuvwxyz';

/** A terminal to type into: `type(key)` resolves when the key comes back. */
interface Echoer {
  type(key: string): Promise<void>;
  close(): Promise<void>;
}

/** Waits for each typed key in the output stream; everything before it is skipped. */
function echoWaiter() {
  let seen = '';
  let want: { key: string; resolve: () => void } | undefined;
  return {
    feed(data: Buffer | string) {
      seen += data.toString();
      if (want && seen.includes(want.key)) {
        const w = want;
        want = undefined;
        seen = '';
        w.resolve();
      }
      if (seen.length > 4096) seen = seen.slice(-64);
    },
    expect(key: string): Promise<void> {
      return new Promise((resolve) => {
        if (seen.includes(key)) {
          seen = '';
          return resolve();
        }
        want = { key, resolve };
      });
    },
    seen: () => seen,
  };
}

async function viaAgent(): Promise<Echoer & { stop(): Promise<unknown> }> {
  const agent = await startAgent();
  const res = await agent.fetch('/process/pty', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: 'bench' }),
  });
  if (res.status !== 201) throw new Error(`create: ${res.status} ${await res.text()}`);
  const ws: WebSocket = agent.ws('/process/pty/bench/connect', [PTY_EXIT_CONTROL_PROTOCOL]);
  const waiter = echoWaiter();
  ws.on('message', (data: Buffer, isBinary) => isBinary && waiter.feed(data));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const ready = waiter.expect('READY-42');
  ws.send(`${SCRIPT}\r`);
  await ready;
  return {
    async type(key) {
      const echoed = waiter.expect(key);
      ws.send(key);
      await echoed;
    },
    async close() {
      ws.close();
    },
    stop: () => agent.stop(),
  };
}

async function direct(): Promise<Echoer> {
  const term = nodePty.spawn('/bin/sh', ['-c', SCRIPT], { name: 'xterm-256color', cols: 80, rows: 24, encoding: null });
  const waiter = echoWaiter();
  term.onData((data) => waiter.feed(data as unknown as Buffer));
  await waiter.expect('READY-42');
  return {
    async type(key) {
      const echoed = waiter.expect(key);
      term.write(key);
      await echoed;
    },
    async close() {
      term.kill('SIGKILL');
    },
  };
}

const time = async (fn: () => Promise<unknown>, into: number[]) => {
  const t = process.hrtime.bigint();
  await fn();
  into.push(Number(process.hrtime.bigint() - t) / 1e6);
};

const agentTerm = await viaAgent();
const bareTerm = await direct();
try {
  for (let i = 0; i < WARMUP; i++) {
    await agentTerm.type(KEYS[i % KEYS.length]);
    await bareTerm.type(KEYS[i % KEYS.length]);
  }
  const cove: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < KEYSTROKES; i++) {
    const key = KEYS[i % KEYS.length];
    // Alternate which goes first, so neither always runs right after the other.
    if (i % 2) {
      await time(() => agentTerm.type(key), cove);
      await time(() => bareTerm.type(key), bare);
    } else {
      await time(() => bareTerm.type(key), bare);
      await time(() => agentTerm.type(key), cove);
    }
  }
  const c = stats(cove);
  const b = stats(bare);
  printTable(`PTY keystroke → echo (${KEYSTROKES} keystrokes, cat in raw mode)`, [
    { name: 'p50 over WebSocket', value: c.p50, unit: 'ms', baseline: b.p50, baselineName: 'node-pty in-process', target: '≤ 2 ms', ok: c.p50 <= 2 },
    { name: 'p99 over WebSocket', value: c.p99, unit: 'ms', baseline: b.p99, baselineName: 'node-pty in-process' },
    { name: 'min over WebSocket', value: c.min, unit: 'ms', baseline: b.min, baselineName: 'node-pty in-process' },
  ]);
} finally {
  await agentTerm.close();
  await bareTerm.close();
  await agentTerm.stop();
}
