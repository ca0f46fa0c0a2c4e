import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { prefixed } from './prefixed';

/** A connected pair of real sockets on loopback. */
async function pair(): Promise<{ client: net.Socket; server: net.Socket; close: () => void }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection');
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  const [server] = (await accepted) as [net.Socket];
  return { client, server, close: () => listener.close() };
}

describe('prefixed', () => {
  it('reads the prefix, then the socket, and writes and ends through to the socket', async () => {
    const { client, server, close } = await pair();
    server.pause();
    const stream = prefixed(server, Buffer.from('hello '));
    let read = '';
    const readAll = new Promise<void>((resolve) => stream.on('data', (d: Buffer) => (read += d.toString()) === 'hello world' && resolve()));
    client.write('world');
    await readAll;
    let answer = '';
    client.on('data', (d: Buffer) => (answer += d.toString()));
    const answered = once(client, 'end');
    stream.end('back');
    await answered;
    expect(answer).toBe('back');
    const ended = once(stream, 'end');
    client.end();
    await ended;
    close();
  });

  it('pauses the socket while the reader does not read, and destroying it destroys the socket', async () => {
    const { client, server, close } = await pair();
    const stream = prefixed(server, Buffer.alloc(0));
    client.on('error', () => {}); // reset: the server side goes with data unread
    client.write(Buffer.alloc(1024 * 1024));
    await new Promise((r) => setTimeout(r, 100));
    expect(server.isPaused()).toBe(true);
    expect(stream.readableLength).toBeLessThanOrEqual(1024 * 1024);
    stream.destroy();
    await once(server, 'close');
    expect(server.destroyed).toBe(true);
    client.destroy();
    close();
  });
});
