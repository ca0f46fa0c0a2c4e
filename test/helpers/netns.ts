import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A test host in a network namespace this test makes, joined to the host by a veth pair: the only kind of outside
 * host the egress tests send packets to. It owns `addresses` (routed to it from the host) and answers HTTP on `port`
 * of each with the address it was reached at, so a test sees which host answered.
 */
export interface TestHost {
  /** The namespace side of the link (a private address). */
  linkAddress: string;
  /** The host side of the link: where connections from the host come from, as the test host sees them. */
  hostAddress: string;
  port: number;
  /** GET http://address:port/ from the host itself: proves the address is reachable at all. */
  hostGet(address: string): Promise<string>;
  remove(): Promise<void>;
}

/**
 * `web`: the test host also serves ports 80 (HTTP) and 443 (HTTPS with this certificate) on every address, answering
 * each request with JSON of what reached it: `{ address, remote, host, path, authorization, servername, via }`, or with
 * N zero bytes for `/bytes/N`. It also runs an HTTP proxy on port 3128 (CONNECT and absolute-form requests, which it
 * marks with `via`), resolving names with `web.names`.
 */
export async function createTestHost(opts: { addresses: string[]; port?: number; web?: { cert: string; key: string; names?: Record<string, string> } }): Promise<TestHost> {
  const ip = (...args: string[]) => run('ip', args);
  const id = randomBytes(3).toString('hex');
  const ns = `cove-test-${id}`;
  const hostSide = `cvh${id}`;
  const nsSide = `cvn${id}`;
  // A /30 of 10.213.0.0/16 picked at random, so that parallel test files rarely collide.
  const n = 4 * Math.floor(Math.random() * 16_000);
  const hostAddress = `10.213.${n >> 8}.${(n & 255) + 1}`;
  const linkAddress = `10.213.${n >> 8}.${(n & 255) + 2}`;
  const port = opts.port ?? 8080;
  const routes: string[] = [];
  let server: ChildProcess | undefined;
  const remove = async () => {
    server?.kill('SIGKILL');
    for (const address of routes) await ip('route', 'del', `${address}/32`).catch(() => {});
    await ip('link', 'del', hostSide).catch(() => {});
    await ip('netns', 'del', ns).catch(() => {});
  };
  try {
    await ip('netns', 'add', ns);
    await ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', nsSide);
    await ip('link', 'set', nsSide, 'netns', ns);
    await ip('addr', 'add', `${hostAddress}/30`, 'dev', hostSide);
    await ip('link', 'set', hostSide, 'up');
    const inNs = (...args: string[]) => run('ip', ['netns', 'exec', ns, ...args]);
    await inNs('ip', 'addr', 'add', `${linkAddress}/30`, 'dev', nsSide);
    await inNs('ip', 'link', 'set', nsSide, 'up');
    await inNs('ip', 'link', 'set', 'lo', 'up');
    await inNs('ip', 'route', 'add', 'default', 'via', hostAddress);
    for (const address of opts.addresses) {
      await inNs('ip', 'addr', 'add', `${address}/32`, 'dev', 'lo');
      await ip('route', 'replace', `${address}/32`, 'via', linkAddress);
      routes.push(address);
    }
    const web = opts.web
      ? `const zeros = Buffer.alloc(1 << 16);
         const echo = (q, s) => {
           const n = /^\\/bytes\\/(\\d+)$/.exec(q.url);
           if (!n) return s.end(JSON.stringify({ address: q.socket.localAddress, remote: q.socket.remoteAddress, host: q.headers.host, path: q.url, authorization: q.headers.authorization ?? null, servername: q.socket.servername ?? null, via: q.headers['x-via-test-proxy'] ?? null }));
           let left = Number(n[1]);
           s.writeHead(200, { 'content-length': left });
           const more = () => { while (left > 0) { const c = zeros.subarray(0, Math.min(left, zeros.length)); left -= c.length; if (!s.write(c)) return s.once('drain', more); } s.end(); };
           more();
         };
         require('http').createServer(echo).listen(80, '0.0.0.0');
         const names = ${JSON.stringify(opts.web?.names ?? {})};
         const proxy = require('http').createServer((q, s) => {
           const u = new URL(q.url);
           const up = require('http').request({ host: names[u.hostname] ?? u.hostname, port: u.port || 80, method: q.method, path: u.pathname + u.search, headers: { ...q.headers, 'x-via-test-proxy': q.headers['proxy-authorization'] ?? 'yes' } }, (r) => { s.writeHead(r.statusCode, r.headers); r.pipe(s); });
           up.on('error', () => s.destroy());
           q.pipe(up);
         });
         proxy.on('connect', (q, c, head) => {
           const [h, p] = q.url.split(':');
           const up = require('net').connect(Number(p), names[h] ?? h, () => { c.write('HTTP/1.1 200 Connection Established\\r\\n\\r\\n'); up.write(head); up.pipe(c); c.pipe(up); });
           up.on('error', () => c.destroy());
           c.on('error', () => up.destroy());
         });
         proxy.listen(3128, '0.0.0.0');
         require('https').createServer({ cert: ${JSON.stringify(opts.web.cert)}, key: ${JSON.stringify(opts.web.key)} }, echo).listen(443, '0.0.0.0');`
      : '';
    const script = `${web} require('http').createServer((q, s) => s.end(q.socket.localAddress)).listen(${port}, '0.0.0.0', () => console.log('up'))`;
    server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.once('data', () => resolve());
      server!.once('exit', (code) => reject(new Error(`the test host's server exited with ${code}`)));
    });
  } catch (err) {
    await remove();
    throw new Error(`could not make a test host in a network namespace (needs root and iproute2): ${(err as Error).message}`);
  }
  return {
    linkAddress,
    hostAddress,
    port,
    async hostGet(address) {
      const res = await fetch(`http://${address}:${port}/`, { signal: AbortSignal.timeout(5000) });
      return res.text();
    },
    remove,
  };
}

/** The IPv6 link-local address of a host interface (the bridge's, say), or undefined. */
export function linkLocalOf(iface: string): string | undefined {
  const out = execFileSync('ip', ['-6', '-o', 'addr', 'show', 'dev', iface, 'scope', 'link'], { encoding: 'utf8' });
  return /inet6 (fe80::[0-9a-f:]+)\//.exec(out)?.[1];
}
