import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/**
 * A sandbox's `outboundProxyUrl` as the egress proxy's next hop: with a domain allow-list or secrets, what the egress
 * proxy lets out goes through it (plain HTTP in absolute form, TLS through CONNECT), so the chain holds at the network
 * layer, not only for clients that read HTTP(S)_PROXY.
 */
export interface UpstreamProxy {
  host: string;
  port: number;
  /** The proxy is spoken to over TLS (`https:` URLs). */
  tls: boolean;
  /** `Proxy-Authorization` for the URL's credentials. */
  authorization?: string;
}

/** The next hop of an `outboundProxyUrl` (already checked by outbound-proxy.ts). */
export function upstreamOf(url: string): UpstreamProxy {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  const user = decodeURIComponent(u.username);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port) || (tls ? 443 : 80),
    tls,
    ...(user || u.password ? { authorization: `Basic ${Buffer.from(`${user}:${decodeURIComponent(u.password)}`).toString('base64')}` } : {}),
  };
}

/** A response head longer than this from a proxy is refused. */
const MAX_HEAD = 16 * 1024;

/** A connection to the proxy itself, at `address` (resolved by the caller). */
function connectToProxy(proxy: UpstreamProxy, address: string, timeoutMs: number): Socket {
  return proxy.tls ? tlsConnect({ host: address, port: proxy.port, servername: proxy.host, timeout: timeoutMs }) : connect({ host: address, port: proxy.port, timeout: timeoutMs });
}

/** A tunnel to `host:port` through the proxy (CONNECT), ready for the caller's bytes; rejects with the proxy's answer. */
export function openTunnel(proxy: UpstreamProxy, address: string, host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectToProxy(proxy, address, timeoutMs);
    let head = Buffer.alloc(0);
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('timeout', () => fail(new Error(`the outbound proxy ${proxy.host}:${proxy.port} did not answer in time`)));
    socket.once('error', fail);
    socket.once(proxy.tls ? 'secureConnect' : 'connect', () => {
      const auth = proxy.authorization ? `Proxy-Authorization: ${proxy.authorization}\r\n` : '';
      socket.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n${auth}\r\n`);
    });
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD) fail(new Error('the outbound proxy answered CONNECT with an over-long head'));
        return;
      }
      socket.off('data', onData);
      socket.off('error', fail);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString('latin1'))?.[1];
      if (!status || !status.startsWith('2')) return fail(new Error(`the outbound proxy refused CONNECT ${host}:${port}: ${head.subarray(0, Math.min(end, 200)).toString('latin1').split('\r\n')[0]}`));
      socket.setTimeout(0);
      socket.pause();
      // Bytes after the head already belong to the tunnel.
      if (head.length > end + 4) socket.unshift(head.subarray(end + 4));
      resolve(socket);
    };
    socket.on('data', onData);
  });
}
