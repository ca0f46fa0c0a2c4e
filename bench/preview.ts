/**
 * Preview forwarding through a real `cove serve`, beside its baselines in the same run:
 * - wrk against a small node HTTP server in a sandbox (a short body): through the preview host (Host header and the
 *   token header), directly to the container address, and through nginx (Debian's, started here on a loopback port
 *   with a temp config proxying to the container with upstream keep-alive). Throughput with 32 connections, latency
 *   (p50/p99) with one connection, so queueing does not hide what a hop adds. Also a server bound to 127.0.0.1,
 *   reached through the agent's tunnel. And the smallest Node proxy (http.createServer + http.request with a
 *   keep-alive agent, no auth, no rewriting): the floor of any proxy built on Node's HTTP stack, as Cove's is.
 * - WebSocket echo round trip (p50) through the proxy vs directly.
 * Targets: ≥ 60% of direct throughput, ≤ 1 ms added p50.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startCove } from '../test/helpers/cove';
import { PREVIEW_FIXTURES, previewSocket, roundTrip, toolbox } from '../test/helpers/preview';
import { printTable, stats, type Row } from './lib';

const THROUGHPUT_SECONDS = 3;
/** Throughput runs per target, interleaved; the median is reported (the machine is shared and noisy). */
const ROUNDS = 3;
const LATENCY_SECONDS = 3;
const CONNECTIONS = 32;
const WS_ROUNDS = 2000;

/** wrk and nginx from Debian, installed here when missing (as root). */
function ensurePackages(): void {
  const has = (cmd: string) => {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  const missing = [has('wrk') ? '' : 'wrk', has('nginx') || has('/usr/sbin/nginx') ? '' : 'nginx'].filter(Boolean);
  if (!missing.length) return;
  if (process.getuid?.() !== 0) throw new Error(`This benchmark needs ${missing.join(' and ')}: sudo apt-get install -y ${missing.join(' ')}`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
}

/** wrk's latency figures ("812.00us", "1.20ms", "1.01s") in milliseconds. */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) throw new Error(`unreadable wrk latency ${text}`);
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2] as 'us' | 'ms' | 's'];
}

