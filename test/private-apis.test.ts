/**
 * Cove reads a few private parts of the libraries it uses where no public API does the job, each behind one small
 * function. These tests run those functions on real instances, so a library update that changes what they rely on
 * fails here rather than in production.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request } from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type * as Ssh2 from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import { watchesFolder } from '../agent/src/watch/chokidar-private';
import { sendRawSshMessage } from '../proxy/src/ssh/ssh2-private';
import { trackConnectionsWithoutListening } from '../proxy/src/server';
import { wrapChildProcessSpawn } from '../agent/src/system/child-process-private';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const listen = (server: net.Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

describe('chokidar: FSWatcher#_closers (watchesFolder)', () => {
  it('tells a folder chokidar watches from one it does not', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-chokidar-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(path.join(dir, 'sub'));
    const { watch } = await import('chokidar');
    const watcher = watch(dir, { followSymlinks: false });
    cleanups.push(() => watcher.close());
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    expect(watchesFolder(watcher, dir)).toBe(true);
    expect(watchesFolder(watcher, path.join(dir, 'sub'))).toBe(true);
    expect(watchesFolder(watcher, path.join(dir, 'elsewhere'))).toBe(false);
  });
});

describe('ssh2: _protocol._packetRW.write and sendPacket (sendRawSshMessage)', () => {
  it('sends a message ssh2 would not send by itself, in both directions', async () => {
    const ssh2 = createRequire(import.meta.url)('ssh2') as typeof Ssh2;
    const hostKey = ssh2.utils.generateKeyPairSync('ed25519').private;
    const requests: string[] = [];
    const server = new ssh2.Server({ hostKeys: [hostKey] }, (conn) => {
      conn.on('error', () => {});
      conn.on('authentication', (ctx) => {
        if (ctx.username === 'refused') {
          // A USERAUTH_BANNER (53) after the user name is known, as the gateway's refusals send it.
          const text = Buffer.from('per-connection banner\r\n');
          const len = Buffer.alloc(4);
          len.writeUInt32BE(text.length);
          sendRawSshMessage(conn, Buffer.concat([Buffer.from([53]), len, text, Buffer.alloc(4)]));
          return ctx.reject([]);
        }
        ctx.accept();
      });
      conn.on('request', (_accept, reject, name) => {
        requests.push(name);
        reject?.();
      });
    });
    const port = await listen(server);
    cleanups.push(() => new Promise((resolve) => server.close(() => resolve(undefined))));

    // Server to client: the banner arrives.
    const refused = new ssh2.Client();
    refused.on('error', () => {});
    const banner = new Promise<string>((resolve) => refused.on('banner', (message: string) => resolve(message)));
    refused.connect({ host: '127.0.0.1', port, username: 'refused', password: 'x' });
    cleanups.push(() => refused.end());
    expect(await banner).toBe('per-connection banner\r\n');

    // Client to server: a GLOBAL_REQUEST (80) built by hand reaches the server's 'request' event.
    const client = new ssh2.Client();
    client.on('error', () => {});
    await new Promise<void>((resolve) => client.on('ready', () => resolve()).connect({ host: '127.0.0.1', port, username: 'u', password: 'x' }));
    cleanups.push(() => client.end());
    const name = Buffer.from('cancel-streamlocal-forward@openssh.com');
    const sockPath = Buffer.from('/tmp/x');
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    sendRawSshMessage(client, Buffer.concat([Buffer.from([80]), u32(name.length), name, Buffer.from([0]), u32(sockPath.length), sockPath]));
    await expect.poll(() => requests, { timeout: 5000 }).toContain('cancel-streamlocal-forward@openssh.com');
  });
});

describe("Node http.Server: connection tracking started by 'listening' (trackConnectionsWithoutListening)", () => {
  it('closeAllConnections() and the header timeout reach connections handed to a server that never listens', async () => {
    const server = createHttpServer({ headersTimeout: 300, requestTimeout: 0, connectionsCheckingInterval: 50, keepAliveTimeout: 60_000 }, (_req, res) => res.end('ok'));
    trackConnectionsWithoutListening(server);
    cleanups.push(() => server.close(() => {}));
    const front = net.createServer((socket) => server.emit('connection', socket));
    const port = await listen(front);
    cleanups.push(() => new Promise((resolve) => front.close(() => resolve(undefined))));

    // A keep-alive connection after its response: closeAllConnections() ends it.
    const agent = new (await import('node:http')).Agent({ keepAlive: true });
    cleanups.push(() => agent.destroy());
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(req.socket!));
      });
      req.on('error', reject);
      req.end();
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    server.closeAllConnections();
    await closed;

    // A request head that never ends: the header timeout answers 408 and closes.
    const slow = net.connect(port, '127.0.0.1');
    slow.write('GET / HTTP/1.1\r\nHost: x\r\n');
    let answer = '';
    slow.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    await new Promise<void>((resolve) => slow.once('close', () => resolve()));
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });
});

describe('Node child_process: ChildProcess.prototype.spawn (wrapChildProcessSpawn)', () => {
  it('runs spawn() and execFile() through the wrapper, which sees the fork happen inside it', async () => {
    const own = readFileSync('/proc/self/oom_score_adj', 'utf8').trim();
    const raised = String(Math.min(1000, Number(own) + 300));
    let calls = 0;
    // What the agent does with it (system/oom.ts): a value set around the call is the one the child starts with.
    const unwrap = wrapChildProcessSpawn((fork) => {
      calls++;
      writeFileSync('/proc/self/oom_score_adj', raised);
      try {
        return fork();
      } finally {
        writeFileSync('/proc/self/oom_score_adj', own);
      }
    });
    cleanups.push(unwrap);
    const viaSpawn = await new Promise<string>((resolve, reject) => {
      const child = spawn('cat', ['/proc/self/oom_score_adj']);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('close', () => resolve(out.trim()));
    });
    const viaExecFile = await new Promise<string>((resolve, reject) =>
      execFile('sh', ['-c', 'cat /proc/self/oom_score_adj'], (err, stdout) => (err ? reject(err) : resolve(stdout.trim()))),
    );
    expect([viaSpawn, viaExecFile]).toEqual([raised, raised]);
    expect(calls).toBe(2);
    expect(readFileSync('/proc/self/oom_score_adj', 'utf8').trim()).toBe(own);
  });
});

describe("Node: a socket's _handle.fd (socketFd), read for getsockopt SO_ORIGINAL_DST", () => {
  it('gives the descriptor of a connected socket, and the address a redirected connection was going to', async () => {
    const { originalDestination, socketFd } = await import('../proxy/src/egress/original-dst');
    const accepted: net.Socket[] = [];
    const server = net.createServer((s) => accepted.push(s));
    const port = await listen(server);
    cleanups.push(() => server.close());
    const arrived = () => new Promise<net.Socket>((resolve) => server.once('connection', resolve));

    let next = arrived();
    const direct = net.connect(port, '127.0.0.1');
    cleanups.push(() => direct.destroy());
    const plain = await next;
    expect(socketFd(plain)).toBeGreaterThan(2);
    // Not redirected: conntrack's original destination is the socket's own address.
    expect(originalDestination(plain)).toEqual({ address: '127.0.0.1', port });

    // A connection to 127.0.0.77:9 redirected to the server by the nat table (as the egress firewall redirects).
    const rule = ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '127.0.0.77', '--dport', '9', '-j', 'REDIRECT', '--to-ports', String(port)];
    await new Promise<void>((resolve, reject) => execFile('iptables', ['-w', '5', ...rule], (err) => (err ? reject(err) : resolve())));
    cleanups.push(() => new Promise<void>((resolve) => execFile('iptables', ['-w', '5', ...rule.map((a) => (a === '-A' ? '-D' : a))], () => resolve())));
    next = arrived();
    const redirected = net.connect(9, '127.0.0.77');
    cleanups.push(() => redirected.destroy());
    expect(originalDestination(await next)).toEqual({ address: '127.0.0.77', port: 9 });
  });
});
