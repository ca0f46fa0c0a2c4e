import type { WebSocket } from 'ws';
import type { WatchQuery } from '../../../wire/watch';
import { settle } from '../../../lib/guard';
import { closeReason } from '../boundary';
import { WatchOutbox } from './outbox';
import type { WatchService } from './service';

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
  socket.on('close', () => settle('watch close', handle.close()));
}
