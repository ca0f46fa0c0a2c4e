/**
 * The proxy under hostile load, through a real `cove serve`: while 100 hostile connections hit it, does the control
 * API stay quick, does its memory stay bounded, and does it keep running?
 *
 * One sandbox runs a small HTTP app on port 8080 (it never answers WebSocket upgrades), reached through its preview
 * host with a preview token. The idle baseline is sequential `GET /api/sandbox/{id}` with the admin key (p50/p99) and
 * the server's RSS (VmRSS of the server's own Node process), sampled every 500 ms; under load, the same while 100
 * hostile connections (split evenly over the kinds below, each looping until the window ends) hit the server. Idle
 * and loaded windows take turns: 10 s of idle and the load's seconds in all, cut into windows of about 10 s of load
 * each after an idle one. The hostile clients run in a child process (one per window), so their work does not sit in
 * the measuring event loop.
 *
 * Kinds (all to the server on 127.0.0.1):
 *   slowloris          a request head, then one byte every 100 ms, never finished (API and preview hosts)
 *   garbage            random bytes, or a request line followed by random bytes
 *   head-under-limit   a head just under 16 KiB (the relay's and the HTTP server's limit), API and preview hosts
 *   head-over-limit    a head just over 16 KiB
 *   body-length        POST to the API declaring a 1 GiB Content-Length, body sent as fast as the socket takes it
 *   body-chunked       the same, chunked, without end
 *   upgrade-flood      a WebSocket upgrade to the preview app (which never answers 101), then 32 MiB of data
 *   pipelined-unread   pipelined preview requests for a 64 KiB response, whose responses are never read
 *   bad-percent        targets like /toolbox/%ZZ/x, /api/sandbox/%ZZ, and /%ZZ/x on the preview host
 *   bad-target         preview requests with the targets `http://[/` and `//a:99999/`
 *
 * Targets (from the issue): control API p50 within 2× of idle, RSS under 200 MB, no crash (the server exiting, or
 * `(uncaught)` in its output). The server exiting ends the load early: the table shows what was measured until then,
 * and the end of the server's output follows it.
 *
 *   npx tsx bench/hostile.ts [--seconds N] [--skip kind,…] [--only kind,…]     (HOSTILE_SECONDS=N works too)
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MAX_HEAD_BYTES } from '../lib/net/http1';
import { printTable, stats, type Row, type Stats } from './lib';

const KINDS = [
  'slowloris',
  'garbage',
  'head-under-limit',
  'head-over-limit',
  'body-length',
  'body-chunked',
  'upgrade-flood',
  'pipelined-unread',
  'bad-percent',
  'bad-target',
] as const;
type Kind = (typeof KINDS)[number];

const CONNECTIONS = 100;
const IDLE_SECONDS = 10;
/** Length of one loaded window: the load is cut into windows of about this length, each after an idle one. */
const LOADED_WINDOW_SECONDS = 10;
const RSS_EVERY_MS = 500;
const APP_PORT = 8080;
const REQUEST_TIMEOUT_MS = 10_000;
const MIB = 1024 * 1024;

/** What the parent tells the client process. */
interface ClientConfig {
  port: number;
  apiHost: string;
  previewHost: string;
  previewToken: string;
  apiKey: string;
  seconds: number;
  kinds: Kind[];
  connections: number;
}

interface KindStats {
  /** Connections opened (each hostile connection reconnects when one ends). */
  connections: number;
  /** Request heads sent (or begun, for slowloris). */
  requests: number;
  bytes: number;
  /** Connections on which the server sent anything back. */
  answered: number;
  /** Connections the server closed or reset before the client let go. */
  closedByServer: number;
  refused: number;
}

// ---------------------------------------------------------------------------------------------------------------
// The hostile clients (child process)
// ---------------------------------------------------------------------------------------------------------------

