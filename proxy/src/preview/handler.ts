import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { CoveError } from '../../../lib/errors';
import { HOP_BY_HOP_HEADERS } from '../../../lib/http/headers';
import { rejectSocket } from '../../../lib/http/node';
import { requestHead, splice } from '../../../lib/net/splice';
import { ERROR_SOURCE } from '../../../wire/errors';
import { bearerOf } from '../auth/principal';
import type { KeysService } from '../auth/api-keys';
import type { SandboxRecord } from '../sandboxes/repo';
import type { SandboxService } from '../sandboxes/service';
import { guard, settle, unexpected } from '../../../lib/guard';
import { connectToPort, PreviewAgent, type PortTarget } from './connect';
import { cookiesWithout, cookieValue, setCookieAllowed } from './cookies';
import { isPreviewCookie, isTokenParam, PREVIEW_COOKIE, PREVIEW_COOKIE_SECURE, TOKEN_HEADERS, TOKEN_PARAMS, type CredentialCheck } from './credentials';
import { parseQuery, splitTarget, targetWithout, type QueryParam } from './target';
import type { PreviewHost } from './host';
import { sendPreviewError, wantsHtml } from './pages';
import type { PreviewTokens } from '../auth/preview-tokens';
import type { CoveMetrics } from '../metrics/registry';

const HOP_BY_HOP = new Set(HOP_BY_HOP_HEADERS);
/** What a relay passes on of those: it forwards bodies and connection state as they are on the wire. */
const HOP_BY_HOP_RELAYED = new Set(['proxy-authenticate', 'proxy-authorization']);
/** No Cove secret is shorter (API keys given by operators included): shorter values are not looked up. */
const MIN_SECRET = 16;
/** Headers that may carry a credential of the caller's: forwarded only when they carry none of Cove's. */
const AUTH_HEADERS = ['authorization', 'proxy-authorization'];

/** What is read of a request: an IncomingMessage, or a head parsed by the connection relay. */
type RequestLike = Pick<IncomingMessage, 'method' | 'url' | 'headers'>;

interface Access {
  record: SandboxRecord;
  /** Admitted by an API key in Authorization. */
  byKey: boolean;
  /** A token from the query, to set as the cookie. */
  setCookie?: string;
}

/**
 * Preview traffic: `{port}-{sandboxId}.{domain}` (and signed `{port}-{token}.{domain}`) to that port of that sandbox.
 * Private by default; see authorize() for the accepted credentials. The app sees `Host: localhost:{port}` (so dev
 * servers that check Host, like Vite, accept it) with X-Forwarded-Host/Proto/For telling the real origin. No Cove
 * credential ever reaches it, however the request was admitted: token headers, token parameters (in any encoding),
 * our cookie, and any Authorization that carries a Cove key or token are removed.
 */
