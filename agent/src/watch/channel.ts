import type { WebSocket } from 'ws';
import type { WatchQuery } from '../../../wire/watch';
import { WatchOutbox } from './outbox';
import type { WatchService } from './service';

/** A close reason within the 123 bytes a close frame allows, cut on a character boundary. */
function closeReason(message: string): string {
  let reason = message;
  while (Buffer.byteLength(reason) > 120) reason = reason.slice(0, -1);
  return reason;
}

/**
 * Serves one client of `GET /files/watch` (protocol in wire/watch.ts): a watch whose messages go through a bounded
 * outbox, so a client that reads slowly costs the agent a fixed amount of memory and is told what it missed. The
 * watch ends when the socket closes, however it closes.
 */
export function serveWatchChannel(socket: WebSocket, service: WatchService, query: WatchQuery): void {
  const outbox = new WatchOutbox({
    isOpen: () => socket.readyState === socket.OPEN,
    buffered: () => socket.bufferedAmount,
    send: (text, done) => socket.send(text, done),
  });
  const handle = service.watch(query, {
    message: (m) => outbox.push(m),
    end: (code, reason) => {
      if (socket.readyState === socket.OPEN) socket.close(code, closeReason(reason));
    },
    status: () => outbox.status(),
  });
  // Nothing is expected from the client; its messages are read (so that they do not pile up) and ignored.
  socket.on('message', () => {});
  socket.on('error', () => {});
  socket.on('close', () => void handle.close());
}
