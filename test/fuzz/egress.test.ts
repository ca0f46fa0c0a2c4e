/**
 * Fuzzing Cove's egress services (the egress proxy's HTTP and TLS listeners, and its DNS server over UDP and TCP):
 * what a hostile sandbox can send them. They run here on loopback with loopback standing for a sandbox with a domain
 * allow-list whose names resolve nowhere, so nothing is ever connected onward. Invariants: nothing throws out of a
 * handler (the process would report it), every connection is answered or closed, memory stays bounded, and the
 * services keep answering a well-formed request afterwards.
 */
import { createSocket } from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsServer, type DnsServer } from '../../proxy/src/egress/dns';
import { createEgressLog } from '../../proxy/src/egress/log';
import { startEgressProxy, type EgressProxy } from '../../proxy/src/egress/proxy';
import type { EgressSandbox } from '../../proxy/src/egress/types';
import { fc, fuzz, timeoutFor } from './lib';

const BUDGET = { http: 4000, tls: 4000, dnsUdp: 3000, dnsTcp: 3000 };

const sandbox: EgressSandbox = { id: 'fuzzed', domains: ['allowed.test', '*.allowed.test'], cidrs: [], secrets: [] };
const log = createEgressLog();
const logger = pino({ level: 'silent' });
let proxy: EgressProxy;
let dns: DnsServer;
const escaped: unknown[] = [];
const onEscape = (err: unknown) => escaped.push(err);

beforeAll(async () => {
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  // Names resolve to nothing: an allowed request gets a refusal ("does not resolve"), never a connection out.
  const resolver = { resolve4: async () => ({ addresses: [], ttl: 5 }) };
  const common = { host: '127.0.0.1', sandboxAt: (ip: string) => (ip === '127.0.0.1' ? sandbox : undefined), resolver, log, logger };
  proxy = await startEgressProxy({ ...common, allowPrivate: false, refusedNetworks: [] });
  dns = await startDnsServer(common);
});
afterAll(async () => {
  await proxy?.close();
  await dns?.close();
  process.off('uncaughtException', onEscape);
  process.off('unhandledRejection', onEscape);
});

/** Writes `pieces` to a port and reads until it closes or `ms` pass. */
function exchange(port: number, pieces: Buffer[], ms = 1000): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.once('connect', () => {
      for (const piece of pieces) if (!socket.destroyed) socket.write(piece);
    });
  });
}

function udpQuery(message: Buffer, ms = 500): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, ms);
    socket.once('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.send(message, dns.port, '127.0.0.1');
  });
}

const query = (name: string, type: dnsPacket.RecordType = 'A', id = 7) =>
  dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });

/** The services still answer well-formed requests, and nothing escaped a handler. */
async function expectServing(): Promise<void> {
  const answer = await udpQuery(query('nowhere.test'));
  expect(answer && (dnsPacket.decode(answer) as { rcode?: string }).rcode).toBe('NXDOMAIN');
  const { data } = await exchange(proxy.ports.http, [Buffer.from('GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n')]);
  expect(data.toString('latin1')).toMatch(/^HTTP\/1\.1 403 /);
  expect(escaped).toEqual([]);
}

const name = fc.oneof(
  fc.constantFrom('allowed.test', 'a.allowed.test', 'other.test', 'ALLOWED.TEST.', '', '..', '*.allowed.test', '1.2.3.4', 'x'.repeat(300)),
  fc.domain(),
  fc.string({ maxLength: 80 }),
);

/** An HTTP request head that is mostly valid, with hostile parts. */
const httpRequest = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'CONNECT', 'OPTIONS', 'G\x00T', 'PUT'),
    target: fc.oneof(fc.constantFrom('/', '*', 'http://allowed.test/x', 'http://[/', '//a:99999/', 'allowed.test:443', 'http://other.test:80/'), fc.string({ maxLength: 60 })),
    host: fc.option(name),
    headers: fc.array(fc.tuple(fc.constantFrom('Upgrade', 'Connection', 'Content-Length', 'Transfer-Encoding', 'X-A'), fc.string({ maxLength: 30 })), { maxLength: 4 }),
    body: fc.string({ maxLength: 100 }),
  })
  .map(({ method, target, host, headers, body }) => {
    const lines = [`${method} ${target} HTTP/1.1`, ...(host === null ? [] : [`Host: ${host}`]), ...headers.map(([k, v]) => `${k}: ${v}`)];
    return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');
  });

