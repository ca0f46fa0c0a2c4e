import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { CoveError } from '../../../lib/http/errors';
import { rejectSocket } from '../../../lib/http/node';
import { requestHead, splice } from '../../../lib/net/splice';
import { ERROR_SOURCE } from '../../../wire/errors';
import { bearerOf } from '../http/principal';
import type { KeysService } from '../keys/service';
import type { SandboxRecord } from '../sandboxes/repo';
import type { SandboxService } from '../sandboxes/service';
import { connectToPort, PreviewAgent, type PortTarget } from './connect';
import type { PreviewHost } from './host';
import { sendPreviewError, wantsHtml } from './pages';
import type { PreviewTokens } from './tokens';

/** Header names that carry a preview token: Daytona's, and Cove's own. */
const TOKEN_HEADERS = ['x-daytona-preview-token', 'x-cove-preview-token'];
/** Query parameters that carry a preview token; removed before forwarding. */
const TOKEN_PARAMS = ['DAYTONA_SANDBOX_AUTH_KEY', 'cove_preview_token'];
/** The cookie set from a query token; host-only, so it is scoped to exactly this port of this sandbox. */
export const PREVIEW_COOKIE = 'cove_preview';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** What a relay passes on of those: it forwards bodies and connection state as they are on the wire. */
const HOP_BY_HOP_RELAYED = new Set(['proxy-authenticate', 'proxy-authorization']);

/** What is read of a request: an IncomingMessage, or a head parsed by the connection relay. */
type RequestLike = Pick<IncomingMessage, 'method' | 'url' | 'headers'>;

interface Access {
  record: SandboxRecord;
  /** Headers and query parameters that carried our credentials: never forwarded to the app. */
  strip: { headers: string[]; params: string[] };
  /** A token from the query, to set as the cookie. */
  setCookie?: string;
}

function cookieOf(req: RequestLike, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/** The Cookie header without our cookie (the app never sees it). */
function cookiesWithout(req: RequestLike, name: string): string | undefined {
  const kept = (req.headers.cookie ?? '')
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p && !p.startsWith(`${name}=`));
  return kept.length ? kept.join('; ') : undefined;
}

/**
 * Preview traffic: `{port}-{sandboxId}.{domain}` (and signed `{port}-{token}.{domain}`) to that port of that sandbox.
 * Private by default; see authorize() for the accepted credentials. The app sees `Host: localhost:{port}` (so dev
 * servers that check Host, like Vite, accept it) with X-Forwarded-Host/Proto/For telling the real origin.
 */
