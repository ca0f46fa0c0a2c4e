import { close, read } from 'node:fs';
import type { Writable } from 'node:stream';

/** Size of each read: big reads keep a GiB download near disk speed in about a thousand calls. */
const CHUNK = 1024 * 1024;
/** Buffers in flight at once: one being read while the others drain into the socket. Bounds memory per download. */
const BUFFERS = 3;

const readAt = (fd: number, buf: Buffer, len: number, pos: number) =>
  new Promise<number>((resolve, reject) => read(fd, buf, 0, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

/**
 * Writes exactly `size` bytes of `fd`, from offset 0, to `out`, then closes `fd` (also on failure). Reads go into a
 * few reused buffers, each read again only once `out` reports its previous bytes written: a read stream allocates a
 * fresh 1 MiB buffer per read instead, and at GiB sizes the garbage collector then costs the agent more CPU than the
 * copying. Rejects when `out` closes or fails first, or when the file is shorter than `size` (the length was already
 * promised: the caller must then cut the connection). Does not end `out`.
 */
export function sendFile(fd: number, size: number, out: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const free: Buffer[] = [];
    for (let i = 0; i < Math.min(BUFFERS, Math.ceil(size / CHUNK)); i++) free.push(Buffer.allocUnsafeSlow(CHUNK));
    let pos = 0;
    let written = 0;
    let reading = false;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      out.off('close', onClose);
      out.off('error', onError);
      close(fd, () => (err ? reject(err) : resolve()));
    };
    const onClose = () => finish(new Error('The client closed the connection before the download finished'));
    const onError = (err: Error) => finish(err);
    out.on('close', onClose);
    out.on('error', onError);

    const pump = () => {
      if (done || reading) return;
      if (written === size) return finish();
      const buf = free.pop();
      if (!buf || pos === size) return; // every buffer is on its way out, or everything is read: wait for a callback
      reading = true;
      readAt(fd, buf, Math.min(CHUNK, size - pos), pos).then(
        (n) => {
          reading = false;
          if (done) return;
          if (n === 0) return finish(new Error(`The file shrank while it was being sent (${pos} of ${size} bytes)`));
          pos += n;
          // The buffer is reused only after the socket has taken its bytes (the callback), never before.
          out.write(buf.subarray(0, n), (err) => {
            if (err) return finish(err);
            written += n;
            free.push(buf);
            pump();
          });
          pump();
        },
        (err: Error) => {
          reading = false;
          finish(err);
        },
      );
    };
    pump();
  });
}
