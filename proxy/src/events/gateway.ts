import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Server, type DefaultEventsMap, type Socket } from 'socket.io';
import { unexpected } from '../../../lib/guard';
import { ERROR_SOURCE } from '../../../wire/errors';
import type { KeysService, Principal } from '../auth/api-keys';
import { bearerOf } from '../auth/principal';
import { audienceOf, roomOf, type SandboxEvent } from './service';

/** A Socket.IO or Engine.IO message: the SDK sends none that matters, so a small bound per connection. */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** How long a connection may stay without completing the Socket.IO handshake (the SDK gives up after 5 s). */
const CONNECT_TIMEOUT_MS = 10_000;
const UNAUTHORIZED = 'Missing or invalid API key (Socket.IO auth.token, or Authorization: Bearer <key>)';

interface SocketData {
  principal: Principal;
}

/** The API key a handshake presents: the SDK's `auth: { token }`, else the request's Bearer token. */
function keyOf(socket: Socket): string | undefined {
  const auth: unknown = socket.handshake.auth;
  const token = auth && typeof auth === 'object' ? (auth as Record<string, unknown>).token : undefined;
  return typeof token === 'string' ? token : bearerOf(socket.handshake.headers);
}

/** A query value the SDK sends (`source`, `sdkVersion`), cut short for the log; never a credential. */
function queryText(socket: Socket, name: string): string | undefined {
  const value = socket.handshake.query[name];
  return typeof value === 'string' ? value.slice(0, 64) : undefined;
}

/**
 * The Socket.IO server of sandbox state events (wire/events.ts), at `path`. Every connection authenticates with an
 * API key in its handshake and joins the one room its key may hear (service.ts). It takes requests and upgrades from
 * the proxy's router (`request`, `upgrade`), so it never listens nor hooks a server itself; what it is handed runs
 * inside the router's error boundary, and its own callbacks are guarded here.
 */
export function createEventsGateway(opts: {
  path: string;
  keys: KeysService;
  /** Whether a browser origin may connect (the configured CORS origins); requests without Origin may. */
  allowsOrigin: (origin: string | undefined) => boolean;
  log: Logger;
}) {
  const { keys, log } = opts;
  // Socket.IO attaches to an http.Server by taking over its request and upgrade listeners; this one never listens, so
  // nothing reaches it but what `request` and `upgrade` hand the engine.
  const io = new Server<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, SocketData>(createServer(), {
    path: opts.path,
    serveClient: false,
    maxHttpBufferSize: MAX_MESSAGE_BYTES,
    connectTimeout: CONNECT_TIMEOUT_MS,
    perMessageDeflate: false,
    // Checked once per connection, at its first request: browsers send Origin, and only configured ones are served.
    allowRequest: (req, callback) => {
      const allowed = opts.allowsOrigin(req.headers.origin);
      callback(allowed ? null : 'This origin is not allowed (--cors-origins)', allowed);
    },
  });

  io.use((socket, next) => {
    try {
      const key = keyOf(socket);
      const principal = key ? keys.authenticate(key) : undefined;
      if (!principal) {
        next(Object.assign(new Error(UNAUTHORIZED), { data: { code: 'UNAUTHORIZED', source: ERROR_SOURCE.api } }));
        return;
      }
      socket.data.principal = principal;
      next();
    } catch (err) {
      const error = unexpected(err, 'events handshake');
      next(Object.assign(new Error(error.message), { data: { code: error.code, source: ERROR_SOURCE.api } }));
    }
  });

  io.on('connection', (socket) => {
    try {
      const { principal } = socket.data;
      void socket.join(roomOf(principal));
      log.info(
        { keyId: principal.keyId, admin: principal.admin, transport: socket.conn.transport.name, source: queryText(socket, 'source'), sdkVersion: queryText(socket, 'sdkVersion') },
        'events client connected',
      );
      socket.once('disconnect', (reason) => log.debug({ keyId: principal.keyId, reason }, 'events client disconnected'));
    } catch (err) {
      unexpected(err, 'events connection');
      socket.disconnect(true);
    }
  });

  /** Disconnects connections whose key was revoked since they connected (`cove keys revoke` may run elsewhere). */
  function dropRevoked(): void {
    if (io.sockets.sockets.size === 0) return;
    const live = new Set(keys.list().flatMap((k) => (k.revokedAt ? [] : [k.id])));
    for (const socket of io.sockets.sockets.values()) {
      if (!live.has(socket.data.principal.keyId)) socket.disconnect(true);
    }
  }

  return {
    /** Whether a request path is this gateway's (polling requests and WebSocket upgrades alike). */
    handles: (url: string | undefined): boolean => (url ?? '').startsWith(opts.path),
    /** Serves an HTTP request (Engine.IO long polling, the handshake): every answer is Engine.IO's own. */
    request(req: IncomingMessage, res: ServerResponse): void {
      io.engine.handleRequest(req, res);
    },
    /** Serves a WebSocket upgrade; a malformed one is answered 400 and closed by Engine.IO and ws. */
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      io.engine.handleUpgrade(req, socket, head);
    },
    /** Whether any SDK is connected: without one an event is not even built (see publish). */
    listening: (): boolean => io.sockets.sockets.size > 0,
    /** Sends an event to the connections whose key may use its sandbox. Never throws: a state change already happened. */
    publish(event: SandboxEvent): void {
      try {
        dropRevoked();
        io.to(audienceOf(event)).emit(event.name, event.payload);
      } catch (err) {
        unexpected(err, 'events publish');
      }
    },
    /** Disconnects every client and closes the engine. */
    close: (): Promise<void> => io.close(),
  };
}
export type EventsGateway = ReturnType<typeof createEventsGateway>;