export function createPreviewHandler(opts: { sandboxes: SandboxService; keys: KeysService; tokens: PreviewTokens; secure: boolean }) {
  const agent = new PreviewAgent();
  const { sandboxes, keys, tokens } = opts;

  /** Who may open this preview, in Daytona's order, or a 401/404/409. */
  function authorize(req: RequestLike, host: PreviewHost, query: () => URLSearchParams): Access {
    // Our token headers and parameters never reach the app, whichever credential (if any) opened the preview.
    const strip = { headers: TOKEN_HEADERS, params: TOKEN_PARAMS };
    let record: SandboxRecord | undefined;
    if (host.signed) {
      const grant = tokens.verify(host.label);
      if (!grant || grant.port !== host.port) throw new CoveError('PREVIEW_UNAUTHORIZED', 'This preview link has expired or was revoked');
      record = sandboxes.find(grant.sandboxId);
      if (!record) throw new CoveError('SANDBOX_NOT_FOUND', 'The sandbox of this preview link no longer exists');
      return { record, strip };
    }
    record = sandboxes.find(host.label);
    if (!record) throw new CoveError('SANDBOX_NOT_FOUND', `Sandbox ${host.label} not found`);
    const grants = (token: string | undefined) => {
      const grant = token ? tokens.verify(token) : undefined;
      return !!grant && grant.sandboxId === record!.id && grant.port === host.port;
    };
    // CORS preflights carry no credentials by design: they go to the app, which answers them.
    const preflight = req.method === 'OPTIONS' && !!req.headers['access-control-request-method'];
    if (record.public || preflight) return { record, strip };
    const key = bearerOf(req.headers);
    const principal = key ? keys.authenticate(key) : undefined;
    if (principal && sandboxes.mayUse(principal, record)) return { record, strip: { headers: [...TOKEN_HEADERS, 'authorization'], params: TOKEN_PARAMS } };
    for (const name of TOKEN_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string' && grants(value)) return { record, strip };
    }
    for (const name of TOKEN_PARAMS) {
      const value = query().get(name);
      if (value && grants(value)) return { record, strip, setCookie: value };
    }
    if (grants(cookieOf(req, PREVIEW_COOKIE))) return { record, strip };
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
      if (hopByHop.has(name) || access.strip.headers.includes(name) || name === 'cookie') continue;
      headers[name] = value;
    }
    const cookie = cookiesWithout(req, PREVIEW_COOKIE);
    if (cookie) headers.cookie = cookie;
    headers['x-forwarded-host'] = req.headers.host;
    headers['x-forwarded-proto'] = opts.secure ? 'https' : 'http';
    headers['x-forwarded-for'] = remoteAddress;
    headers.host = `localhost:${port}`;
    return headers;
  }

  /** The request target without our credentials; left exactly as sent when it carries none. */
  function upstreamPath(target: string, access: Access): string {
    if (!access.strip.params.some((p) => target.includes(p))) return target;
    const url = new URL(target, 'http://preview');
    for (const p of access.strip.params) url.searchParams.delete(p);
    return `${url.pathname}${url.search}`;
  }

  function cookieHeader(token: string): string {
    return `${PREVIEW_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax${opts.secure ? '; Secure' : ''}`;
  }

  /** Location headers that point at the app's own localhost address are turned back into the preview origin. */
  function rewriteLocation(location: string, host: string | undefined, port: number): string {
    const local = new RegExp(`^https?://(localhost|127\\.0\\.0\\.1|0\\.0\\.0\\.0):${port}(?=/|$)`);
    return location.replace(local, `${opts.secure ? 'https' : 'http'}://${host}`);
  }

  /** Who is asking for what: the request target, the access granted and the port to reach; throws a CoveError. */
  function admit(req: RequestLike, host: PreviewHost): { url: string; access: Access; target: PortTarget } {
    const url = req.url ?? '/';
    let query: URLSearchParams | undefined;
    const access = authorize(req, host, () => (query ??= new URL(url, 'http://preview').searchParams));
    return { url, access, target: targetOf(access.record, host.port) };
  }

  return {
    request(req: IncomingMessage, res: ServerResponse, host: PreviewHost): void {
      let url: string;
      let access: Access;
      let target: PortTarget;
      try {
        ({ url, access, target } = admit(req, host));
      } catch (err) {
        const error = err as CoveError;
        sendPreviewError(req, res, error, error.code === 'PREVIEW_UNAUTHORIZED' ? 'Open the link you were given, or ask for a new one (getPreviewLink).' : undefined);
        return;
      }
      // A token in the query becomes a cookie; browsers navigating get the same URL without it, so a reload works.
      if (access.setCookie && (req.method === 'GET' || req.method === 'HEAD') && wantsHtml(req)) {
        res.writeHead(302, { location: upstreamPath(url, access), 'set-cookie': cookieHeader(access.setCookie), 'cache-control': 'no-store' }).end();
        return;
      }
      const upstream = http.request(
        {
          host: target.ip,
          port: host.port,
          method: req.method,
          path: upstreamPath(url, access),
          headers: upstreamHeaders(req, access, host.port, req.socket.remoteAddress),
          agent,
          coveTarget: target,
        } as http.RequestOptions,
        (answer) => {
          const headers: http.OutgoingHttpHeaders = {};
          for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
          if (headers.location) headers.location = rewriteLocation(String(headers.location), req.headers.host, host.port);
          if (access.setCookie) headers['set-cookie'] = [...([] as string[]).concat(headers['set-cookie'] ?? []), cookieHeader(access.setCookie)];
          res.writeHead(answer.statusCode ?? 502, headers);
          // Streams (SSE, chunked) pass through as they come: no buffering, headers sent at once. A response of known
          // length goes out with its first chunk instead: one write, not two.
          if (answer.headers['content-length'] === undefined) res.flushHeaders();
          answer.pipe(res);
          answer.on('error', () => res.destroy());
        },
      );
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
      let url: string;
      let access: Access;
      let target: PortTarget;
      try {
        ({ url, access, target } = admit(req, host));
      } catch (err) {
        rejectSocket(socket, err as CoveError, ERROR_SOURCE.proxy);
        return;
      }
      const headers = upstreamHeaders(req, access, host.port, req.socket.remoteAddress);
      headers.connection = 'Upgrade';
      headers.upgrade = req.headers.upgrade;
      connectToPort(target).then(
        (upstream) => {
          upstream.write(requestHead(req.method ?? 'GET', upstreamPath(url, access), headers));
          splice(socket, upstream, head);
        },
        (err: Error) => rejectSocket(socket, new CoveError('PORT_NOT_LISTENING', `Nothing is listening on port ${host.port} in the sandbox`, err.message), ERROR_SOURCE.proxy),
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
      const { url, access, target } = admitted;
      if (access.setCookie) return undefined;
      const headers = upstreamHeaders(req, access, host.port, remoteAddress, HOP_BY_HOP_RELAYED);
      return { target, head: requestHead(req.method!, upstreamPath(url, access), headers) };
    },

    /** A response's Location as the client must see it (see rewriteLocation). */
    previewLocation(location: string, host: string, port: number): string {
      return rewriteLocation(location, host, port);
    },

    close(): void {
      agent.destroy();
    },
  };
}
export type PreviewHandler = ReturnType<typeof createPreviewHandler>;
