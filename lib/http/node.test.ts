import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { answerClientErrors, listen } from './node';

let server: http.Server | undefined;
afterEach(() => server?.close());

/** Sends raw bytes and returns everything the server wrote until it closed the connection. */
function exchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    let got = '';
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
    socket.setTimeout(5000, () => reject(new Error(`no close; got ${JSON.stringify(got)}`)));
  });
}

describe('answerClientErrors', () => {
  it('writes nothing after an answer that closes the connection, whatever unparsable bytes followed its request', async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain', 'content-length': 2, connection: 'close' }).end('no');
    });
    answerClientErrors(server, 'test');
    const { port } = await listen(server, 0, '127.0.0.1');
    const got = await exchange(port, 'GET /x?uploads= HTTP/1.1\r\nHost: a\r\n\r\n-E5');
    expect(got).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*\r\n\r\nno$/);
    expect(got.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });

  it('answers unparsable bytes after a kept-alive answer with a 400', async () => {
    server = http.createServer((_req, res) => res.end('ok'));
    answerClientErrors(server, 'test');
    const { port } = await listen(server, 0, '127.0.0.1');
    const got = await exchange(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n-E5');
    expect(got.match(/HTTP\/1\.1 \d+/g)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 400']);
  });
});
