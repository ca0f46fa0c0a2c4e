import { createServer as createHttpServer, request as httpRequest, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer, isIPv4, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { inNetworks, refusedDestination } from '../runtime/egress-policy';
import { hostMatches, normalHost } from './domains';
import type { EgressLog } from './log';
import type { NameResolver } from './resolver';
import { readClientHello, tlsAlert } from './sni';
import type { EgressSandbox } from './types';

/**
 * Cove's egress proxy: the host firewall redirects a sandbox's connections to ports 80 and 443 here (when it has a
 * domain allow-list or mounted secrets), whatever address they were for, so neither proxy variables, raw sockets nor
 * root in the container go around it. A plain HTTP request is decided by its Host, a TLS connection by the server
 * name of its ClientHello (SNI); an allowed one is connected to the address Cove resolves for that name — never the
 * address the sandbox dialled — and relayed, a refused one answered at once (a 403, or a TLS alert), and every one of
 * them written to the sandbox's egress log.
 */
export interface EgressProxy {
  ports: { http: number; tls: number };
  close(): Promise<void>;
}

/** How long a connection to port 443 may take to send its ClientHello. */
const HELLO_TIMEOUT_MS = 10_000;
/** How long connecting to a destination may take. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A relayed connection idle this long is closed (both ways). */
const IDLE_TIMEOUT_MS = 10 * 60_000;

type Decision = { allowed: true; address: string } | { allowed: false; reason: string };

/**
 * Whether `sandbox` may reach `host` (a name or an IPv4 literal, as its request named it), and at which address.
 * A name on its domain list is allowed; otherwise the address must be inside its allowed networks, or, with neither a
 * domain list nor networks (secrets alone brought it here), anything is. Whatever the policy, the address must not be
 * one no sandbox may reach (loopback, link-local, private unless allowed) or the host's own.
 */
export async function decide(
  sandbox: EgressSandbox,
  host: string,
  env: { resolver: NameResolver; allowPrivate: boolean; refusedNetworks: readonly string[]; isHostAddress(ip: string): boolean },
): Promise<Decision> {
  const literal = isIPv4(host) ? host : undefined;
  const name = literal ? undefined : normalHost(host);
  if (!literal && !name) return { allowed: false, reason: 'not a host name' };
  const listed = !!name && !!sandbox.domains && hostMatches(sandbox.domains, name);
  const unrestricted = !sandbox.domains && !sandbox.cidrs;
  // A name that can only be refused is not looked up: the sandbox learns nothing from Cove's resolver.
  if (!listed && !unrestricted && !sandbox.cidrs?.length) return { allowed: false, reason: 'not in the domain allow-list' };
  let address = literal;
  if (!address) {
    const { addresses } = await env.resolver.resolve4(name!);
    if (!addresses.length) return { allowed: false, reason: 'the name does not resolve' };
    address = addresses[0];
  }
  if (!listed && !unrestricted && !inNetworks(address, sandbox.cidrs!)) {
    return { allowed: false, reason: sandbox.domains ? 'not in the domain allow-list' : 'not in the network allow-list' };
  }
  const refused = refusedDestination(address, { allowPrivate: env.allowPrivate });
  if (refused) return { allowed: false, reason: `${address} is ${refused}` };
  if (inNetworks(address, env.refusedNetworks) || env.isHostAddress(address)) return { allowed: false, reason: `${address} is Cove's own network` };
  return { allowed: true, address };
}

/** Headers that belong to one hop: the proxy's own connections carry their own. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export async function startEgressProxy(opts: {
  /** The bridge's gateway address: where the firewall's REDIRECT delivers. */
  host: string;
  sandboxAt(ip: string): EgressSandbox | undefined;
  resolver: NameResolver;
  log: EgressLog;
  logger: Logger;
  allowPrivate: boolean;
  /** Networks no sandbox reaches through the proxy whatever its policy (the sandboxes' own bridge). */
  refusedNetworks: string[];
}): Promise<EgressProxy> {
  const hostAddresses = new Set<string>();
  const readHostAddresses = () => {
    hostAddresses.clear();
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4') hostAddresses.add(a.address);
  };
  readHostAddresses();
  const refreshAddresses = setInterval(readHostAddresses, 60_000);
  refreshAddresses.unref();
  const env = { resolver: opts.resolver, allowPrivate: opts.allowPrivate, refusedNetworks: opts.refusedNetworks, isHostAddress: (ip: string) => hostAddresses.has(ip) };
  const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: IDLE_TIMEOUT_MS });
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  /** The sandbox a connection came from, by its source address (the redirect keeps it). */
  const sandboxOf = (socket: Socket): EgressSandbox | undefined => opts.sandboxAt(socket.remoteAddress ?? '');

  // --- Port 80: HTTP, decided per request by its Host. ---------------------------------------------------------------

  /** The host and port a request is for: its absolute URL, else its Host header; undefined when it names none. */
  function targetOf(req: IncomingMessage): { host: string; port: number; path: string } | undefined {
    const url = req.url ?? '/';
    if (/^https?:\/\//i.test(url)) {
      try {
        const u = new URL(url);
        return { host: u.hostname, port: Number(u.port) || 80, path: `${u.pathname}${u.search}` };
      } catch {
        return undefined;
      }
    }
    const m = /^(\[[^\]]*\]|[^:]+)(?::(\d{1,5}))?$/.exec(req.headers.host ?? '');
    if (!m) return undefined;
    return { host: m[1], port: m[2] ? Number(m[2]) : 80, path: url };
  }

  const refuse = (res: ServerResponse, status: number, text: string): void => {
    if (res.headersSent) return void res.destroy();
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-cove-egress': 'refused', connection: 'close' });
    res.end(`${text}\n`);
  };

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sandbox = sandboxOf(req.socket);
    if (!sandbox) return void req.socket.destroy();
    const target = targetOf(req);
    const entry = { protocol: 'http' as const, host: target?.host ?? String(req.headers.host ?? ''), port: 80, method: req.method, path: target?.path ?? req.url };
    if (!target) {
      opts.log.add(sandbox.id, { ...entry, decision: 'refused', reason: 'no Host header' });
      return refuse(res, 400, 'Cove egress: the request names no host (Host header)');
    }
    const decision = await decide(sandbox, target.host, env);
    if (!decision.allowed) {
      opts.log.add(sandbox.id, { ...entry, decision: 'refused', reason: decision.reason });
      return refuse(res, 403, `Cove egress: ${target.host} is refused for this sandbox: ${decision.reason}`);
    }
    const headers: Record<string, string | string[]> = {};
    for (const [key, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(key)) headers[key] = value;
    let bytesSent = 0;
    let bytesReceived = 0;
    const upstream = httpRequest({
      host: decision.address,
      port: 80,
      method: req.method,
      path: target.path || '/',
      headers,
      agent,
      setHost: false,
      timeout: CONNECT_TIMEOUT_MS,
    });
    upstream.on('timeout', () => upstream.destroy(new Error('timed out')));
    req.on('data', (chunk: Buffer) => (bytesSent += chunk.length));
    req.pipe(upstream);
    upstream.on('response', (answer) => {
      upstream.setTimeout(IDLE_TIMEOUT_MS);
      const out: Record<string, string | string[]> = {};
      for (const [key, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(key)) out[key] = value;
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
      answer.on('data', (chunk: Buffer) => (bytesReceived += chunk.length));
      answer.pipe(res);
      answer.on('error', () => res.destroy());
      res.on('close', () => {
        if (!answer.complete) answer.destroy();
        opts.log.add(sandbox.id, { ...entry, address: decision.address, status: answer.statusCode, bytesSent, bytesReceived, decision: 'allowed' });
      });
    });
    upstream.on('error', (err) => {
      opts.log.add(sandbox.id, { ...entry, address: decision.address, bytesSent, decision: 'allowed', reason: `failed: ${err.message}` });
      refuse(res, 502, `Cove egress: ${target.host} (${decision.address}) could not be reached: ${err.message}`);
    });
    res.on('close', () => {
      if (!upstream.writableFinished || !res.writableFinished) upstream.destroy();
    });
  }

  /** A WebSocket (or other) upgrade on port 80: decided like a request, then relayed as raw bytes both ways. */
  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const sandbox = sandboxOf(req.socket);
    if (!sandbox) return void socket.destroy();
    const target = targetOf(req);
    const entry = { protocol: 'http' as const, host: target?.host ?? '', port: 80, method: req.method, path: target?.path ?? req.url };
    const decision = target ? await decide(sandbox, target.host, env) : ({ allowed: false, reason: 'no Host header' } as const);
    if (!decision.allowed) {
      opts.log.add(sandbox.id, { ...entry, decision: 'refused', reason: decision.reason });
      const text = `Cove egress: ${entry.host || 'this request'} is refused for this sandbox: ${decision.reason}\n`;
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
      return;
    }
    const lines = [`${req.method} ${target!.path || '/'} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    relay(socket, decision.address, 80, Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]), (sent, received, error) =>
      opts.log.add(sandbox.id, { ...entry, address: decision.address, bytesSent: sent, bytesReceived: received, decision: 'allowed', ...(error ? { reason: `failed: ${error}` } : {}) }),
    );
  }

  /**
   * Connects to `address:port`, sends `first`, then pipes both ways until either side ends; `done` gets the bytes
   * each way (the sandbox's included `first`) and the error that ended it, if any.
   */
  function relay(client: Duplex, address: string, port: number, first: Buffer, done: (sent: number, received: number, error?: string) => void): void {
    let sent = first.length;
    let received = 0;
    let error: string | undefined;
    const server = connect({ host: address, port, timeout: CONNECT_TIMEOUT_MS });
    track(server);
    server.once('connect', () => server.setTimeout(IDLE_TIMEOUT_MS));
    server.on('timeout', () => server.destroy(new Error('timed out')));
    server.on('error', (err) => {
      error ??= err.message;
      client.destroy();
    });
    client.on('error', () => server.destroy());
    client.on('data', (chunk: Buffer) => (sent += chunk.length));
    server.on('data', (chunk: Buffer) => (received += chunk.length));
    server.write(first);
    client.pipe(server);
    server.pipe(client);
    let closed = 0;
    const onClose = () => {
      if (++closed === 1) {
        client.destroy();
        server.destroy();
        done(sent, received, error);
      }
    };
    client.once('close', onClose);
    server.once('close', onClose);
  }

  const http = createHttpServer({ requestTimeout: 60_000, headersTimeout: 30_000, keepAliveTimeout: 30_000, maxHeaderSize: 32 * 1024 });
  // One boundary: whatever a handler throws ends that request alone.
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    onRequest(req, res).catch((err: Error) => {
      opts.logger.warn({ err: err.message }, 'egress proxy: an HTTP request failed');
      refuse(res, 502, `Cove egress: ${err.message}`);
    });
  });
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    onUpgrade(req, socket, head).catch((err: Error) => {
      opts.logger.warn({ err: err.message }, 'egress proxy: an upgrade failed');
      socket.destroy();
    });
  });
  http.on('connection', track);
  http.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  // --- Port 443: TLS, decided by the ClientHello's server name and relayed untouched. --------------------------------

  function onTls(socket: Socket): void {
    track(socket);
    socket.on('error', () => {});
    const sandbox = sandboxOf(socket);
    if (!sandbox) return void socket.destroy();
    let buffered = Buffer.alloc(0);
    socket.setTimeout(HELLO_TIMEOUT_MS, () => {
      opts.log.add(sandbox.id, { protocol: 'tls', host: '', port: 443, decision: 'refused', reason: 'no ClientHello in time' });
      socket.destroy();
    });
    const refuseTls = (host: string, reason: string) => {
      opts.log.add(sandbox.id, { protocol: 'tls', host, port: 443, decision: 'refused', reason });
      socket.end(tlsAlert(host ? 'access_denied' : 'unrecognized_name'));
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const hello = readClientHello(buffered);
      if (hello.state === 'more') return;
      socket.off('data', onData);
      socket.pause();
      socket.setTimeout(0);
      if (hello.state === 'invalid') return refuseTls('', hello.reason);
      const name = hello.serverName;
      if (!name) return refuseTls('', 'no server name (SNI) in the ClientHello');
      decide(sandbox, name, env).then(
        (decision) => {
          if (socket.destroyed) return;
          if (!decision.allowed) return refuseTls(name, decision.reason);
          relay(socket, decision.address, 443, buffered, (sent, received, error) =>
            opts.log.add(sandbox.id, {
              protocol: 'tls',
              host: name,
              port: 443,
              address: decision.address,
              bytesSent: sent,
              bytesReceived: received,
              decision: 'allowed',
              ...(error ? { reason: `failed: ${error}` } : {}),
            }),
          );
          socket.resume();
        },
        (err: Error) => refuseTls(name, `failed: ${err.message}`),
      );
    };
    socket.on('data', onData);
  }
  const tls: Server = createServer({ pauseOnConnect: false }, (socket) => {
    try {
      onTls(socket);
    } catch (err) {
      opts.logger.warn({ err: (err as Error).message }, 'egress proxy: a TLS connection failed');
      socket.destroy();
    }
  });

  const listen = (server: Server): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, opts.host, () => {
        server.off('error', reject);
        server.on('error', (err) => opts.logger.warn({ err: err.message }, 'egress proxy: listener error'));
        resolve((server.address() as { port: number }).port);
      });
    });
  const ports = { http: await listen(http), tls: await listen(tls) };

  return {
    ports,
    async close() {
      clearInterval(refreshAddresses);
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await Promise.all([new Promise((r) => http.close(r)), new Promise((r) => tls.close(r))]);
    },
  };
}
