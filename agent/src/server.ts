import { getRequestListener } from '@hono/node-server';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { ERROR_SOURCE } from '../../wire/errors';
import { createAgentApp, type AgentApp } from './app';
import { CoveError, toCoveError } from '../../lib/http/errors';
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
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: (offered, req) => routeOf.get(req)?.spec.protocols?.([...offered]) ?? false,
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      if (!agent.isAuthorized(req.headers.authorization)) throw new CoveError('UNAUTHORIZED', 'Missing or invalid bearer token');
      const url = new URL(req.url ?? '/', 'http://agent');
      for (const route of agent.router.wsRoutes) {
        const params = route.match(url.pathname);
        if (!params) continue;
        const query = route.spec.query ? parseOrThrow(route.spec.query, Object.fromEntries(url.searchParams), 'query') : {};
        routeOf.set(req, route);
        wss.handleUpgrade(req, socket, head, (ws) => {
          try {
            route.handle({ socket: ws, params, query, req });
          } catch (err) {
            const error = toCoveError(err);
            ws.close(error.status === 404 ? 4404 : 4400, error.message.slice(0, 120));
          }
        });
        return;
      }
      throw new CoveError('NOT_FOUND', `No WebSocket route for ${url.pathname}`);
    } catch (err) {
      rejectUpgrade(socket, toCoveError(err));
    }
  });
  // Malformed requests and oversized headers get a status line instead of a silent close.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const body = JSON.stringify({ message: status === 431 ? 'Request headers too large' : 'Malformed HTTP request', code: 'INVALID_REQUEST', source: ERROR_SOURCE.agent });
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    agent,
    server,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await agent.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function rejectUpgrade(socket: Duplex, error: CoveError): void {
  const body = JSON.stringify(error.toBody(ERROR_SOURCE.agent));
  socket.end(
    `HTTP/1.1 ${error.status} ${error.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