async function runClients(config: ClientConfig): Promise<Record<string, KindStats>> {
  let stopped = false;
  const stopWaiters = new Set<() => void>();
  const sockets = new Set<net.Socket>();
  const stop = () => {
    if (stopped) return;
    stopped = true;
    for (const wake of [...stopWaiters]) wake();
    for (const s of sockets) s.destroy();
  };
  const deadline = setTimeout(stop, config.seconds * 1000);
  process.on('message', (m: { type?: string }) => m?.type === 'stop' && stop());

  /** Resolves with the first of: one of `events` on the socket, `ms` elapsed, the stop. */
  function until(s: net.Socket, events: string[], ms = 0): Promise<string> {
    return new Promise((resolve) => {
      if (stopped) return resolve('stop');
      if (s.destroyed) return resolve('close');
      const handlers = events.map((e) => [e, () => done(e)] as const);
      const onStop = () => done('stop');
      const timer = ms ? setTimeout(() => done('timeout'), ms) : undefined;
      function done(why: string) {
        for (const [e, h] of handlers) s.off(e, h);
        stopWaiters.delete(onStop);
        clearTimeout(timer);
        resolve(why);
      }
      for (const [e, h] of handlers) s.once(e, h);
      stopWaiters.add(onStop);
    });
  }
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const onStop = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        stopWaiters.delete(onStop);
        resolve();
      }, ms);
      stopWaiters.add(onStop);
    });

  /** Writes one piece, waiting for drain when the socket asks; false once the socket is gone or the run stops. */
  async function send(s: net.Socket, st: KindStats, chunk: Buffer | string): Promise<boolean> {
    if (stopped || s.destroyed) return false;
    st.bytes += chunk.length;
    if (s.write(chunk)) return true;
    const why = await until(s, ['drain', 'close']);
    return why === 'drain' && !s.destroyed;
  }

  const tokenHeader = `X-Daytona-Preview-Token: ${config.previewToken}\r\n`;
  const api = { host: config.apiHost, extra: '' };
  const preview = { host: config.previewHost, extra: tokenHeader };
  /** A head of exactly `size` bytes. */
  const paddedHead = (target: { host: string; extra: string }, size: number) => {
    const start = `GET / HTTP/1.1\r\nHost: ${target.host}\r\n${target.extra}X-Pad: `;
    return `${start}${'a'.repeat(size - start.length - 4)}\r\n\r\n`;
  };
  const heads = {
    under: [paddedHead(api, MAX_HEAD_BYTES - 64), paddedHead(preview, MAX_HEAD_BYTES - 64)],
    over: [paddedHead(api, MAX_HEAD_BYTES + 64), paddedHead(preview, MAX_HEAD_BYTES + 64)],
  };
  const filler = Buffer.alloc(64 * 1024, 'x');
  const chunk = Buffer.concat([Buffer.from(`${filler.length.toString(16)}\r\n`), filler, Buffer.from('\r\n')]);
  const pipelined = Buffer.from(`GET /big HTTP/1.1\r\nHost: ${config.previewHost}\r\n${tokenHeader}\r\n`.repeat(50));
  const badPercent = [
    `GET /toolbox/%ZZ/x HTTP/1.1\r\nHost: ${config.apiHost}\r\n\r\n`,
    `GET /toolbox/%ZZ/x HTTP/1.1\r\nHost: ${config.apiHost}\r\nAuthorization: Bearer ${config.apiKey}\r\n\r\n`,
    `GET /api/sandbox/%ZZ HTTP/1.1\r\nHost: ${config.apiHost}\r\nAuthorization: Bearer ${config.apiKey}\r\n\r\n`,
    `GET /%ZZ/x HTTP/1.1\r\nHost: ${config.previewHost}\r\n${tokenHeader}\r\n`,
  ];
  const badTargets = ['http://[/', '//a:99999/'].flatMap((target) => [
    `GET ${target} HTTP/1.1\r\nHost: ${config.previewHost}\r\n${tokenHeader}\r\n`,
    `GET ${target} HTTP/1.1\r\nHost: ${config.previewHost}\r\n\r\n`,
  ]);

  /** One request, then wait for any answer or the close (at most 5 s). */
  async function oneShot(s: net.Socket, st: KindStats, head: string): Promise<void> {
    st.requests++;
    if (await send(s, st, head)) await until(s, ['data', 'close'], 5000);
  }

  /** What one connection of each kind does; the caller opens and closes the socket. `n` counts its iterations. */
  const runners: Record<Kind, (s: net.Socket, st: KindStats, n: number) => Promise<void>> = {
    async slowloris(s, st, n) {
      const target = n % 2 ? preview : api;
      st.requests++;
      if (!(await send(s, st, `GET /${n % 2 ? '' : 'api/sandbox'} HTTP/1.1\r\nHost: ${target.host}\r\n${target.extra}X-Slow: `))) return;
      while (await send(s, st, 'a')) await sleep(100);
    },
    async garbage(s, st, n) {
      st.requests++;
      const bytes = randomBytes(16 * 1024);
      if (n % 2 && (await send(s, st, `GET / HTTP/1.1\r\nHost: ${n % 4 === 1 ? config.previewHost : config.apiHost}\r\n`))) await send(s, st, bytes);
      else await send(s, st, bytes);
      await until(s, ['close'], 2000);
    },
    'head-under-limit': (s, st, n) => oneShot(s, st, heads.under[n % 2]),
    'head-over-limit': (s, st, n) => oneShot(s, st, heads.over[n % 2]),
    async 'body-length'(s, st, n) {
      st.requests++;
      const auth = n % 2 ? `Authorization: Bearer ${config.apiKey}\r\n` : '';
      const declared = 1024 * MIB;
      let sent = 0;
      if (!(await send(s, st, `POST /api/sandbox HTTP/1.1\r\nHost: ${config.apiHost}\r\n${auth}Content-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n`))) return;
      while (sent < declared && (await send(s, st, filler))) sent += filler.length;
    },
    async 'body-chunked'(s, st, n) {
      st.requests++;
      const auth = n % 2 ? `Authorization: Bearer ${config.apiKey}\r\n` : '';
      if (!(await send(s, st, `POST /api/sandbox HTTP/1.1\r\nHost: ${config.apiHost}\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`))) return;
      while (await send(s, st, chunk));
    },
    async 'upgrade-flood'(s, st) {
      st.requests++;
      const head =
        `GET /ws HTTP/1.1\r\nHost: ${config.previewHost}\r\n${tokenHeader}Connection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`;
      if (!(await send(s, st, head))) return;
      for (let sent = 0; sent < 32 * MIB && (await send(s, st, filler)); ) sent += filler.length;
      await sleep(500);
    },
    async 'pipelined-unread'(s, st) {
      // Never read: the responses pile up in the kernel's buffers, then wherever the server keeps them.
      s.pause();
      while (!stopped && !s.destroyed) {
        st.requests += 50;
        if (!(await send(s, st, pipelined))) return;
      }
    },
    'bad-percent': (s, st, n) => oneShot(s, st, badPercent[n % badPercent.length]),
    'bad-target': (s, st, n) => oneShot(s, st, badTargets[n % badTargets.length]),
  };

  const all: Record<string, KindStats> = Object.fromEntries(
    config.kinds.map((k) => [k, { connections: 0, requests: 0, bytes: 0, answered: 0, closedByServer: 0, refused: 0 }]),
  );

  async function hostileConnection(kind: Kind): Promise<void> {
    const st = all[kind];
    for (let n = 0; !stopped; n++) {
      let s: net.Socket;
      try {
        s = await new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect({ host: '127.0.0.1', port: config.port });
          socket.once('connect', () => {
            socket.off('error', reject);
            resolve(socket);
          });
          socket.once('error', reject);
        });
      } catch {
        // Refused: the server is gone (the parent sees it); do not spin.
        st.refused++;
        await sleep(100);
        continue;
      }
      st.connections++;
      sockets.add(s);
      let letGo = false;
      let answered = false;
      s.on('error', () => {});
      s.on('close', () => !letGo && !stopped && st.closedByServer++);
      if (kind !== 'pipelined-unread') {
        s.on('data', () => {
          if (!answered) st.answered++;
          answered = true;
        });
      }
      try {
        await runners[kind](s, st, n);
      } finally {
        letGo = true;
        s.destroy();
        sockets.delete(s);
      }
    }
  }

  const kinds = Array.from({ length: config.connections }, (_, i) => config.kinds[i % config.kinds.length]);
  await Promise.all(kinds.map((k) => hostileConnection(k)));
  clearTimeout(deadline);
  return all;
}

