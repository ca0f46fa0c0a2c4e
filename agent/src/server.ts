import { getRequestListener } from '@hono/node-server';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import { ERROR_SOURCE } from '../../wire/errors';
import { createAgentApp, type AgentApp } from './app';
import { CoveError, toCoveError } from '../../lib/http/errors';
import { answerClientErrors, listen, rejectSocket } from '../../lib/http/node';
import { parseOrThrow, type WsRoute } from '../../lib/http/router';
import type { SandboxContext } from './system/context';

export interface RunningAgent {
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
}): Promise<RunningAgent> {
  const agent = createAgentApp({ token: opts.token, ctx: opts.ctx });
  const server = createServer({ requestTimeout: 0, keepAliveTimeout: 65_000 }, getRequestListener(agent.app.fetch));
  const routeOf = new WeakMap<IncomingMessage, WsRoute>();
  // Made on the first upgrade: `ws` (and the https, tls and zlib modules it loads) is not needed by an idle agent.
  // esbuild turns this `require` of a bundled module into a lazily evaluated wrapper.
  let wss: WebSocketServer | undefined;
  const webSockets = () =>
    (wss ??= new (require('ws') as typeof import('ws')).WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      handleProtocols: (offered, req) => routeOf.get(req)?.spec.protocols?.([...offered]) ?? false,
    }));

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      if (!agent.isAuthorized(req.headers.authorization)) throw new CoveError('UNAUTHORIZED', 'Missing or invalid bearer token');
      const url = new URL(req.url ?? '/', 'http://agent');
      for (const route of agent.router.wsRoutes) {
        const params = route.match(url.pathname);
        if (!params) continue;
        const query = route.spec.query ? parseOrThrow(route.spec.query, Object.fromEntries(url.searchParams), 'query') : {};
        if (route.handleRaw) {
          route.handleRaw({ socket, head, params, query, req });
          return;
        }
        routeOf.set(req, route);
        webSockets().handleUpgrade(req, socket, head, (ws) => {
          try {
            route.handle!({ socket: ws, params, query, req });
          } catch (err) {
            const error = toCoveError(err);
            ws.close(error.status === 404 ? 4404 : 4400, error.message.slice(0, 120));
          }
        });
        return;
      }
      throw new CoveError('NOT_FOUND', `No WebSocket route for ${url.pathname}`);
    } catch (err) {
      rejectSocket(socket, toCoveError(err), ERROR_SOURCE.agent);
    }
  });
  answerClientErrors(server, ERROR_SOURCE.agent);
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
