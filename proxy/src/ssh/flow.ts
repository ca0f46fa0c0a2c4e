import type net from 'node:net';
import type { Writable } from 'node:stream';
import type * as Ssh2 from 'ssh2';

/**
 * Bounded memory per connection. Two gaps in ssh2's own flow control are closed here:
 * - ssh2 accepts CHANNEL_DATA beyond the window it granted (its check is `window === 0`, and the window goes negative
 *   on an oversized packet) and pushes it into the channel whatever the channel's buffer holds: a client that ignores
 *   the window could make the gateway buffer without bound. Such a client is cut off.
 * - ssh2 writes channel data to the client's TCP socket whenever the client's SSH window allows, whatever the socket
 *   holds: a client that grants a huge window and does not read would make the gateway buffer the sandbox's output.
 *   Tunnels stop being read while the socket holds more than WIRE_HIGH bytes.
 */

/** Bytes the connection's socket to the client may hold before the tunnels feeding it stop being read. */
const WIRE_HIGH = 1024 * 1024;

/** The client's side of one connection: whether its socket is full, and a call back once it drains. */
export interface Wire {
  full(): boolean;
  onDrain(resume: () => void): void;
  /** Drops the connection at once, unsent data included. */
  destroy(): void;
}

/**
 * The connection's socket, read from ssh2's internals (`_sock`, the socket it was given). Without it (should ssh2
 * change) only the SSH windows limit what is buffered towards the client.
 */
export function wireOf(client: Ssh2.Connection, onError: (err: unknown) => void): Wire {
  const socket = (client as unknown as { _sock?: net.Socket })._sock;
  const waiting = new Set<() => void>();
  socket?.on('drain', () => {
    const resumes = [...waiting];
    waiting.clear();
    for (const resume of resumes) {
      try {
        resume();
      } catch (err) {
        onError(err);
      }
    }
  });
  return {
    full: () => !!socket && socket.writableLength > WIRE_HIGH,
    onDrain: (resume) => void waiting.add(resume),
    destroy: () => (socket ? socket.destroy() : client.end()),
  };
}

/**
 * Writes a tunnel's bytes to an SSH channel (or its stderr), pausing the tunnel while the channel (the client's SSH
 * window) or the connection's socket (the client's TCP reads) is full, and resuming it when both have room.
 */
export function createOutbound(source: { pause(): void; resume(): void }, wire: Wire): (out: Writable, chunk: Buffer) => void {
  const blocked = new Set<object>();
  const unblock = (what: object) => () => {
    blocked.delete(what);
    if (!blocked.size) source.resume();
  };
  const block = (what: object, wait: (resume: () => void) => void) => {
    if (blocked.has(what)) return;
    blocked.add(what);
    source.pause();
    wait(unblock(what));
  };
  return (out, chunk) => {
    if (!out.write(chunk)) block(out, (resume) => out.once('drain', resume));
    if (wire.full()) block(wire, (resume) => wire.onDrain(resume));
  };
}

/** The parts of ssh2's channel this module relies on. */
interface RawChannel {
  incoming: { window: number; state: string };
  push(chunk: unknown, encoding?: BufferEncoding): boolean;
}

/**
 * Watches what ssh2 pushes into a channel: data beyond the granted window calls `onOverrun` (and is dropped), and the
 * client's CHANNEL_CLOSE calls `onClosed` at once — ssh2 itself emits 'close' on a server channel only after its
 * readable side has ended, which never happens while the channel is paused for backpressure. Both run inside ssh2's
 * parser: pass guarded functions, and make them idempotent (every further packet calls `onOverrun` again).
 */
export function watchChannel(channel: Ssh2.ServerChannel | Ssh2.Channel, on: { onOverrun(): void; onClosed(): void }): void {
  const raw = channel as unknown as RawChannel;
  if (typeof raw.push !== 'function' || typeof raw.incoming !== 'object') return;
  // Called below with the channel as its `this`.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const push = raw.push;
  raw.push = function (this: unknown, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) {
      if (raw.incoming.state === 'closed') on.onClosed();
    } else if (raw.incoming.window < 0) {
      on.onOverrun();
      return false;
    }
    return push.call(this, chunk, encoding);
  };
}
