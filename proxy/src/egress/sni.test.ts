import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { readClientHello, tlsAlert } from './sni';

/** The first bytes Node's TLS client sends to a server, with or without a server name. */
async function helloOf(servername: string | undefined): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const got = once(server, 'connection');
  const client = connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
  client.on('error', () => {});
  const [socket] = (await got) as [import('node:net').Socket];
  let data = Buffer.alloc(0);
  for (;;) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    data = Buffer.concat([data, chunk]);
    if (readClientHello(data).state !== 'more') break;
  }
  client.destroy();
  socket.destroy();
  server.close();
  return data;
}

/** The same handshake cut into records of `size` bytes. */
function rerecord(hello: Buffer, size: number): Buffer {
  const handshake = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let i = 0; i < handshake.length; i += size) {
    const part = handshake.subarray(i, i + size);
    records.push(Buffer.from([0x16, 3, 1, part.length >> 8, part.length & 255]), part);
  }
  return Buffer.concat(records);
}

describe('readClientHello', () => {
  let named: Buffer;
  let anonymous: Buffer;
  beforeAll(async () => {
    named = await helloOf('Api.Example.com');
    anonymous = await helloOf(undefined);
  });

  it('reads the server name of a real ClientHello, lowercased', () => {
    expect(readClientHello(named)).toEqual({ state: 'done', serverName: 'api.example.com' });
  });

  it('says there is none when the client sent none (a connection by address)', () => {
    expect(readClientHello(anonymous)).toEqual({ state: 'done', serverName: undefined });
  });

  it('asks for more until the hello is whole, byte by byte', () => {
    for (let n = 0; n < named.length; n++) expect(readClientHello(named.subarray(0, n)).state, `${n} bytes`).toBe('more');
  });

  it('reassembles a hello split over several records', () => {
    const split = rerecord(named, 50);
    expect(readClientHello(split)).toEqual({ state: 'done', serverName: 'api.example.com' });
    expect(readClientHello(split.subarray(0, split.length - 1)).state).toBe('more');
  });

  it('refuses what is not a TLS ClientHello', () => {
    expect(readClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')).state).toBe('invalid');
    expect(readClientHello(Buffer.from([0x17, 3, 3, 0, 1, 0])).state).toBe('invalid');
    expect(readClientHello(Buffer.from([0x16, 3, 3, 0, 0])).state).toBe('invalid');
    const notHello = Buffer.from(named);
    notHello[5] = 2; // ServerHello
    expect(readClientHello(notHello).state).toBe('invalid');
    const huge = Buffer.from(named);
    huge.writeUIntBE(0xffffff, 6, 3);
    expect(readClientHello(huge).state).toBe('invalid');
  });

  it('refuses a hello whose lengths run past its end, whatever byte is changed', () => {
    for (let i = 5; i < named.length; i++) {
      const bad = Buffer.from(named);
      bad[i] ^= 0xff;
      // Never throws; a name, when one is read, is a host name.
      const result = readClientHello(bad);
      if (result.state === 'done' && result.serverName) expect(result.serverName).toMatch(/^[a-z0-9.-]+$/);
    }
  });

  it('makes fatal alerts', () => {
    expect([...tlsAlert('access_denied')]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
  });
});
