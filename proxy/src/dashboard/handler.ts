import { readFile, lstat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoveError } from '../../../lib/errors';
import { settle } from '../../../lib/guard';
import { sendError } from '../../../lib/http/node';
import { ERROR_SOURCE } from '../../../wire/errors';
import { contentTypeOf, dashboardTarget, isDashboardPath } from './paths';

/**
 * The built dashboard: `dashboard/` beside the bundle that runs (dist/cli.mjs → dist/dashboard/, where
 * scripts/build.mjs writes it); from source (proxy/src/dashboard/), the checkout's dist/dashboard/.
 */
export function builtDashboardDir(moduleFile: string = fileURLToPath(import.meta.url)): string {
  const here = path.dirname(moduleFile);
  return moduleFile.endsWith('.ts') ? path.resolve(here, '../../../dist/dashboard') : path.join(here, 'dashboard');
}

/**
 * What the page may load and talk to: only this origin (the API, the toolbox and its WebSockets); inline styles
 * because the terminal (xterm.js) sizes its rows with style elements it creates. Keeps a script injected through
 * data shown on the page from running, and the page from being framed.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; " +
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/**
 * Serves the dashboard's static files at `/dashboard/…` without authentication: they hold no data (every data call
 * of the page carries the API key the user signed in with). GET and HEAD only; ETags from size and modification
 * time, and `no-cache` so a rebuilt dashboard is picked up at the next load while unchanged files cost a 304.
 * Unknown files are the usual 404 envelope.
 */
export function createDashboardHandler(opts: { root: string }) {
  const root = path.resolve(opts.root);

  async function serve(req: IncomingMessage, res: ServerResponse, file: string): Promise<void> {
    const full = path.join(root, file);
    // paths.ts admits plain names only; this is the second lock on the same door.
    if (!full.startsWith(root + path.sep)) throw new CoveError('NOT_FOUND', `No dashboard file /${file}`);
    const stat = await lstat(full).catch(() => undefined);
    if (!stat?.isFile()) {
      const built = await lstat(root).catch(() => undefined);
      const hint = built ? '' : ' (the dashboard is not built: run npm run build)';
      throw new CoveError('NOT_FOUND', `No dashboard file /${file}${hint}`);
    }
    const etag = `"${stat.size.toString(36)}-${Math.trunc(stat.mtimeMs).toString(36)}"`;
    const headers: Record<string, string | number> = {
      'content-type': contentTypeOf(file),
      etag,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      ...(file.endsWith('.html') ? PAGE_HEADERS : {}),
    };
    const match = req.headers['if-none-match'];
    if (match !== undefined && match.split(',').some((tag) => tag.trim() === etag || tag.trim() === `W/${etag}`)) {
      res.writeHead(304, headers).end();
      return;
    }
    const body = req.method === 'HEAD' ? undefined : await readFile(full);
    res.writeHead(200, { ...headers, 'content-length': body?.length ?? stat.size }).end(body);
  }

  return {
    /** Whether the request is the dashboard's (`/dashboard`, `/dashboard/…`). */
    handles: (url: string | undefined): boolean => isDashboardPath(url),

    request(req: IncomingMessage, res: ServerResponse): void {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        throw new CoveError('METHOD_NOT_ALLOWED', `The dashboard's files are read with GET or HEAD, not ${req.method}`);
      }
      const target = dashboardTarget(req.url ?? '/');
      if ('redirect' in target) {
        res.writeHead(301, { location: target.redirect, 'cache-control': 'no-cache' }).end();
        return;
      }
      if ('missing' in target) throw new CoveError('NOT_FOUND', `No dashboard file ${target.missing}`);
      settle('dashboard file', serve(req, res, target.file), (error) => sendError(res, error, ERROR_SOURCE.proxy));
    },
  };
}
