import type { IncomingMessage, ServerResponse } from 'node:http';

const ALLOW_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
/** What the Daytona SDK sends from a browser: its key, JSON bodies, and its X-Daytona-* headers. */
export const CORS_ALLOW_HEADERS = 'authorization, content-type, accept, x-daytona-source, x-daytona-sdk-version, x-daytona-organization-id';
/** Response headers a browser client may read besides the safelisted ones (file names of downloads, cut lists). */
const EXPOSE_HEADERS = 'Content-Disposition, Content-Length, X-Cove-Truncated';
const MAX_AGE_SECONDS = '600';

/** An origin as configured and as browsers send it: `*`, or `scheme://host[:port]` in lower case, no path. */
export function normalizeOrigin(text: string): string | undefined {
  const t = text.trim();
  if (t === '*') return t;
  try {
    const url = new URL(t);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    // Only an origin: no path, query, fragment or credentials. A default port is dropped, as browsers send it.
    if (url.pathname !== '/' || url.search || url.hash || url.username || url.password || /[?#]/.test(t)) return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/**
 * CORS for the control API and the toolbox, which browser clients call from another origin. Preflights are answered
 * here, before authentication (they carry no credentials), always 204; only an allowed origin gets
 * Access-Control-Allow-Origin, without which browsers refuse the call. Actual responses of allowed origins carry it
 * too; responses vary by Origin. No origin is allowed unless configured (`--cors-origins`, `COVE_CORS_ORIGINS`).
 */
export function createCors(origins: readonly string[]) {
  const any = origins.includes('*');
  const allowed = new Set(origins);
  return {
    /** Whether a request from `origin` may be served at all, for what browsers open without CORS (WebSockets); none: not a page. */
    allowsOrigin: (origin: string | undefined): boolean => origin === undefined || any || allowed.has(origin.toLowerCase()),
    /** Sets the CORS headers of this request's response; answers it (returns true) when it is a preflight. */
    handle(req: IncomingMessage, res: ServerResponse): boolean {
      const origin = req.headers.origin;
      if (origins.length && !any) res.setHeader('Vary', 'Origin');
      if (typeof origin === 'string' && (any || allowed.has(origin.toLowerCase()))) {
        res.setHeader('Access-Control-Allow-Origin', any ? '*' : origin);
        res.setHeader('Access-Control-Expose-Headers', EXPOSE_HEADERS);
      }
      if (req.method !== 'OPTIONS' || typeof req.headers['access-control-request-method'] !== 'string') return false;
      res.writeHead(204, {
        'Access-Control-Allow-Methods': ALLOW_METHODS,
        'Access-Control-Allow-Headers': CORS_ALLOW_HEADERS,
        'Access-Control-Max-Age': MAX_AGE_SECONDS,
      });
      res.end();
      return true;
    },
  };
}
export type Cors = ReturnType<typeof createCors>;
