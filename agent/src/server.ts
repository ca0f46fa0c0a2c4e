import { getRequestListener, RequestError } from '@hono/node-server';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import { SDK_VERSION_PROTOCOL_PREFIX } from '../../wire/common';
import { ERROR_SOURCE } from '../../wire/errors';
import { createAgentApp, type AgentApp } from './app';
import { guard } from '../../lib/guard';
import { boundaryError, closeWithError } from './boundary';
import { CoveError } from '../../lib/errors';
import { answerClientErrors, listen, rejectSocket, sendError } from '../../lib/http/node';
import { parseOrThrow, type WsRoute } from '../../lib/http/router';
import type { SandboxContext } from './system/context';

/** The envelope as a Response, for requests that never reach the app's own onError. */
function errorResponse(error: CoveError): Response {
  return new Response(JSON.stringify(error.toBody(ERROR_SOURCE.agent)), {
    status: error.status,
    headers: { 'Content-Type': 'application/json' },
  });
}

/** Refuses an upgrade with the envelope, or cuts the connection if its handler already answered (a 101). */
function refuseUpgrade(socket: Duplex, error: CoveError): void {
  if ((socket as Socket).bytesWritten > 0) socket.destroy();
  else rejectSocket(socket, error, ERROR_SOURCE.agent);
}

/** The request target of an upgrade as a URL; a target that is no path (or no URL at all) is a 400. */
function upgradeUrl(target: string | undefined): URL {
  if (!target?.startsWith('/')) throw new CoveError('INVALID_REQUEST', 'The request target of an upgrade must be a path');
  try {
    return new URL(`http://agent${target}`);
  } catch {
    throw new CoveError('INVALID_REQUEST', 'The request target is not a valid URL path');
  }
}

/** A route's path parameters; invalid percent-encoding in them is a 400. */
function matchRoute(route: WsRoute, pathname: string): Record<string, string> | undefined {
  try {
    return route.match(pathname);
  } catch {
    throw new CoveError('INVALID_REQUEST', `Invalid percent-encoding in the path ${pathname.slice(0, 200)}`);
  }
}

interface RunningAgent {
  url: string;
  port: number;
  agent: AgentApp;
  server: Server;
  close(): Promise<void>;
}

/** Starts the agent's HTTP and WebSocket server. Port 0 picks a free port. */
export async function startAgentServer(opts: {
  host: string;
  port: number;
  token: string;
  ctx: SandboxContext;
  /** Called once, when the first request with the token arrives. */
  onFirstAuthorized?: () => void;
}): Promise<RunningAgent> {
  const agent = createAgentApp({ token: opts.token, ctx: opts.ctx, onFirstAuthorized: opts.onFirstAuthorized });
  // Requests Hono cannot even turn into a Request (a bad Host or target) get the envelope too, as a 400.
  const requestListener = getRequestListener(agent.app.fetch, {
    errorHandler: (err) =>
      errorResponse(err instanceof RequestError ? new CoveError('INVALID_REQUEST', `Invalid request: ${err.message}`) : boundaryError(err, 'HTTP request')),
  });
  // Without a Host header Node would answer 400 itself, with an empty body: Hono refuses it instead, in the envelope.
  const server = createServer({ requestTimeout: 0, keepAliveTimeout: 65_000, requireHostHeader: false }, (req, res) => void requestListener(req, res));
  const routeOf = new WeakMap<IncomingMessage, WsRoute>();
  // Made on the first upgrade: `ws` (and the https, tls and zlib modules it loads) is not needed by an idle agent.
  // esbuild turns this `require` of a bundled module into a lazily evaluated wrapper.
  let wss: WebSocketServer | undefined;
  const webSockets = () => {
    if (wss) return wss;
    wss = new (require('ws') as typeof import('ws')).WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      handleProtocols: (offered, req) => {
        const pick = routeOf.get(req)?.spec.protocols;
        if (pick) return pick([...offered]);
        return [...offered].find((p) => p.startsWith(SDK_VERSION_PROTOCOL_PREFIX)) ?? false;
      },
    });
    // A handshake ws cannot accept (no key, a wrong version or Upgrade value) is answered with the envelope too.
    wss.on('wsClientError', (err, socket) => rejectSocket(socket, new CoveError('INVALID_REQUEST', `Invalid WebSocket handshake: ${err.message}`), ERROR_SOURCE.agent));
    return wss;
  };

  /** Routes one upgrade; anything thrown is answered on this connection by the caller. */
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!agent.isAuthorized(req.headers.authorization)) throw new CoveError('UNAUTHORIZED', 'Missing or invalid bearer token');
    const url = upgradeUrl(req.url);
    for (const route of agent.router.wsRoutes) {
      const params = matchRoute(route, url.pathname);
      if (!params) continue;
      const query = route.spec.query ? parseOrThrow(route.spec.query, Object.fromEntries(url.searchParams), 'query') : {};
      if (route.handleRaw) {
        route.handleRaw({ socket, head, params, query, req });
        return;
      }
      routeOf.set(req, route);
      webSockets().handleUpgrade(req, socket, head, (ws) => {
        // Protocol errors (bad frames, invalid UTF-8, oversized messages) end this socket with a close code; ws
        // emits them as 'error' too, which must not reach the process.
        ws.on('error', () => {});
        try {
          route.handle!({ socket: ws, params, query, req });
        } catch (err) {
          closeWithError(ws, boundaryError(err, `WebSocket ${route.spec.path}`));
        }
      });
      return;
    }
    throw new CoveError('NOT_FOUND', `No WebSocket route for ${url.pathname.slice(0, 200)}`);
  };

  server.on(
    'upgrade',
    guard(
      'upgrade',
      (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        // Node detaches its own listeners from an upgraded socket: without one, a client's reset would be thrown.
        socket.on('error', () => {});
        upgrade(req, socket, head);
      },
      (error, _req, socket) => refuseUpgrade(socket, error),
    ),
  );
  answerClientErrors(server, ERROR_SOURCE.agent);
  // An Expect header other than 100-continue: Node would answer 417 with an empty body.
  server.on('checkExpectation', (_req, res: ServerResponse) => {
    res.shouldKeepAlive = false; // the body it announced is never read
    sendError(res, new CoveError('INVALID_REQUEST', 'Only "Expect: 100-continue" is supported'), ERROR_SOURCE.agent, 417);
  });
  const { port, url } = await listen(server, opts.port, opts.host);
  return {
    url,
    port,
    agent,
    server,
    async close() {
      for (const ws of wss?.clients ?? []) ws.terminate();
      await agent.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
