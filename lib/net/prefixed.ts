import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * `socket` as a stream that first reads `prefix` (bytes already read from it, such as a TLS ClientHello), then what
 * the socket receives; writes, ends and destroys go to the socket. A TLS server given a socket whose first bytes were
 * read in JavaScript needs this: on a bare net.Socket it reads the file descriptor and would miss them. The socket's
 * pace follows the reader (it is paused while the stream's buffer is full).
 */
export function prefixed(socket: Socket, prefix: Buffer): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, done) {
      socket.write(chunk, done);
    },
    final(done) {
      socket.end(done);
    },
    destroy(err, done) {
      socket.destroy();
      done(err);
    },
  });
  if (prefix.length) stream.push(prefix);
  socket.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  // The socket's error ends the stream without one: whoever reads it sees the close, and no error goes unheard.
  socket.on('error', () => stream.destroy());
  socket.on('close', () => stream.destroy());
  return stream;
}
