import type { IncomingMessage, ServerResponse } from 'node:http';
import { CoveError } from '../../../lib/errors';
import { sendError } from '../../../lib/http/node';
import { ERROR_SOURCE } from '../../../wire/errors';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Whether the caller is a browser navigating (it gets pages), rather than an API client (it gets JSON). */
export function wantsHtml(req: Pick<IncomingMessage, 'headers'>): boolean {
  return (req.headers.accept ?? '').includes('text/html');
}

/** Answers a preview request with an error: a small page for browsers, the JSON envelope for everyone else. */
export function sendPreviewError(req: IncomingMessage, res: ServerResponse, error: CoveError, hint?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (wantsHtml(req)) {
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${error.status} · Cove preview</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:.1rem .3rem}</style>
</head><body><h1>${escape(error.message)}</h1>${hint ? `<p>${escape(hint)}</p>` : ''}<p><small>Cove preview · ${error.status} ${error.code}</small></p></body></html>`;
    res.writeHead(error.status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
    return;
  }
  sendError(res, error, ERROR_SOURCE.proxy);
}
