/**
 * Which file of the built dashboard (dist/dashboard/) a request path names. Pure: no file system, no HTTP.
 * Only plain names are served — letters, digits, `.`, `_`, `-`, never starting with a dot — so `..`, hidden files,
 * encoded slashes or backslashes and NUL bytes can never reach outside the folder.
 */

/** Where the dashboard is served: `/dashboard/` and the files under it. */
const DASHBOARD_BASE = '/dashboard';

/** One path segment as it may name a dashboard file. */
const SAFE_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** The answer for a `/dashboard…` request: a redirect to the folder's URL, a file relative to the folder, or nothing. */
type DashboardTarget = { redirect: string } | { file: string } | { missing: string };

const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json; charset=utf-8',
  json: 'application/json; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  ico: 'image/x-icon',
  woff2: 'font/woff2',
  txt: 'text/plain; charset=utf-8',
};

/** Whether a request target belongs to the dashboard (`/dashboard`, `/dashboard/…`, with any query). */
export function isDashboardPath(url: string | undefined): boolean {
  const pathname = (url ?? '').split('?', 1)[0];
  return pathname === DASHBOARD_BASE || pathname.startsWith(`${DASHBOARD_BASE}/`);
}

/**
 * The file a dashboard request target names: `/dashboard` redirects to `/dashboard/` (keeping the query), the folder
 * itself is `index.html`, anything that is not a plain relative name is `missing` (answered 404 like a file that is
 * not there, so probing learns nothing).
 */
export function dashboardTarget(url: string): DashboardTarget {
  const cut = url.indexOf('?');
  const pathname = cut < 0 ? url : url.slice(0, cut);
  if (pathname === DASHBOARD_BASE) return { redirect: `${DASHBOARD_BASE}/${cut < 0 ? '' : url.slice(cut)}` };
  const rest = pathname.slice(DASHBOARD_BASE.length + 1);
  if (rest === '') return { file: 'index.html' };
  const segments: string[] = [];
  for (const raw of rest.split('/')) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return { missing: pathname };
    }
    if (!SAFE_SEGMENT.test(segment)) return { missing: pathname };
    segments.push(segment);
  }
  return { file: segments.join('/') };
}

/** The Content-Type of a dashboard file, by its extension. */
export function contentTypeOf(file: string): string {
  const dot = file.lastIndexOf('.');
  return (dot >= 0 && CONTENT_TYPES[file.slice(dot + 1).toLowerCase()]) || 'application/octet-stream';
}