// ---------------------------------------------------------------------------------------------------------------
// The measurement (parent process)
// ---------------------------------------------------------------------------------------------------------------

/** The small app in the sandbox: `/big` answers 64 KiB, anything else a few bytes; upgrades are held, never answered. */
const APP = `import http from 'node:http';
const big = Buffer.alloc(64 * 1024, 'x');
const server = http.createServer((req, res) => {
  req.resume();
  res.end(req.url === '/big' ? big : 'ok\\n');
});
// An app that does not speak WebSocket and never answers: it reads and drops what the client sends.
server.on('upgrade', (req, socket) => {
  socket.on('data', () => {});
  socket.on('error', () => {});
});
server.listen(${APP_PORT}, '0.0.0.0');
`;

/** VmRSS in MiB, or undefined once the process is gone. */
function rssOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
  } catch {
    return undefined;
  }
}

/**
 * The server's own Node process: the started process when it is the server itself, else its descendant that is
 * (a wrapper such as npx would otherwise be measured instead).
 */
function serverPid(startedPid: number, dataDir: string): number {
  const args = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      return [];
    }
  };
  const parentOf = (pid: number) => {
    try {
      return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
    } catch {
      return 0;
    }
  };
  const isServer = (pid: number) => {
    const a = args(pid);
    return /(^|\/)node$/.test(a[0] ?? '') && a.includes('serve') && a.includes(dataDir);
  };
  const descends = (pid: number) => {
    for (let p = pid; p > 1; p = parentOf(p)) if (p === startedPid) return true;
    return false;
  };
  const candidates = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => isServer(pid) && descends(pid));
  // The deepest one: no other candidate below it.
  const leaf = candidates.find((pid) => !candidates.some((other) => other !== pid && parentOf(other) === pid));
  if (!leaf) throw new Error(`no node process serving ${dataDir} under pid ${startedPid}`);
  return leaf;
}

