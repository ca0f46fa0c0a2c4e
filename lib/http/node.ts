import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { CoveError } from '../errors';

/**
 * A complete HTTP/1.1 response carrying the error envelope, ending the connection: for raw sockets (before or instead
 * of an upgrade, or from a relay). `status` overrides the code's status (431 for oversized heads).
 */
export function errorResponse(error: CoveError, source: string, status = error.status): Buffer {
  const body = JSON.stringify(error.toBody(source));
  return Buffer.from(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? error.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Answers a request with the error envelope, or cuts the response when its head has gone already. */
export function sendError(res: ServerResponse, error: CoveError, source: string, status = error.status): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(error.toBody(source)));
}

/** How long a connection we ended may linger, so the client reads our last answer before the socket is closed. */
const LINGER_MS = 2_000;

/**
 * Ends a connection after `last` (a final answer): what the client still sends is read and dropped (closing with
 * unread data would reset the connection and could lose the answer), and the socket closes when the client closes
 * its side or is destroyed after a short linger, whichever comes first. Holds nothing but the socket meanwhile.
 */
export function endSoon(socket: Duplex, last?: Buffer): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(last);
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  // When the client ends its side too, the socket closes by itself (no half-open sockets here).
  socket.once('close', () => clearTimeout(timer));
}

/** Writes a complete JSON error response on a raw socket (before or instead of a WebSocket upgrade) and ends it. */
export function rejectSocket(socket: Duplex, error: CoveError, source: string, status?: number): void {
  endSoon(socket, errorResponse(error, source, status));
}

/** Malformed requests and oversized headers get a JSON status instead of a silent close. */
export function answerClientErrors(server: Server, source: string): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Bytes that do not parse after a request whose answer will close the connection (junk after
    // `Connection: close`, or after an answer that says `Connection: close`, which Node marks `_last`): that answer
    // finishes and ends it; a second answer would be data after a message that closes the connection.
    const inFlight = (socket as Duplex & { _httpMessage?: (ServerResponse & { _last?: boolean }) | null })._httpMessage;
    const closing = inFlight && (!inFlight.shouldKeepAlive || inFlight._last === true || /\bclose\b/i.test(String(inFlight.req?.headers.connection ?? '')));
    if (err.code?.startsWith('HPE_') && inFlight && closing) {
      inFlight.once('close', () => socket.destroy());
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const error = new CoveError('INVALID_REQUEST', tooLarge ? 'Request headers too large' : 'Malformed HTTP request', err.code);
    rejectSocket(socket, error, source, tooLarge ? 431 : 400);
  });
}

/** A body still to come that Node may read and drop to keep the connection (what JSON calls send): at most this. */
const SMALL_UNREAD_BODY = 64 * 1024;

/**
 * Whether what is left of a request's body is small enough to read and drop: none at all (a request with neither
 * Content-Length nor Transfer-Encoding has no body), or a declared length within the limit. A chunked body may be
 * any size.
 */
function smallBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return false;
  const length = req.headers['content-length'];
  return length === undefined || (/^\d{1,9}$/.test(length) && Number(length) <= SMALL_UNREAD_BODY);
}

/**
 * A response that starts before its request's body was read (a 401, 404 or 413 to an upload) closes the connection,
 * and says so (`Connection: close`, so no client reuses it): otherwise Node reads and discards the rest of the body
 * to keep the connection alive, and a client declaring a gigabyte makes the server read a gigabyte. A small declared
 * body (a JSON call refused before its body arrived) is read and dropped instead, and the connection stays open:
 * clients keep their connections, and closing on unread bytes would reset it under the answer.
 *
 * Registered before every other request listener, so that an answer written at once still goes through the check.
 */
export function closeUnreadBodies(server: Server): void {
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const writeHead = res.writeHead.bind(res) as (...args: Parameters<ServerResponse['writeHead']>) => ServerResponse;
    // Every head goes through writeHead (an implicit one too), so this decides before the head is written.
    res.writeHead = ((...args: Parameters<ServerResponse['writeHead']>) => {
      if (!req.complete && !smallBody(req)) res.shouldKeepAlive = false;
      return writeHead(...args);
    }) as ServerResponse['writeHead'];
    res.once('finish', () => {
      if (req.complete || res.shouldKeepAlive) return;
      // Not endSoon(): Node reads and dumps the body for as long as the socket is open, up to 2 MiB per connection
      // in each turn of the event loop. The answer has reached the kernel when the socket holds nothing more to
      // write, and then it closes at once (the unread body is reset, never read); otherwise once it has.
      // Gone already when the request was destroyed (the client left): nothing is left to close.
      const socket = req.socket as Duplex | null;
      if (!socket) return;
      if (!socket.writableLength) return void socket.destroy();
      socket.pause();
      socket.end();
      socket.once('finish', () => socket.destroy());
    });
  });
}

/** Listens and returns the bound port and a URL to reach it (loopback when bound to every address). */
export async function listen(server: NetServer, port: number, host: string): Promise<{ port: number; url: string }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const reach = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return { port: bound, url: `http://${reach.includes(':') ? `[${reach}]` : reach}:${bound}` };
}

/**
 * What a route returns after writing its answer straight to the Node response (c.env.outgoing): the marker
 * @hono/node-server knows as RESPONSE_ALREADY_SENT. Built per call rather than imported: the adapter replaces the
 * global Response class when a server starts, so a module-level constant is no longer `instanceof Response` and the
 * router would serialise it as JSON. Reading `.body` turns the adapter's lightweight Response into a plain one, which
 * it checks for the marker instead of writing a cached head.
 */
export function alreadySent(): Response {
  const res = new Response(null, { headers: { 'x-hono-already-sent': 'true' } });
  void res.body;
  return res;
}
