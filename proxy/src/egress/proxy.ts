import { createServer as createHttpServer, request as httpRequest, Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect, createServer, isIPv4, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { inNetworks, refusedDestination } from '../runtime/egress-policy';
import { hostMatches, normalHost } from './domains';
import type { EgressLog } from './log';
import type { NameResolver } from './resolver';
import type { EgressCa } from './ca';
import { originalDestination } from './original-dst';
import { readClientHello, tlsAlert } from './sni';
import { substitute, substituteHeaders, substitutionsFor } from './substitute';
import { openTunnel, type UpstreamProxy } from './upstream';
import { prefixed } from '../../../lib/net/prefixed';
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
  /** Cove's egress CA: with it, TLS to a mounted secret's hosts is terminated here and the secret substituted. */
  ca?: EgressCa;
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
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: IDLE_TIMEOUT_MS });
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

  /** Where an admitted request goes: the address Cove resolved, by plain HTTP or (intercepted) TLS to `servername`. */
  interface Upstream {
    sandbox: EgressSandbox;
    host: string;
    address: string;
    /** Set for requests Cove terminated TLS for: the upstream is HTTPS to this name. */
    servername?: string;
  }

  /**
   * Forwards one admitted request upstream, with the placeholders of the sandbox's secrets for this host replaced in
   * its URL and header values, and relays the answer; logs it (the path as the sandbox sent it, never a value).
   */
  async function forward(req: IncomingMessage, res: ServerResponse, to: Upstream, path: string): Promise<void> {
    const subs = substitutionsFor(to.sandbox.secrets, normalHost(to.host) ?? '');
    const used = new Set<string>();
    const headers: [string, string][] = [];
    const raw = subs.length ? substituteHeaders(req.rawHeaders, subs, used) : req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i].toLowerCase())) headers.push([raw[i], raw[i + 1]]);
    const outPath = subs.length ? substitute(path || '/', subs, used) : path || '/';
    const entry = { protocol: to.servername ? ('https' as const) : ('http' as const), host: to.host, port: to.servername ? 443 : 80, method: req.method, path, address: to.address };
    let bytesSent = 0;
    let bytesReceived = 0;
    const next = to.sandbox.upstream;
    let upstream: ClientRequest;
    try {
      const common = { method: req.method, headers: headers.flat(), setHost: false, timeout: CONNECT_TIMEOUT_MS };
      if (!next) {
        upstream = to.servername
          ? httpsRequest({ ...common, host: to.address, path: outPath, port: 443, servername: to.servername, agent: httpsAgent })
          : httpRequest({ ...common, host: to.address, path: outPath, port: 80, agent });
      } else if (to.servername) {
        // Through the outbound proxy: TLS to the host inside a CONNECT tunnel.
        const tunnel = await openTunnel(next, await proxyAddress(next), to.host, 443, CONNECT_TIMEOUT_MS);
        const tls = tlsConnect({ socket: tunnel, servername: to.servername });
        upstream = httpsRequest({ ...common, host: to.host, path: outPath, port: 443, agent: false, createConnection: () => tls });
      } else {
        // Through the outbound proxy: the request in absolute form, as clients send it to a proxy.
        const auth = next.authorization ? ['Proxy-Authorization', next.authorization] : [];
        const options = { ...common, headers: [...headers.flat(), ...auth], host: await proxyAddress(next), port: next.port, path: `http://${to.host}${outPath}` };
        upstream = next.tls ? httpsRequest({ ...options, servername: next.host, agent: httpsAgent }) : httpRequest({ ...options, agent });
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (/^ERR_(INVALID_CHAR|HTTP_INVALID_HEADER_VALUE|INVALID_HTTP_TOKEN|UNESCAPED_CHARACTERS)$/.test(code)) {
        // A value Node refuses in a request (a control character): it cannot be sent as asked.
        opts.log.add(to.sandbox.id, { ...entry, decision: 'refused', reason: `not sendable: ${(err as Error).message}`, ...(used.size ? { secrets: [...used] } : {}) });
        return refuse(res, 400, `Cove egress: the request cannot be sent: ${(err as Error).message}`);
      }
      opts.log.add(to.sandbox.id, { ...entry, decision: 'allowed', reason: `failed: ${(err as Error).message}` });
      return refuse(res, 502, `Cove egress: ${to.host} could not be reached: ${(err as Error).message}`);
    }
    const secrets = used.size ? { secrets: [...used] } : {};
    upstream.on('timeout', () => upstream.destroy(new Error('timed out')));
    req.on('data', (chunk: Buffer) => (bytesSent += chunk.length));
    req.pipe(upstream);
    upstream.on('response', (answer) => {
      upstream.setTimeout(IDLE_TIMEOUT_MS);
      const out: [string, string][] = [];
      for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) if (!HOP_BY_HOP.has(answer.rawHeaders[i].toLowerCase())) out.push([answer.rawHeaders[i], answer.rawHeaders[i + 1]]);
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out.flat());
      answer.on('data', (chunk: Buffer) => (bytesReceived += chunk.length));
      answer.pipe(res);
      answer.on('error', () => res.destroy());
      res.on('close', () => {
        if (!answer.complete) answer.destroy();
        opts.log.add(to.sandbox.id, { ...entry, status: answer.statusCode, bytesSent, bytesReceived, decision: 'allowed', ...secrets });
      });
    });
    upstream.on('error', (err) => {
      opts.log.add(to.sandbox.id, { ...entry, bytesSent, decision: 'allowed', reason: `failed: ${err.message}`, ...secrets });
      refuse(res, 502, `Cove egress: ${to.host} (${to.address}) could not be reached: ${err.message}`);
    });
    res.on('close', () => {
      if (!upstream.writableFinished || !res.writableFinished) upstream.destroy();
    });
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sandbox = sandboxOf(req.socket);
    if (!sandbox) return void req.socket.destroy();
    // A request without a Host (HTTP/1.0) is for the address the sandbox dialled.
    const dialled = req.headers.host === undefined ? originalDestination(req.socket) : undefined;
    const target = targetOf(req) ?? (dialled && { host: dialled.address, port: dialled.port, path: req.url ?? '/' });
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
    await forward(req, res, { sandbox, host: target.host, address: decision.address }, target.path);
  }

  /** The outbound proxy's address, checked as any destination is (never loopback, metadata, the host or a sandbox). */
  async function proxyAddress(next: UpstreamProxy): Promise<string> {
    const decision = await decide({ id: '', domains: null, cidrs: null, secrets: [] }, next.host, env);
    if (!decision.allowed) throw new Error(`the outbound proxy ${next.host} is refused: ${decision.reason}`);
    return decision.address;
  }

  /**
   * A connection to `to` (its address, or through the sandbox's outbound proxy) on `port`; over TLS to `servername`
   * when given. What relays and upgrades send their bytes on.
   */
  async function dial(to: Upstream, port: number, servername?: string): Promise<Socket> {
    const next = to.sandbox.upstream;
    if (next) {
      const tunnel = await openTunnel(next, await proxyAddress(next), to.host, port, CONNECT_TIMEOUT_MS);
      return servername ? tlsConnect({ socket: tunnel, servername }) : tunnel;
    }
    return servername ? tlsConnect({ host: to.address, port, servername, timeout: CONNECT_TIMEOUT_MS }) : connect({ host: to.address, port, timeout: CONNECT_TIMEOUT_MS });
  }

  /** A WebSocket (or other) upgrade: decided like a request, then relayed as raw bytes both ways. */
  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, intercepted?: Upstream): Promise<void> {
    const sandbox = intercepted?.sandbox ?? sandboxOf(req.socket);
    if (!sandbox) return void socket.destroy();
    const target = intercepted ? { host: intercepted.host, path: req.url ?? '/' } : targetOf(req);
    const entry = { protocol: intercepted ? ('https' as const) : ('http' as const), host: target?.host ?? '', port: intercepted ? 443 : 80, method: req.method, path: target?.path ?? req.url };
    const decision = intercepted
      ? ({ allowed: true, address: intercepted.address } as const)
      : target
        ? await decide(sandbox, target.host, env)
        : ({ allowed: false, reason: 'no Host header' } as const);
    if (!decision.allowed) {
      opts.log.add(sandbox.id, { ...entry, decision: 'refused', reason: decision.reason });
      const text = `Cove egress: ${entry.host || 'this request'} is refused for this sandbox: ${decision.reason}\n`;
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
      return;
    }
    const subs = substitutionsFor(sandbox.secrets, normalHost(target!.host) ?? '');
    const used = new Set<string>();
    const raw = subs.length ? substituteHeaders(req.rawHeaders, subs, used) : req.rawHeaders;
    const lines = [`${req.method} ${subs.length ? substitute(target!.path || '/', subs, used) : target!.path || '/'} HTTP/1.1`];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      // A value with a line break would make a second header (or end the head): refused, as Node refuses it.
      if (/[\r\n\0]/.test(raw[i + 1])) return void socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      lines.push(`${raw[i]}: ${raw[i + 1]}`);
    }
    const connectTo = () =>
      intercepted ? dial(intercepted, 443, intercepted.servername) : dial({ sandbox, host: target!.host, address: decision.address }, 80);
    relay(socket, connectTo, Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]), (sent, received, error) =>
      opts.log.add(sandbox.id, {
        ...entry,
        address: decision.address,
        bytesSent: sent,
        bytesReceived: received,
        decision: 'allowed',
        ...(used.size ? { secrets: [...used] } : {}),
        ...(error ? { reason: `failed: ${error}` } : {}),
      }),
    );
  }

  /**
   * Connects to the destination, sends `first`, then pipes both ways until either side ends; `done` gets the bytes
   * each way (the sandbox's included `first`) and the error that ended it, if any.
   */
  function relay(client: Duplex, connectTo: () => Promise<Socket>, first: Buffer, done: (sent: number, received: number, error?: string) => void): void {
    connectTo().then(
      (server) => pipeBoth(client, server, first, done),
      (err: Error) => {
        client.destroy();
        done(first.length, 0, err.message);
      },
    );
  }

  function pipeBoth(client: Duplex, server: Socket, first: Buffer, done: (sent: number, received: number, error?: string) => void): void {
    let sent = first.length;
    let received = 0;
    let error: string | undefined;
    if (client.destroyed) {
      server.destroy();
      return done(sent, 0, 'the sandbox closed the connection');
    }
    track(server);
    // A tunnel is connected already; a new connection is once it says so.
    if (server.connecting || (server instanceof TLSSocket && !server.encrypted)) server.once(server instanceof TLSSocket ? 'secureConnect' : 'connect', () => server.setTimeout(IDLE_TIMEOUT_MS));
    else server.setTimeout(IDLE_TIMEOUT_MS);
    server.resume();
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
      // No name to decide by (TLS to an address carries none; other protocols none at all): the address the sandbox
      // dialled stands for it, decided like an address in a URL (a domain list never holds one).
      const name = hello.state === 'done' ? hello.serverName : undefined;
      const dialled = name ? undefined : originalDestination(socket);
      const host = name ?? dialled?.address;
      if (!host) return refuseTls('', hello.state === 'invalid' ? hello.reason : 'no server name (SNI) in the ClientHello');
      const port = dialled?.port ?? 443;
      decide(sandbox, host, env).then(
        (decision) => {
          if (socket.destroyed) return;
          if (!decision.allowed) return refuseTls(host, name ? decision.reason : `${decision.reason} (${hello.state === 'invalid' ? hello.reason : 'no server name'})`);
          if (name && opts.ca && substitutionsFor(sandbox.secrets, name).length) return intercept(socket, buffered, { sandbox, host: name, address: decision.address, servername: name });
          relay(socket, () => dial({ sandbox, host, address: decision.address }, port), buffered, (sent, received, error) =>
            opts.log.add(sandbox.id, {
              protocol: 'tls',
              host,
              port,
              address: decision.address,
              bytesSent: sent,
              bytesReceived: received,
              decision: 'allowed',
              ...(error ? { reason: `failed: ${error}` } : {}),
            }),
          );
        },
        (err: Error) => refuseTls(host, `failed: ${err.message}`),
      );
    };
    socket.on('data', onData);
  }
  /**
   * Terminates the sandbox's TLS with a certificate of Cove's CA for the name it asked for, and serves its requests
   * through `forward` (secrets substituted) to the real host over TLS verified as any client would.
   */
  const intercepted = new WeakMap<Socket, Upstream>();
  const mitm = createHttpServer({ requestTimeout: 60_000, headersTimeout: 30_000, keepAliveTimeout: 30_000, maxHeaderSize: 32 * 1024 });
  mitm.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const to = intercepted.get(req.socket);
    if (!to) return void req.socket.destroy();
    // The request goes where its TLS went: a Host naming another server is refused, not sent there.
    const named = /^([^:]+)(?::\d{1,5})?$/.exec(req.headers.host ?? '')?.[1]?.toLowerCase().replace(/\.$/, '');
    if (named !== to.host) {
      opts.log.add(to.sandbox.id, { protocol: 'https', host: to.host, port: 443, method: req.method, path: req.url, decision: 'refused', reason: `Host ${String(req.headers.host ?? '').slice(0, 100)} is not the TLS server name` });
      return refuse(res, 421, `Cove egress: the Host header must name ${to.host}, the server this TLS connection is for`);
    }
    forward(req, res, to, req.url ?? '/').catch((err: Error) => {
      opts.log.add(to.sandbox.id, { protocol: 'https', host: to.host, port: 443, method: req.method, path: req.url, decision: 'allowed', reason: `failed: ${err.message}` });
      refuse(res, 502, `Cove egress: ${to.host} could not be reached: ${err.message}`);
    });
  });
  mitm.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const to = intercepted.get(req.socket);
    if (!to) return void socket.destroy();
    onUpgrade(req, socket, head, to).catch(() => socket.destroy());
  });
  mitm.on('clientError', (_err, socket) => socket.destroy());

  function intercept(socket: Socket, hello: Buffer, to: Upstream): void {
    opts.ca!.contextFor(to.host).then(
      (secureContext) => {
        if (socket.destroyed) return;
        // The ClientHello read so far comes first, for the TLS server to read.
        const tlsSocket = new TLSSocket(prefixed(socket, hello), { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] });
        tlsSocket.on('error', () => socket.destroy());
        intercepted.set(tlsSocket, to);
        track(tlsSocket);
        mitm.emit('connection', tlsSocket);
      },
      (err: Error) => {
        opts.logger.warn({ err: err.message }, 'egress proxy: no certificate could be made');
        opts.log.add(to.sandbox.id, { protocol: 'https', host: to.host, port: 443, decision: 'refused', reason: 'no certificate could be made' });
        socket.end(tlsAlert('internal_error'));
      },
    );
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
      httpsAgent.destroy();
      await Promise.all([new Promise((r) => http.close(r)), new Promise((r) => tls.close(r))]);
    },
  };
}