/** Samples a process's RSS every RSS_EVERY_MS into the current phase's list. */
function startRssSampler(pid: number) {
  let samples: number[] = [];
  const timer = setInterval(() => {
    const rss = rssOf(pid);
    if (rss !== undefined) samples.push(rss);
  }, RSS_EVERY_MS);
  return {
    /** Ends the current phase: returns its samples and starts a new list. */
    take(): number[] {
      const rss = rssOf(pid);
      if (rss !== undefined) samples.push(rss);
      const taken = samples;
      samples = [];
      return taken;
    },
    stop: () => clearInterval(timer),
  };
}

interface Latency {
  stats: Stats;
  samples: number[];
  failed: number;
}

/** Latencies of several windows as one. */
function mergeLatency(parts: Latency[]): Latency {
  const samples = parts.flatMap((p) => p.samples);
  return { stats: samples.length ? stats(samples) : { n: 0, p50: NaN, p99: NaN, min: NaN }, samples, failed: parts.reduce((a, p) => a + p.failed, 0) };
}

/** Sequential GETs of one sandbox with the admin key, for `seconds` or until `stop()`; a failure counts its elapsed time. */
async function controlLatency(port: number, key: string, id: string, seconds: number, stop: () => boolean = () => false): Promise<Latency> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: `/api/sandbox/${id}`, headers: { Authorization: `Bearer ${key}` }, agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
    });
  const samples: number[] = [];
  let failed = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end && !stop()) {
    const t = process.hrtime.bigint();
    try {
      await get();
    } catch {
      failed++;
    }
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  agent.destroy();
  return { stats: samples.length ? stats(samples) : { n: 0, p50: NaN, p99: NaN, min: NaN }, samples, failed };
}