export function createPreviewHandler(opts: {
  sandboxes: SandboxService;
  keys: KeysService;
  tokens: PreviewTokens;
  credentials: CredentialCheck;
  secure: boolean;
  /** Told whether each request and upgrade served here was admitted or refused, for /metrics (the relay's are counted where it logs them). */
  metrics?: Pick<CoveMetrics, 'preview'>;
}) {
  const agent = new PreviewAgent();
  const { sandboxes, keys, tokens, credentials } = opts;
  /** The cookie name we set and accept: over TLS only the `__Host-` form, which no sibling host can set. */
  const cookieName = opts.secure ? PREVIEW_COOKIE_SECURE : PREVIEW_COOKIE;

  /** Who may open this preview, in Daytona's order, or a 401/404/409. */
  function authorize(req: RequestLike, host: PreviewHost, params: QueryParam[]): Access {
    let record: SandboxRecord | undefined;
    if (host.signed) {
      const grant = tokens.verify(host.label);
      if (!grant || grant.port !== host.port) throw new CoveError('PREVIEW_UNAUTHORIZED', 'This preview link has expired or was revoked');
      record = sandboxes.find(grant.sandboxId);
      if (!record) throw new CoveError('SANDBOX_NOT_FOUND', 'The sandbox of this preview link no longer exists');
      return { record, byKey: false };
    }
    record = sandboxes.find(host.label);
    if (!record) throw new CoveError('SANDBOX_NOT_FOUND', `Sandbox ${host.label} not found`);
    const grants = (token: string | undefined) => {
      const grant = token ? tokens.verify(token) : undefined;
      return !!grant && grant.sandboxId === record.id && grant.port === host.port;
    };
    // CORS preflights carry no credentials by design: they go to the app, which answers them.
    const preflight = req.method === 'OPTIONS' && !!req.headers['access-control-request-method'];
    if (record.public || preflight) return { record, byKey: false };
    const key = bearerOf(req.headers);
    const principal = key ? keys.authenticate(key) : undefined;
    if (principal && sandboxes.mayUse(principal, record)) return { record, byKey: true };
    for (const name of TOKEN_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string' && grants(value)) return { record, byKey: false };
    }
    for (const name of TOKEN_PARAMS) {
      const value = params.find((p) => p.name === name)?.value;
      if (value && grants(value)) return { record, byKey: false, setCookie: value };
    }
    if (grants(cookieValue(req.headers.cookie, cookieName))) return { record, byKey: false };
    throw new CoveError('PREVIEW_UNAUTHORIZED', `This preview of port ${host.port} is private`);
  }

  function targetOf(record: SandboxRecord, port: number): PortTarget {
    if (record.state !== 'started' || !record.ip) {
      throw new CoveError('SANDBOX_NOT_STARTED', `The sandbox is ${record.state}; start it to open this preview`);
    }
    sandboxes.touch(record.id);
    return { ip: record.ip, port, agentToken: record.agentToken };
  }

  function upstreamHeaders(req: RequestLike, access: Access, port: number, remoteAddress: string | undefined, hopByHop = HOP_BY_HOP): http.OutgoingHttpHeaders {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || hopByHop.has(name) || TOKEN_HEADERS.includes(name) || name === 'cookie') continue;
      if (AUTH_HEADERS.includes(name) && ((access.byKey && name === 'authorization') || credentials.authorizationCarriesSecret(String(value)))) continue;
      headers[name] = value;
    }
    const cookie = cookiesWithout(req.headers.cookie, isPreviewCookie);
    if (cookie) headers.cookie = cookie;
    headers['x-forwarded-host'] = req.headers.host;
    headers['x-forwarded-proto'] = opts.secure ? 'https' : 'http';
    headers['x-forwarded-for'] = remoteAddress;
    headers.host = `localhost:${port}`;
    return headers;
  }

  function cookieHeader(token: string): string {
    return `${cookieName}=${token}; Path=/; HttpOnly; SameSite=Lax${opts.secure ? '; Secure' : ''}`;
  }

  /** Location headers that point at the app's own localhost address are turned back into the preview origin. */
  function rewriteLocation(location: string, host: string | undefined, port: number): string {
    const local = new RegExp(`^https?://(localhost|127\\.0\\.0\\.1|0\\.0\\.0\\.0):${port}(?=/|$)`);
    return location.replace(local, `${opts.secure ? 'https' : 'http'}://${host}`);
  }

  /**
   * Who is asking for what: the request target the app gets (our parameters removed), the access granted and the
   * port to reach; throws a CoveError (400 for a target that cannot be forwarded).
   */
  function admit(req: RequestLike, host: PreviewHost): { path: string; access: Access; target: PortTarget } {
    const url = req.url ?? '/';
    const split = splitTarget(url);
    // Our parameters by name (decoded, any case), and any parameter whose value is one of our secrets.
    const path = split && targetWithout(url, (p) => isTokenParam(p.name) || (p.value.length >= MIN_SECRET && credentials.isSecret(p.value)));
    if (!split || path === undefined) throw new CoveError('INVALID_REQUEST', 'The request target is not a path (expected /path?query)');
    const access = authorize(req, host, parseQuery(split.query));
    return { path, access, target: targetOf(access.record, host.port) };
  }

  /** The app's Set-Cookie values that may reach this preview host's browser (see setCookieAllowed). */
  function allowedSetCookies(value: string | string[] | undefined, host: string | undefined): string[] {
    const name = (host ?? '').replace(/:\d+$/, '');
    return ([] as string[]).concat(value ?? []).filter((c) => setCookieAllowed(c, name));
  }

  return {
    request(req: IncomingMessage, res: ServerResponse, host: PreviewHost): void {
      let path: string;
      let access: Access;
      let target: PortTarget;
      try {
        ({ path, access, target } = admit(req, host));
      } catch (err) {
        opts.metrics?.preview('refused');
        const error = unexpected(err, 'preview admission');
        sendPreviewError(req, res, error, error.code === 'PREVIEW_UNAUTHORIZED' ? 'Open the link you were given, or ask for a new one (getPreviewLink).' : undefined);
        return;
      }
      opts.metrics?.preview('admitted');
      // A token in the query becomes a cookie; browsers navigating get the same URL without it, so a reload works.
      if (access.setCookie && (req.method === 'GET' || req.method === 'HEAD') && wantsHtml(req)) {
        res.writeHead(302, { location: path, 'set-cookie': cookieHeader(access.setCookie), 'cache-control': 'no-store' }).end();
        return;
      }
      const upstream = http.request(
        {
          host: target.ip,
          port: host.port,
          method: req.method,
          path,
          headers: upstreamHeaders(req, access, host.port, req.socket.remoteAddress),
          agent,
          coveTarget: target,
        } as http.RequestOptions,
        guard(
          'preview response',
          (answer: IncomingMessage) => {
            // Node's parser reads a Transfer-Encoding that does not end in chunked as close-delimited; Cove refuses
            // it, as the relay does (a front proxy may frame it otherwise).
            const te = answer.headers['transfer-encoding'];
            if (te !== undefined && !/(^|,)\s*chunked\s*$/i.test(te)) {
              answer.destroy();
              throw new CoveError('BAD_UPSTREAM_RESPONSE', `The app on port ${host.port} sent a malformed HTTP response`, 'A Transfer-Encoding that does not end with chunked');
            }
            const headers: http.OutgoingHttpHeaders = {};
            for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
            if (headers.location) headers.location = rewriteLocation(String(headers.location), req.headers.host, host.port);
            const cookies = allowedSetCookies(answer.headers['set-cookie'], req.headers.host);
            if (access.setCookie) cookies.push(cookieHeader(access.setCookie));
            if (cookies.length) headers['set-cookie'] = cookies;
            else delete headers['set-cookie'];
            res.writeHead(answer.statusCode ?? 502, headers);
            // Streams (SSE, chunked) pass through as they come: no buffering, headers sent at once. A response of known
            // length goes out with its first chunk instead: one write, not two.
            if (answer.headers['content-length'] === undefined) res.flushHeaders();
            answer.pipe(res);
            answer.on('error', () => res.destroy());
          },
          (error) => sendPreviewError(req, res, error),
        ),
      );
      // A 101 to a request that asked for no upgrade (upgrades go through upgrade()).
      upstream.on('upgrade', (_answer: IncomingMessage, socket: net.Socket) => {
        socket.destroy();
        sendPreviewError(req, res, new CoveError('BAD_UPSTREAM_RESPONSE', `The app on port ${host.port} sent a malformed HTTP response`, '101 Switching Protocols to a request that did not ask for an upgrade'));
      });
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        const refused = err.code === 'ECONNREFUSED';
        sendPreviewError(
          req,
          res,
          new CoveError(refused ? 'PORT_NOT_LISTENING' : 'AGENT_UNREACHABLE', refused ? `Nothing is listening on port ${host.port} in the sandbox` : `Port ${host.port} of the sandbox did not answer`, err.message),
          refused ? `Start a server on port ${host.port} inside the sandbox (any address: 0.0.0.0 or 127.0.0.1), then reload.` : undefined,
        );
      });
      res.on('close', () => {
        if (!res.writableFinished) upstream.destroy();
      });
      req.pipe(upstream);
    },

    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, host: PreviewHost): void {
      let path: string;
      let access: Access;
      let target: PortTarget;
      try {
        ({ path, access, target } = admit(req, host));
      } catch (err) {
        opts.metrics?.preview('refused');
        rejectSocket(socket, unexpected(err, 'preview upgrade admission'), ERROR_SOURCE.proxy);
        return;
      }
      opts.metrics?.preview('admitted');
      const headers = upstreamHeaders(req, access, host.port, req.socket.remoteAddress);
      headers.connection = 'Upgrade';
      headers.upgrade = req.headers.upgrade;
      // Until the two are spliced, what the client sends waits in the socket (bounded by its buffer), unread.
      socket.pause();
      let pending: net.Socket | undefined;
      socket.once('close', () => pending?.destroy());
      settle(
        'preview upgrade',
        connectToPort(target).then(
          (upstream) => {
            if (socket.destroyed) return upstream.destroy();
            pending = upstream;
            upstream.write(requestHead(req.method ?? 'GET', path, headers));
            splice(socket, upstream, head);
            socket.resume();
          },
          (err: Error) => rejectSocket(socket, new CoveError('PORT_NOT_LISTENING', `Nothing is listening on port ${host.port} in the sandbox`, err.message), ERROR_SOURCE.proxy),
        ),
        (error) => {
          pending?.destroy();
          rejectSocket(socket, error, ERROR_SOURCE.proxy);
        },
      );
    },

    /**
     * For the connection relay: the head to write to the app for a request that goes to it as it is, with where to
     * send it; undefined when the request needs request() to answer (an error page, the cookie redirect, a Set-Cookie).
     */
    relayHead(req: RequestLike, host: PreviewHost, remoteAddress: string | undefined): { target: PortTarget; head: string } | undefined {
      let admitted;
      try {
        admitted = admit(req, host);
      } catch {
        return undefined;
      }
      const { path, access, target } = admitted;
      if (access.setCookie) return undefined;
      const headers = upstreamHeaders(req, access, host.port, remoteAddress, HOP_BY_HOP_RELAYED);
      return { target, head: requestHead(req.method!, path, headers) };
    },

    /** A response's Location as the client must see it (see rewriteLocation). */
    previewLocation(location: string, host: string, port: number): string {
      return rewriteLocation(location, host, port);
    },

    /** Whether the app's Set-Cookie may reach the browser of this preview host (see setCookieAllowed). */
    setCookieAllowed(setCookie: string, host: string): boolean {
      return setCookieAllowed(setCookie, host.replace(/:\d+$/, ''));
    },

    close(): void {
      agent.destroy();
    },
  };
}
export type PreviewHandler = ReturnType<typeof createPreviewHandler>;
