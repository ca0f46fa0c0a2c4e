import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { CoveError } from '../../../lib/errors';
import { guard, settle, unexpected } from '../../../lib/guard';
import { answerClientErrors, listen, sendError } from '../../../lib/http/node';
import { ERROR_SOURCE } from '../../../wire/errors';
import type { KeysService } from '../auth/api-keys';
import { authenticate } from '../auth/principal';
import type { Metrics } from './registry';

const METRICS_PATH = '/metrics';

/** Whether a request target is `/metrics` (a query, as Prometheus may add, is ignored). */
export function isMetricsPath(url: string | undefined): boolean {
  return url === METRICS_PATH || (url?.startsWith(`${METRICS_PATH}?`) ?? false);
}

/**
 * Answers a scrape of `/metrics` with the Prometheus text format. With `keys` (the main listener) only an admin API
 * key may read it: 401 without a valid key, 403 for another key. Without (the operator's own listener, see
 * startMetricsListener) anyone who reaches the address may. Errors are Cove's envelope.
 */
export function serveMetrics(req: IncomingMessage, res: ServerResponse, metrics: Pick<Metrics, 'exposition'>, keys?: KeysService): void {
  try {
    if (keys && !authenticate(keys, req.headers).admin) throw new CoveError('FORBIDDEN', 'Only admin API keys may read /metrics');
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new CoveError('METHOD_NOT_ALLOWED', `${METRICS_PATH} answers GET and HEAD, not ${req.method}`);
  } catch (err) {
    sendError(res, unexpected(err, 'metrics'), ERROR_SOURCE.api);
    return;
  }
  settle(
    'metrics scrape',
    metrics.exposition().then(({ contentType, body }) => {
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
    }),
    (error) => sendError(res, error, ERROR_SOURCE.api),
  );
}

/**
 * `--metrics-listen HOST:PORT`: a listener of its own that serves `/metrics` without authentication, for operators who
 * bind it to an address only their Prometheus reaches. Everything else there is a 404. Answers the URL to scrape.
 */
export async function startMetricsListener(opts: { host: string; port: number; metrics: Pick<Metrics, 'exposition'> }): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(
    { keepAliveTimeout: 65_000 },
    guard(
      'metrics request',
      (req: IncomingMessage, res: ServerResponse) => {
        if (!isMetricsPath(req.url)) throw new CoveError('NOT_FOUND', `This listener serves ${METRICS_PATH} only`);
        serveMetrics(req, res, opts.metrics);
      },
      (error, _req, res) => sendError(res, error, ERROR_SOURCE.api),
    ),
  );
  answerClientErrors(server, ERROR_SOURCE.api);
  const { url } = await listen(server, opts.port, opts.host);
  return {
    url: `${url}${METRICS_PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