function secondsWanted(values: { seconds?: string }): number {
  const raw = values.seconds ?? process.env.HOSTILE_SECONDS ?? '60';
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`--seconds wants a positive number of seconds, not ${raw}`);
  return seconds;
}

function kindsWanted(values: { only?: string; skip?: string }): Kind[] {
  const list = (text: string) => {
    const names = text.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = names.filter((n) => !KINDS.includes(n as Kind));
    if (unknown.length) throw new Error(`unknown kind ${unknown.join(', ')}; kinds: ${KINDS.join(', ')}`);
    return names as Kind[];
  };
  const only = values.only ? list(values.only) : [...KINDS];
  const skip = values.skip ? list(values.skip) : [];
  const kinds = only.filter((k) => !skip.includes(k));
  if (!kinds.length) throw new Error('no hostile kind left to run');
  return kinds;
}

/** The server's V8 heap and external (Buffer) memory in MB, from its /metrics. */
async function serverMemory(url: string, key: string): Promise<{ heapUsed: number; heapTotal: number; external: number }> {
  const text = await (await fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${key}` } })).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / MIB;
  return { heapUsed: value('cove_nodejs_heap_size_used_bytes'), heapTotal: value('cove_nodejs_heap_size_total_bytes'), external: value('cove_nodejs_external_memory_bytes') };
}

/** One GET through the preview host with the token: proves the relay path the hostile clients aim at is open. */
function previewGet(port: number, host: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { Host: host, 'X-Daytona-Preview-Token': token }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, only: { type: 'string' }, skip: { type: 'string' } } });
  const seconds = secondsWanted(values);
  const kinds = kindsWanted(values);
  const { startCove } = await import('../test/helpers/cove');
  const { toolbox } = await import('../test/helpers/preview');

  const cove = await startCove({ pool: 0 });
  let clients: ChildProcess | undefined;
  let sampler: ReturnType<typeof startRssSampler> | undefined;
  let exited: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined;
  cove.process.once('exit', (code, signal) => (exited = { code, signal, at: Date.now() }));
  // Should this process die on an error of its own, the server and the clients must not outlive it.
  const orphans = () => {
    if (!exited) cove.process.kill('SIGTERM');
    if (clients && clients.exitCode === null) clients.kill('SIGTERM');
  };
  process.once('exit', orphans);
  const count = (text: string) => cove.output().split(text).length - 1;
  try {
    const port = Number(new URL(cove.url).port);
    const pid = serverPid(cove.process.pid!, cove.dataDir);
    const createdRes = await cove.api('/sandbox', { method: 'POST', body: '{}' });
    const created = await createdRes.json();
    if (!createdRes.ok) throw new Error(`create failed: ${JSON.stringify(created)}`);
    const id: string = created.id;
    const box = toolbox(cove, id);
    await box.upload('/home/cove/hostile-app.mjs', APP);
    await box.serve(`node /home/cove/hostile-app.mjs`, APP_PORT);
    const link = (await (await cove.api(`/sandbox/${id}/ports/${APP_PORT}/preview-url`)).json()) as { url: string; token: string };
    const previewHost = new URL(link.url).host;
    const check = await previewGet(port, previewHost, link.token);
    if (check.status !== 200 || check.body !== 'ok\n') throw new Error(`the preview app did not answer through the proxy: ${check.status} ${check.body}`);

    // Idle and loaded windows take turns (WINDOWS of each), so that both see the same machine: on two shared cores
    // the speed of the same idle loop drifts by 2-3× over a minute, and one idle window before the load would compare
    // the load with whatever that minute was like.
    await controlLatency(port, cove.apiKey, id, 1);
    sampler = startRssSampler(pid);
    sampler.take();
    const uncaughtBefore = count('(uncaught)');
    const rejectionsBefore = count('(unhandled rejection)');
    const unexpectedBefore = count('unexpected error');
    const idleParts: Latency[] = [];
    const loadedParts: Latency[] = [];
    const idleRss: number[] = [];
    const loadedRss: number[] = [];
    const perKind: Record<string, KindStats> = {};
    const windows = Math.max(1, Math.round(seconds / LOADED_WINDOW_SECONDS));
    const started = Date.now();
    let loadedMs = 0;
    for (let w = 0; w < windows && !exited; w++) {
      idleParts.push(await controlLatency(port, cove.apiKey, id, IDLE_SECONDS / windows, () => !!exited));
      idleRss.push(...sampler.take());
      const config: ClientConfig = {
        port,
        apiHost: `127.0.0.1:${port}`,
        previewHost,
        previewToken: link.token,
        apiKey: cove.apiKey,
        seconds: seconds / windows,
        kinds,
        connections: CONNECTIONS,
      };
      clients = fork(fileURLToPath(import.meta.url), ['--clients'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      // Attackers' CPU is not the server's on a real deployment; here they share two cores with it and with the
      // measuring loop, so they run at the lowest priority: the server and the measurement get the CPU first, and
      // the clients take every cycle left (they still open thousands of connections a second).
      try {
        os.setPriority(clients.pid!, 19);
      } catch {
        // Not allowed here: the clients compete at normal priority, which the table's figures then include.
      }
      const child = clients;
      const report = new Promise<Record<string, KindStats>>((resolve, reject) => {
        child.on('message', (m: { type: string; stats?: Record<string, KindStats> }) => {
          if (m.type === 'ready') child.send({ type: 'start', config });
          if (m.type === 'stats') resolve(m.stats!);
        });
        child.once('exit', (code) => reject(new Error(`the hostile clients exited with ${code} before reporting`)));
      });
      report.catch(() => {});
      child.on('error', () => {});
      // The window starts once the clients have loaded and begin their connections.
      await new Promise<void>((resolve) => child.once('message', () => resolve()));
      const windowStarted = Date.now();
      // An exit ends the load early; an uncaught error the server survives is counted at the end, and the load goes on.
      loadedParts.push(await controlLatency(port, cove.apiKey, id, seconds / windows, () => !!exited));
      loadedMs += Date.now() - windowStarted;
      // The clients may have ended on their own (their time is up): then their report is already on its way.
      if (child.connected) child.send({ type: 'stop' });
      const stats = await Promise.race([report, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the hostile clients did not report within 30 s')), 30_000))]);
      for (const [kind, st] of Object.entries(stats)) {
        const into = (perKind[kind] ??= { connections: 0, requests: 0, bytes: 0, answered: 0, closedByServer: 0, refused: 0 });
        for (const k of Object.keys(st) as (keyof KindStats)[]) into[k] += st[k];
      }
      loadedRss.push(...sampler.take());
    }
    const memory = await serverMemory(cove.url, cove.apiKey);
    const idle = mergeLatency(idleParts);
    const loaded = mergeLatency(loadedParts);
    const loadedFor = loadedMs / 1000;

    // After the load: does it answer, and does memory come back?
    let after: Latency | undefined;
    let afterRss: number[] = [];
    if (!exited) await new Promise((r) => setTimeout(r, 3000));
    if (!exited) {
      after = await controlLatency(port, cove.apiKey, id, 2, () => !!exited);
      afterRss = sampler.take();
    }
    sampler.stop();

    const uncaught = count('(uncaught)') - uncaughtBefore;
    const crashes = (exited ? 1 : 0) + uncaught;
    const max = (xs: number[]) => (xs.length ? Math.max(...xs) : NaN);
    const idleRssMax = max(idleRss);
    const sum = (f: (s: KindStats) => number) => Object.values(perKind).reduce((a, s) => a + f(s), 0);
    const rows: Row[] = [
      { name: 'control API p50 under load (GET /api/sandbox/{id})', value: loaded.stats.p50, unit: 'ms', baseline: idle.stats.p50, baselineName: 'idle', target: '≤ 2× idle', ok: loaded.stats.p50 <= 2 * idle.stats.p50 },
      { name: 'control API p99 under load', value: loaded.stats.p99, unit: 'ms', baseline: idle.stats.p99, baselineName: 'idle' },
      { name: 'control API requests/s (sequential)', value: loaded.stats.n / loadedFor, unit: 'req/s', baseline: idle.stats.n / IDLE_SECONDS, baselineName: 'idle' },
      { name: 'control API requests failed', value: loaded.failed, unit: 'req', baseline: idle.failed, baselineName: 'idle' },
      { name: 'proxy RSS max under load', value: max(loadedRss), unit: 'MB', baseline: idleRssMax, baselineName: 'idle', target: '< 200 MB', ok: max(loadedRss) < 200 },
      { name: 'proxy V8 heap used / total at the end of the load', value: memory.heapUsed, unit: `MB / ${memory.heapTotal.toFixed(0)} MB` },
      { name: 'proxy external (Buffer) memory at the end of the load', value: memory.external, unit: 'MB' },
      { name: 'proxy RSS at the end of the load', value: loadedRss.at(-1) ?? NaN, unit: 'MB', baseline: idleRssMax, baselineName: 'idle' },
      ...(after
        ? [
            { name: 'proxy RSS 3-5 s after the load', value: afterRss.at(-1) ?? NaN, unit: 'MB', baseline: idleRssMax, baselineName: 'idle' },
            { name: `control API p50 after the load (${after.failed} failed)`, value: after.stats.p50, unit: 'ms', baseline: idle.stats.p50, baselineName: 'idle' },
          ]
        : []),
      { name: 'crashes (server exited, or "(uncaught)" logged)', value: crashes, unit: '', target: '0', ok: crashes === 0 },
      { name: 'unexpected errors logged (each a 500 or a crash)', value: count('unexpected error') - unexpectedBefore, unit: '' },
      { name: 'unhandled rejections logged', value: count('(unhandled rejection)') - rejectionsBefore, unit: '' },
      { name: `hostile connections opened (${CONNECTIONS} at any time)`, value: sum((s) => s.connections), unit: 'conns' },
      { name: 'hostile requests sent', value: sum((s) => s.requests), unit: 'req' },
      { name: 'hostile bytes sent', value: sum((s) => s.bytes) / MIB, unit: 'MB' },
    ];
    printTable(`Proxy under hostile load (${CONNECTIONS} connections for ${loadedFor.toFixed(0)} s of ${seconds} s; ${kinds.length} kinds)`, rows);
    printTable(
      'Hostile connections by kind (requests sent; connections opened, answered, closed by the server)',
      Object.entries(perKind).map(([kind, s]) => ({
        name: kind,
        value: s.requests,
        unit: `req; ${s.connections} conns, ${s.answered} answered, ${s.closedByServer} closed by server${s.refused ? `, ${s.refused} refused` : ''}; ${(s.bytes / MIB).toFixed(1)} MB`,
      })),
    );
    if (crashes) {
      const lines = cove.output().split('\n');
      const shown = lines.filter((l) => l.includes('(uncaught)')).slice(0, 3);
      console.log(`\nThe server crashed${exited ? `: it exited (code ${exited.code}, signal ${exited.signal}) ${((exited.at - started) / 1000).toFixed(1)} s after the load started` : ''}.`);
      if (uncaught) console.log(`"(uncaught)" logged ${uncaught} time(s); first:\n${shown.map((l) => `  ${l.slice(0, 600)}`).join('\n')}`);
      if (exited) console.log(`Last output of the server:\n${lines.slice(-30).map((l) => `  ${l.slice(0, 400)}`).join('\n')}`);
    }
    if (!exited) await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
  } finally {
    sampler?.stop();
    if (clients && clients.exitCode === null) clients.kill('SIGTERM');
    await cove.destroy();
    process.off('exit', orphans);
  }
}

if (process.argv.includes('--clients')) {
  process.once('message', (m: { type: string; config: ClientConfig }) => {
    void runClients(m.config).then((result) => process.send!({ type: 'stats', stats: result }, () => process.exit(0)));
  });
  process.send!({ type: 'ready' });
} else {
  await main();
}
