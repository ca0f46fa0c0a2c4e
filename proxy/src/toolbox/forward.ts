import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { guard } from '../../../lib/guard';
import { CoveError, toCoveError } from '../../../lib/errors';
import { HOP_BY_HOP_HEADERS } from '../../../lib/http/headers';
import { rejectSocket, sendError } from '../../../lib/http/node';
import { requestHead, splice } from '../../../lib/net/splice';
import { AGENT_PORT } from '../../../wire/agent';
import { ERROR_SOURCE } from '../../../wire/errors';
import { TOKEN_HEADERS } from '../preview/credentials';
import type { AgentTarget } from '../sandboxes/service';


/** Hop-by-hop headers, plus the caller's credentials (API key, preview token headers) and Host (the agent gets its own). */
const HOP_BY_HOP = new Set([...HOP_BY_HOP_HEADERS, 'authorization', ...TOKEN_HEADERS, 'host']);

function forwardedHeaders(req: IncomingMessage, target: AgentTarget): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
  headers.host = `${target.ip}:${AGENT_PORT}`;
  // The caller's API key stays here; the agent only ever sees its own secret.
  headers.authorization = `Bearer ${target.agentToken}`;
  return headers;
}

/**
 * Forwards toolbox calls to a sandbox's agent, streaming bodies both ways without buffering, and WebSocket upgrades
 * as raw byte pipes. Upstream connections are kept alive and reused.
 */
export function createToolboxForwarder(
  opts: {
    /** called on traffic through a WebSocket (terminals): activity */
    onActivity?: (sandboxId: string) => void;
    /** called as a request starts; the function it returns, once its answer has gone or the caller left */
    onRequest?: (sandboxId: string) => () => void;
  } = {},
) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: 'lifo' });

  function fail(res: ServerResponse, err: unknown): void {
    const error = err instanceof CoveError ? err : new CoveError('AGENT_UNREACHABLE', 'The sandbox agent did not answer', (err as Error).message);
    sendError(res, error, ERROR_SOURCE.proxy);
  }

  return {
    /** `path` is the agent path with its query, e.g. `/files?path=/tmp`. */
    request(req: IncomingMessage, res: ServerResponse, target: AgentTarget, path: string): void {
      const upstream = http.request(
        { host: target.ip, port: AGENT_PORT, method: req.method, path, headers: forwardedHeaders(req, target), agent },
        guard(
          'toolbox response',
          (answer: IncomingMessage) => {
            const headers: http.OutgoingHttpHeaders = {};
            for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
            res.writeHead(answer.statusCode ?? 502, headers);
            answer.pipe(res);
            answer.on('error', () => res.destroy());
          },
          (error) => fail(res, error),
        ),
      );
      upstream.on('error', (err) => fail(res, err));
      const ended = opts.onRequest?.(target.sandboxId);
      // A caller that goes away aborts the forwarded request; the agent keeps running what it started.
      res.on(
        'close',
        guard(
          'toolbox request end',
          () => {
            if (!res.writableFinished) upstream.destroy();
            ended?.();
          },
          () => {},
        ),
      );
      req.pipe(upstream);
    },

    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: AgentTarget, path: string): void {
      const upstream = net.connect(AGENT_PORT, target.ip);
      upstream.setNoDelay(true);
      (socket as net.Socket).setNoDelay?.(true);
      const headers = forwardedHeaders(req, target);
      headers.connection = 'Upgrade';
      headers.upgrade = req.headers.upgrade ?? 'websocket';
      // Until the two are spliced, a caller that leaves must still end the upstream connection.
      socket.once('close', () => upstream.destroy());
      upstream.once(
        'connect',
        guard(
          'toolbox upgrade',
          () => {
            upstream.write(requestHead(req.method ?? 'GET', path, headers));
            splice(socket, upstream, head);
            // A terminal or watch kept open is activity as long as bytes flow (throttled by the callee).
            if (opts.onActivity) {
              const onActivity = opts.onActivity;
              const active = guard('toolbox activity', () => onActivity(target.sandboxId), () => {});
              upstream.on('data', active);
              socket.on('data', active);
            }
          },
          (error) => {
            upstream.destroy();
            rejectSocket(socket, error, ERROR_SOURCE.proxy);
          },
        ),
      );
      upstream.once('error', (err) => {
        if (upstream.bytesRead === 0) rejectSocket(socket, toCoveError(new CoveError('AGENT_UNREACHABLE', 'The sandbox agent did not answer', err.message)), ERROR_SOURCE.proxy);
        else socket.destroy();
      });
    },

    close(): void {
      agent.destroy();
    },
  };
}
export type ToolboxForwarder = ReturnType<typeof createToolboxForwarder>;
