import net from 'node:net';
import type { Duplex } from 'node:stream';
import { CoveError } from '../../../lib/errors';
import { rejectSocket } from '../../../lib/http/node';
import { splice } from '../../../lib/net/splice';
import { ERROR_SOURCE } from '../../../wire/errors';

/** The Upgrade token of Cove's raw TCP tunnel. */
const TUNNEL_PROTOCOL = 'cove-tcp';

/**
 * Connects to a port of this sandbox from inside it: 127.0.0.1 first, then ::1, so servers bound only to loopback
 * (IPv4 or IPv6, as `localhost` may resolve either way) are reachable too. Resolves with the connected socket.
 */
function connectLocal(port: number): Promise<net.Socket> {
  const attempt = (host: string) =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    });
  return attempt('127.0.0.1').catch(() => attempt('::1'));
}

/**
 * Answers a `Upgrade: cove-tcp` request on `client` with 101 and pipes raw bytes between it and the local port.
 * Nothing listening → a 502 JSON answer naming the port.
 */
export async function openTunnel(client: Duplex, head: Buffer, port: number): Promise<void> {
  let upstream: net.Socket;
  try {
    upstream = await connectLocal(port);
  } catch (err) {
    rejectSocket(client, new CoveError('PORT_NOT_LISTENING', `Nothing is listening on port ${port} in the sandbox`, (err as Error).message), ERROR_SOURCE.agent);
    return;
  }
  upstream.setNoDelay(true);
  (client as net.Socket).setNoDelay?.(true);
  client.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_PROTOCOL}\r\n\r\n`);
  splice(client, upstream, head);
}