function wrk(url: string, connections: number, seconds: number, headers: Record<string, string> = {}): WrkResult {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url];
  const out = execFileSync('wrk', args, { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)![1]);
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)![1]);
  if (/Non-2xx/.test(out) || /Socket errors/.test(out)) throw new Error(`wrk saw errors against ${url}:\n${out}`);
  return { rps, p50, p99 };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** nginx in the foreground with a temp prefix, one worker (like the proxy's one Node thread), keep-alive upstream. */
async function startNginx(ip: string, port: number): Promise<{ url: string; stop(): void }> {
  const prefix = mkdtempSync(path.join(os.tmpdir(), 'cove-bench-nginx-'));
  const listen = await freePort();
  writeFileSync(
    path.join(prefix, 'nginx.conf'),
    `worker_processes 1;
error_log ${prefix}/error.log warn;
pid ${prefix}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  upstream app { server ${ip}:${port}; keepalive 64; }
  server {
    listen 127.0.0.1:${listen};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost:${port};
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit' });
  const url = `http://127.0.0.1:${listen}/`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(url)).ok) break;
    } catch {
      if (i > 100) throw new Error('nginx did not start');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    stop() {
      child.kill('SIGTERM');
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}

/** The smallest keep-alive Node HTTP proxy to the container: what Node's HTTP stack alone costs per request. */
async function startNodeProxy(ip: string, port: number): Promise<{ url: string; stop(): void }> {
  const listen = await freePort();
  const script = `const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 });
http.createServer((req, res) => {
  const up = http.request({ host: '${ip}', port: ${port}, method: req.method, path: req.url, headers: { ...req.headers, host: 'localhost:${port}' }, agent }, (a) => {
    res.writeHead(a.statusCode, a.headers);
    a.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}).listen(${listen}, '127.0.0.1', () => console.log('ready'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  return { url: `http://127.0.0.1:${listen}/`, stop: () => child.kill('SIGTERM') };
}

/** A Node TCP relay to the container (no HTTP parsing at all): the floor of any proxy written in Node. */
async function startBytePipe(ip: string, port: number): Promise<{ url: string; stop(): void }> {
  const listen = await freePort();
  const script = `const net = require('node:net');
net.createServer((c) => {
  const u = net.connect(${port}, '${ip}');
  c.pipe(u).on('error', () => c.destroy());
  u.pipe(c).on('error', () => u.destroy());
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
}).listen(${listen}, '127.0.0.1', () => console.log('ready'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  return { url: `http://127.0.0.1:${listen}/`, stop: () => child.kill('SIGTERM') };
}

async function wsRoundTrips(open: () => Promise<WebSocket>): Promise<number> {
  const ws = await open();
  const samples: number[] = [];
  for (let i = 0; i < WS_ROUNDS + 200; i++) {
    const t = process.hrtime.bigint();
    await roundTrip(ws, 'ping');
    if (i >= 200) samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  ws.close();
  return stats(samples).p50;
}

ensurePackages();
const cove = await startCove({ pool: 1 });
try {
  const created = await (await cove.api('/sandbox', { method: 'POST', body: '{}' })).json();
  const id: string = created.id;
  const box = toolbox(cove, id);
  await box.uploadDir(PREVIEW_FIXTURES, '/home/cove/preview');
  await box.serve('node /home/cove/preview/echo-server.mjs 8080 0.0.0.0', 8080);
  await box.serve('node /home/cove/preview/echo-server.mjs 8081 127.0.0.1', 8081);
  const [container] = cove.containers(`dev.cove.sandbox=${id}`);
  const ip = execFileSync('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', container], { encoding: 'utf8' }).trim();
  const links = await Promise.all(
    [8080, 8081].map(async (port) => (await cove.api(`/sandbox/${id}/ports/${port}/preview-url`)).json() as Promise<{ url: string; token: string }>),
  );
  const proxyPort = new URL(cove.url).port;
  const viaProxy = (i: number) => ({ url: `http://127.0.0.1:${proxyPort}/`, headers: { Host: new URL(links[i].url).host, 'X-Daytona-Preview-Token': links[i].token } });
  const nginx = await startNginx(ip, 8080);
  const nodeProxy = await startNodeProxy(ip, 8080);
  const bytePipe = await startBytePipe(ip, 8080);
  try {
    const targets = {
      direct: { url: `http://${ip}:8080/`, headers: {} },
      nginx: { url: nginx.url, headers: {} },
      node: { url: nodeProxy.url, headers: {} },
      pipe: { url: bytePipe.url, headers: {} },
      proxy: viaProxy(0),
      tunnel: viaProxy(1),
    };
    // Warm every path (connections, JIT) before measuring.
    for (const t of Object.values(targets)) wrk(t.url, 4, 1, t.headers);
    const throughput: Record<string, WrkResult> = {};
    const latency: Record<string, WrkResult> = {};
    const rounds: Record<string, WrkResult[]> = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, t] of Object.entries(targets)) (rounds[name] ??= []).push(wrk(t.url, CONNECTIONS, THROUGHPUT_SECONDS, t.headers));
    }
    for (const [name, results] of Object.entries(rounds)) throughput[name] = [...results].sort((x, y) => x.rps - y.rps)[Math.floor(results.length / 2)];
    for (const [name, t] of Object.entries(targets)) latency[name] = wrk(t.url, 1, LATENCY_SECONDS, t.headers);

    const wsDirect = await wsRoundTrips(
      () =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`ws://${ip}:8080/ws`);
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    );
    const wsProxy = await wsRoundTrips(() => previewSocket(`${links[0].url}/ws`, { 'X-Daytona-Preview-Token': links[0].token }));
    const wsTunnel = await wsRoundTrips(() => previewSocket(`${links[1].url}/ws`, { 'X-Daytona-Preview-Token': links[1].token }));

    const rows: Row[] = [
      { name: `requests/s, ${CONNECTIONS} connections: preview (server on 0.0.0.0)`, value: throughput.proxy.rps, unit: 'req/s', baseline: throughput.direct.rps, baselineName: 'direct', target: '≥ 0.60× direct', ok: throughput.proxy.rps >= 0.6 * throughput.direct.rps },
      { name: 'requests/s: preview vs nginx', value: throughput.proxy.rps, unit: 'req/s', baseline: throughput.nginx.rps, baselineName: 'nginx' },
      { name: 'requests/s: nginx vs direct', value: throughput.nginx.rps, unit: 'req/s', baseline: throughput.direct.rps, baselineName: 'direct' },
      { name: 'requests/s: smallest Node proxy vs direct', value: throughput.node.rps, unit: 'req/s', baseline: throughput.direct.rps, baselineName: 'direct' },
      { name: 'requests/s: Node TCP relay (no HTTP parsing) vs direct', value: throughput.pipe.rps, unit: 'req/s', baseline: throughput.direct.rps, baselineName: 'direct' },
      { name: 'requests/s: preview vs smallest Node proxy', value: throughput.proxy.rps, unit: 'req/s', baseline: throughput.node.rps, baselineName: 'node proxy' },
      { name: 'requests/s: preview of a 127.0.0.1 server (agent tunnel)', value: throughput.tunnel.rps, unit: 'req/s', baseline: throughput.direct.rps, baselineName: 'direct' },
      { name: 'p99 latency, 32 connections: preview', value: throughput.proxy.p99, unit: 'ms', baseline: throughput.direct.p99, baselineName: 'direct' },
      { name: 'p50 latency, 1 connection: preview', value: latency.proxy.p50, unit: 'ms', baseline: latency.direct.p50, baselineName: 'direct', target: '≤ +1 ms', ok: latency.proxy.p50 - latency.direct.p50 <= 1 },
      { name: 'p50 latency, 1 connection: nginx', value: latency.nginx.p50, unit: 'ms', baseline: latency.direct.p50, baselineName: 'direct' },
      { name: 'p50 latency, 1 connection: smallest Node proxy', value: latency.node.p50, unit: 'ms', baseline: latency.direct.p50, baselineName: 'direct' },
      { name: 'p50 latency, 1 connection: preview vs nginx', value: latency.proxy.p50, unit: 'ms', baseline: latency.nginx.p50, baselineName: 'nginx' },
      { name: 'p50 latency, 1 connection: preview (tunnel)', value: latency.tunnel.p50, unit: 'ms', baseline: latency.direct.p50, baselineName: 'direct', target: '≤ +1 ms', ok: latency.tunnel.p50 - latency.direct.p50 <= 1 },
      { name: 'p99 latency, 1 connection: preview', value: latency.proxy.p99, unit: 'ms', baseline: latency.direct.p99, baselineName: 'direct' },
      { name: 'WebSocket echo round trip p50: preview', value: wsProxy, unit: 'ms', baseline: wsDirect, baselineName: 'direct', target: '≤ +1 ms', ok: wsProxy - wsDirect <= 1 },
      { name: 'WebSocket echo round trip p50: preview (tunnel)', value: wsTunnel, unit: 'ms', baseline: wsDirect, baselineName: 'direct' },
    ];
    printTable(`Preview forwarding (wrk -t1, short body, median of ${ROUNDS} × ${THROUGHPUT_SECONDS} s; WebSocket echo ×${WS_ROUNDS})`, rows);
  } finally {
    nginx.stop();
    nodeProxy.stop();
    bytePipe.stop();
    await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
  }
} finally {
  await cove.destroy();
}