/** A TLS record stream: a plausible ClientHello with a hostile server name or lengths, or bytes. */
const tlsBytes = fc.oneof(
  fc
    .record({ sni: name, recordLength: fc.option(fc.nat(20_000)), helloLength: fc.option(fc.nat(1 << 24)), split: fc.nat(400) })
    .map(({ sni, recordLength, helloLength, split }) => {
      const host = Buffer.from(sni, 'latin1');
      const sniExt = Buffer.concat([Buffer.from([0, 0]), u16(host.length + 5), u16(host.length + 3), Buffer.from([0]), u16(host.length), host]);
      const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32), Buffer.from([0]), u16(2), Buffer.from([0x13, 0x01]), Buffer.from([1, 0]), u16(sniExt.length), sniExt]);
      const hello = Buffer.concat([Buffer.from([1]), u24(helloLength ?? body.length), body]);
      const record = Buffer.concat([Buffer.from([0x16, 3, 1]), u16(recordLength ?? hello.length), hello]);
      // Split into two records at a random point, as large hellos are.
      const cut = 5 + (split % Math.max(1, hello.length));
      return cut < record.length ? Buffer.concat([record.subarray(0, cut), Buffer.from([0x16, 3, 1]), u16(record.length - cut), record.subarray(cut)]) : record;
    }),
  fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
);

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
}
function u24(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(n & 0xffffff, 0, 3);
  return b;
}

describe('egress services', () => {
  it(
    'answer every HTTP stream with an answer or a close, and keep serving',
    async () => {
      await fuzz(
        'HTTP into the egress proxy',
        fc.asyncProperty(fc.array(httpRequest, { minLength: 1, maxLength: 3 }), async (requests) => {
          const { data, closed } = await exchange(proxy.ports.http, requests);
          // Each answer is a status line (refusals and 400s); a request cut short may get none, but then the proxy waits or closes.
          if (data.length) expect(data.toString('latin1')).toMatch(/^HTTP\/1\.1 \d{3} /);
          else expect(typeof closed).toBe('boolean');
        }),
        BUDGET.http,
      );
      await expectServing();
    },
    timeoutFor(BUDGET.http),
  );

  it(
    'refuse every TLS stream with an alert or a close, and keep serving',
    async () => {
      await fuzz(
        'TLS into the egress proxy',
        fc.asyncProperty(tlsBytes, async (bytes) => {
          const { data } = await exchange(proxy.ports.tls, [bytes], 600);
          // Nothing is ever relayed here (names resolve nowhere): an answer can only be a fatal alert.
          if (data.length) expect([...data.subarray(0, 5)]).toEqual([0x15, 3, 3, 0, 2]);
        }),
        BUDGET.tls,
      );
      await expectServing();
    },
    timeoutFor(BUDGET.tls),
  );

  it(
    'answer DNS over UDP with a well-formed response or nothing',
    async () => {
      await fuzz(
        'DNS over UDP',
        fc.asyncProperty(
          fc.oneof(
            fc.tuple(name, fc.constantFrom<dnsPacket.RecordType>('A', 'AAAA', 'TXT', 'NS', 'MX'), fc.nat(65535)).map(([n, t, id]) => {
              try {
                return query(n, t, id);
              } catch {
                return Buffer.from(n);
              }
            }),
            fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
          ),
          async (message) => {
            const answer = await udpQuery(message, 300);
            if (answer) expect(dnsPacket.decode(answer).type).toBe('response');
          },
        ),
        BUDGET.dnsUdp,
      );
      await expectServing();
    },
    timeoutFor(BUDGET.dnsUdp),
  );

  it(
    'take DNS over TCP in any framing, and stay within memory',
    async () => {
      await fuzz(
        'DNS over TCP',
        fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), { maxLength: 4 }), name, async (junk, n) => {
          const q = query(n.replace(/[^a-z0-9.-]/gi, '') || 'x.test');
          await exchange(dns.port, [...junk, u16(q.length), q], 300);
        }),
        BUDGET.dnsTcp,
      );
      const before = process.memoryUsage().rss;
      // A length prefix that promises the maximum, then a stream of bytes: the server cuts it off.
      await exchange(dns.port, [Buffer.from([0xff, 0xff]), ...Array(32).fill(Buffer.alloc(1 << 20))], 2000);
      expect((process.memoryUsage().rss - before) / 2 ** 20).toBeLessThan(64);
      await expectServing();
    },
    timeoutFor(BUDGET.dnsTcp),
  );
});
