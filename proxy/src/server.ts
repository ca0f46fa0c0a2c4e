import { getRequestListener } from '@hono/node-server';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { guard, settle, unexpected } from '../../lib/guard';
import { CoveError } from '../../lib/errors';
import { answerClientErrors, closeUnreadBodies, listen, rejectSocket, sendError } from '../../lib/http/node';
import { ERROR_SOURCE } from '../../wire/errors';
import { API_BASE, createApiApp, type ApiOptions } from './app';
import { parsePreviewHost } from './preview/host';
import type { PreviewHandler } from './preview/handler';
import { createRelay } from './preview/relay';
import type { Cors } from './http/cors';
import type { EventsGateway } from './events/gateway';
import type { ToolboxAccess } from './toolbox/access';
import type { ToolboxForwarder } from './toolbox/forward';
import { isToolboxHost, legacyToolboxCall } from './toolbox/legacy';
import { AGENT_PORT } from '../../wire/agent';
import type { Metrics, RouteFamily } from './metrics/registry';
import { isMetricsPath, serveMetrics } from './metrics/routes';
import { builtDashboardDir, createDashboardHandler } from './dashboard/handler';

export const TOOLBOX_BASE = '/toolbox';
/** Where the Daytona SDK opens its Socket.IO connection for state events: `{apiUrl}/socket.io/`. */
export const EVENTS_PATH = `${API_BASE}/socket.io/`;

/**
 * `/toolbox/{id}/rest…` → id and the agent path with its query; undefined for other paths. A sandbox id whose
 * percent-encoding does not decode is a 400, never an exception.
 */
function toolboxPath(url: string): { sandboxId: string; path: string } | undefined {
  if (!url.startsWith(`${TOOLBOX_BASE}/`)) return undefined;
  const rest = url.slice(TOOLBOX_BASE.length + 1);
  const cut = rest.search(/[/?]/);
  let sandboxId: string;
  try {
    sandboxId = decodeURIComponent(cut < 0 ? rest : rest.slice(0, cut));
  } catch {
    throw new CoveError('INVALID_REQUEST', 'The sandbox id in the path has malformed percent-encoding');
  }
  let path = cut < 0 ? '/' : rest.slice(cut);
  if (path.startsWith('?')) path = `/${path}`;
  return sandboxId ? { sandboxId, path } : undefined;
}


/**
 * The proxy's one listener. Connections start in the preview relay (preview/relay.ts), which forwards admitted preview
 * requests itself and hands everything else to the HTTP server: `/toolbox/{id}/…` is forwarded to that sandbox's
 * agent (HTTP and WebSocket), `/api/socket.io/` is the Socket.IO of state events (events/; HTTP and WebSocket),
 * `/api/…` is the control API, and preview requests that need an answer of ours (errors, the cookie redirect) are
 * served by the preview handler. Logs one line per request, without credentials or queries.
 */
