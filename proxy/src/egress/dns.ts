import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Logger } from 'pino';
import { hostMatches, normalHost } from './domains';
import type { EgressLog } from './log';
import type { NameResolver } from './resolver';
import type { EgressSandbox } from './types';

/**
 * Cove's DNS for sandboxes with a domain allow-list: their queries to any name server (port 53, UDP or TCP) are
 * redirected here by the host firewall, Docker's embedded DNS forwarding included. A name on the list is resolved
 * from the host and answered (IPv4 only: sandboxes have no IPv6); any other name does not exist (NXDOMAIN), so the
 * sandbox resolves only the names its policy allows. Queries from addresses of no such sandbox are refused.
 */
export interface DnsServer {
  port: number;
  close(): Promise<void>;
}

const NOERROR = 0;
const FORMERR = 1;
const SERVFAIL = 2;
const NXDOMAIN = 3;
const REFUSED = 5;
/** A DNS message over TCP is at most this long (its length prefix is 16 bits); queries are far shorter. */
const MAX_TCP_MESSAGE = 4096;
const TCP_IDLE_MS = 10_000;
/** Answers' TTL is capped, so a policy change reaches names a sandbox cached. */
const MAX_ANSWER_TTL = 30;

export async function startDnsServer(opts: {
  host: string;
  sandboxAt(ip: string): EgressSandbox | undefined;
  resolver: NameResolver;
  log: EgressLog;
  logger: Logger;
}): Promise<DnsServer> {
  async function answer(query: Buffer, from: string): Promise<Buffer | undefined> {
    let packet: dnsPacket.DecodedPacket;
    try {
      packet = dnsPacket.decode(query);
    } catch {
      // Not a DNS message: an id, when there are two bytes, gets a format error; anything shorter is dropped.
      return query.length >= 2 ? reply({ id: query.readUInt16BE(0) }, FORMERR) : undefined;
    }
    if (packet.type !== 'query') return undefined;
    const question = packet.questions?.[0];
    const sandbox = opts.sandboxAt(from);
    if (!sandbox || !question || packet.questions!.length !== 1) return reply(packet, sandbox ? FORMERR : REFUSED);
    const name = normalHost(question.name);
    if (name === undefined || (sandbox.domains && !hostMatches(sandbox.domains, name))) {
      opts.log.add(sandbox.id, { protocol: 'dns', host: question.name.slice(0, 253), port: 53, decision: 'refused', reason: 'not in the domain allow-list' });
      return reply(packet, NXDOMAIN);
    }
    if (question.type !== 'A') return reply(packet, NOERROR);
    try {
      const { addresses, ttl } = await opts.resolver.resolve4(name);
      if (!addresses.length) return reply(packet, NXDOMAIN);
      const answers = addresses.map((data) => ({ type: 'A' as const, class: 'IN' as const, name: question.name, ttl: Math.min(ttl, MAX_ANSWER_TTL), data }));
      return reply(packet, NOERROR, answers);
    } catch {
      return reply(packet, SERVFAIL);
    }
  }

  function reply(query: Partial<dnsPacket.DecodedPacket>, rcode: number, answers: dnsPacket.Answer[] = []): Buffer {
    const flags = dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode;
    return dnsPacket.encode({ type: 'response', id: query.id ?? 0, flags, questions: query.questions ?? [], answers });
  }

  // One boundary for both transports: nothing a sandbox sends may throw out of a handler.
  const guarded = (query: Buffer, from: string, send: (b: Buffer) => void) => {
    answer(query, from).then(
      (b) => b && send(b),
      (err: Error) => opts.logger.warn({ err: err.message }, 'egress DNS: a query failed'),
    );
  };

  const tcp: Server = createServer((socket: Socket) => {
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (length > MAX_TCP_MESSAGE) return socket.destroy();
        if (buffered.length < 2 + length) break;
        const query = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        guarded(query, socket.remoteAddress ?? '', (b) => {
          const head = Buffer.alloc(2);
          head.writeUInt16BE(b.length);
          if (!socket.destroyed) socket.write(Buffer.concat([head, b]));
        });
      }
    });
  });
  tcp.on('error', (err) => opts.logger.warn({ err: err.message }, 'egress DNS: TCP listener error'));

  // UDP and TCP on the same port, so one REDIRECT target serves both: a port free for UDP may be taken for TCP.
  let udp: UdpSocket | undefined;
  let port = 0;
  for (let attempt = 0; !udp; attempt++) {
    const socket = createSocket('udp4');
    await listen(socket, (done) => socket.bind(0, opts.host, done));
    port = socket.address().port;
    try {
      await listen(tcp, (done) => tcp.listen(port, opts.host, done));
      udp = socket;
    } catch (err) {
      socket.close();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) throw err;
    }
  }
  const udpSocket = udp;
  udpSocket.on('error', (err) => opts.logger.warn({ err: err.message }, 'egress DNS: UDP socket error'));
  udpSocket.on('message', (msg: Buffer, rinfo: RemoteInfo) => guarded(msg, rinfo.address, (b) => udpSocket.send(b, rinfo.port, rinfo.address)));

  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        udpSocket.close();
        tcp.close(() => resolve());
      }),
  };
}

/** Binds or listens, rejecting on the error a failed bind emits. */
function listen(emitter: UdpSocket | Server, start: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    emitter.once('error', reject);
    start(() => {
      emitter.off('error', reject);
      resolve();
    });
  });
}
