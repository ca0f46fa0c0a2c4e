import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { openTunnel, upstreamOf } from './upstream';

describe('outbound proxy as next hop', () => {
  it('reads host, port, scheme and credentials from the URL', () => {
    expect(upstreamOf('http://proxy.example.com:3128')).toEqual({ host: 'proxy.example.com', port: 3128, tls: false });
    expect(upstreamOf('https://u%40x:p%3Aw@proxy.example.com')).toEqual({ host: 'proxy.example.com', port: 443, tls: true, authorization: `Basic ${Buffer.from('u@x:p:w').toString('base64')}` });
  });

  it('opens a CONNECT tunnel with the credentials, and says what a refusing proxy answered', async () => {
    const seen: string[] = [];
    const echo = createServer((q, s) => s.end(`echo ${q.url}`));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const echoPort = (echo.address() as AddressInfo).port;
    const proxy = createServer();
    proxy.on('connect', (q, client) => {
      seen.push(`${q.url} ${q.headers['proxy-authorization'] ?? ''}`);
      if (!q.url?.startsWith('allowed')) return void client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      const up = connect(echoPort, '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        up.pipe(client);
        client.pipe(up);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const next = upstreamOf(`http://u:p@127.0.0.1:${(proxy.address() as AddressInfo).port}`);
    try {
      const tunnel = await openTunnel(next, '127.0.0.1', 'allowed.test', 80, 2000);
      tunnel.write('GET /x HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
      tunnel.resume();
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        tunnel.on('data', (d: Buffer) => (text += d.toString()));
        tunnel.on('end', () => resolve(text));
      });
      expect(answer).toMatch(/echo \/x$/);
      expect(seen[0]).toBe(`allowed.test:80 Basic ${Buffer.from('u:p').toString('base64')}`);
      await expect(openTunnel(next, '127.0.0.1', 'other.test', 443, 2000)).rejects.toThrow(/refused CONNECT other.test:443: HTTP\/1.1 403 Forbidden/);
    } finally {
      proxy.close();
      echo.close();
    }
  });
});