export async function startProxyServer(
  opts: ApiOptions & { host: string; port: number; forwarder: ToolboxForwarder; toolboxAccess: ToolboxAccess; cors: Cors; preview: PreviewHandler; events: EventsGateway; log: Logger; metrics?: Metrics },
): Promise<{ server: Server; port: number; url: string; close(): Promise<void> }> {
  const apiListener = getRequestListener(createApiApp(opts).fetch);
  const dashboard = createDashboardHandler({ root: builtDashboardDir() });
  const { log } = opts;

  function logRequest(req: IncomingMessage, res: ServerResponse, started: bigint): void {
    res.once('close', () => {
      const path = (req.url ?? '').split('?')[0];
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log.info({ method: req.method, path, status: res.statusCode, ms }, 'request');
      opts.metrics?.requestDone(familyOf(req), res.statusCode, ms / 1000);
    });
  }

  const toolboxPrefix = `${TOOLBOX_BASE}/`;
  const legacyToolboxPrefix = `${API_BASE}/toolbox/`;
  /** The family /metrics counts a request under, decided as onRequest routes it (only when metrics are kept). */
  function familyOf(req: IncomingMessage): RouteFamily {
    const url = req.url ?? '';
    const preview = parsePreviewHost(req.headers.host, opts.previewDomain);
    if (preview) return isToolboxHost(preview) ? 'toolbox' : 'preview';
    if (url.startsWith(toolboxPrefix) || url.startsWith(legacyToolboxPrefix)) return 'toolbox';
    if (opts.events.handles(url)) return 'events';
    if (opts.objectStorage.handles(url)) return 'object-storage';
    return url.startsWith(API_BASE) ? 'api' : 'other';
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    logRequest(req, res, process.hrtime.bigint());
    // Routing is by Host: a preview host goes to that port of that sandbox, anything else is API or toolbox.
    const preview = parsePreviewHost(req.headers.host, opts.previewDomain);
    // Older SDKs' toolbox addresses (toolbox/legacy.ts) are toolbox calls, whatever host or prefix they came by.
    const legacy = legacyToolboxCall(req.url ?? '/', preview);
    if (preview && !legacy) {
      opts.preview.request(req, res, preview);
      return;
    }
    const toolbox = legacy ?? toolboxPath(req.url ?? '/');
    const api = !toolbox && (req.url ?? '').startsWith(API_BASE);
    // CORS preflights are answered before any authentication: they carry no credentials.
    if ((toolbox || api) && opts.cors.handle(req, res)) return;
    if (toolbox) {
      const { target, path } = opts.toolboxAccess.request(req, toolbox.sandboxId, toolbox.path);
      opts.forwarder.request(req, res, target, path);
      return;
    }
    if (opts.events.handles(req.url)) {
      opts.events.request(req, res);
      return;
    }
    // The S3-compatible endpoint of build contexts: its own authentication (AWS signatures of push-access credentials).
    if (opts.objectStorage.handles(req.url)) {
      opts.objectStorage.request(req, res);
      return;
    }
    // Prometheus metrics for operators: admin API keys only (metrics/routes.ts).
    if (opts.metrics && isMetricsPath(req.url)) {
      serveMetrics(req, res, opts.metrics, opts.keys);
      return;
    }
    if (api) {
      settle('api request', apiListener(req, res), (error) => sendError(res, error, ERROR_SOURCE.api));
      return;
    }
    // The web dashboard's static files (dashboard/): no data in them, so no authentication.
    if (dashboard.handles(req.url)) {
      dashboard.request(req, res);
      return;
    }
    throw new CoveError('NOT_FOUND', `No route for ${req.method} ${(req.url ?? '').split('?')[0]}; the API is under ${API_BASE}`);
  };
  const server = createServer(
    { requestTimeout: 0, keepAliveTimeout: 65_000 },
    guard('request', onRequest, (error, req, res) => sendError(res, error, (req.url ?? '').startsWith(API_BASE) ? ERROR_SOURCE.api : ERROR_SOURCE.proxy)),
  );

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      const preview = parsePreviewHost(req.headers.host, opts.previewDomain);
      const legacy = legacyToolboxCall(req.url ?? '/', preview);
      if (preview && !legacy) {
        // Never the host: a signed preview host carries its token.
        log.info({ method: 'UPGRADE', path: (req.url ?? '').split('?')[0], preview: true }, 'request');
        opts.preview.upgrade(req, socket, head, preview);
        return;
      }
      if (opts.events.handles(req.url)) {
        log.info({ method: 'UPGRADE', path: (req.url ?? '').split('?')[0] }, 'request');
        opts.events.upgrade(req, socket, head);
        return;
      }
      const toolbox = legacy ?? toolboxPath(req.url ?? '/');
      if (!toolbox) throw new CoveError('NOT_FOUND', `WebSocket upgrades are served under /toolbox/{sandboxId}/ and ${EVENTS_PATH}`);
      // SDK 0.108's port-2280 host takes that port's preview token, in its header too (legacy.ts).
      const tokens = legacy?.via === 'agent-port' ? { port: AGENT_PORT, header: true } : undefined;
      const { target, path } = opts.toolboxAccess.upgrade(req, toolbox.sandboxId, toolbox.path, tokens);
      log.info({ method: 'UPGRADE', path: (req.url ?? '').split('?')[0] }, 'request');
      opts.forwarder.upgrade(req, socket, head, target, path);
    } catch (err) {
      rejectSocket(socket, unexpected(err, 'upgrade'), ERROR_SOURCE.proxy);
    }
  });
  answerClientErrors(server, ERROR_SOURCE.api);
  closeUnreadBodies(server);
  const relay = createRelay({
    preview: opts.preview,
    previewDomain: opts.previewDomain,
    isToolboxHost,
    handOff: (socket) => server.emit('connection', socket),
    logRequest: (entry) => {
      log.info(entry, 'request');
      opts.metrics?.requestDone('preview', entry.status, entry.ms / 1000);
      opts.metrics?.preview('relayed');
    },
  });
  const front = net.createServer({ noDelay: true }, (socket) => relay.accept(socket));
  const { port, url } = await listen(front, opts.port, opts.host);
  trackConnectionsWithoutListening(server);
  return {
    server,
    port,
    url,
    async close() {
      // Upgraded connections are the HTTP server's no longer: the gateway closes its WebSockets itself.
      await opts.events.close();
      opts.forwarder.close();
      opts.preview.close();
      relay.closeAll();
      server.closeAllConnections();
      // Stops its connection checks; it has no listening socket of its own, so the callback gets "not running".
      server.close(() => {});
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
}

/**
 * Starts what a Node HTTP server does once it listens — the list of connections that closeAllConnections() and the
 * headersTimeout/requestTimeout checks act on — for a server that never listens itself and gets its connections
 * through `emit('connection')` (from the relay). Node has no public call for it: as of Node 20, http.Server starts it
 * from its own 'listening' event (setupConnectionsTracking), so this emits that event. test/private-apis.test.ts fails
 * if a Node update changes that.
 */
export function trackConnectionsWithoutListening(server: Server): void {
  server.emit('listening');
}
