/**
 * The server name a TLS client asks for (SNI), read from its ClientHello before any reply (pure: no I/O).
 *
 * The egress proxy reads the first bytes of a connection to port 443, decides by this name, then either relays the
 * bytes untouched or terminates TLS itself (secrets). The ClientHello may span several TLS records; it is reassembled
 * up to `MAX_HELLO` bytes, past which the connection is refused.
 */

/** Bytes of handshake a ClientHello may take (post-quantum key shares make them a few KiB). */
const MAX_HELLO = 16 * 1024;

type HelloResult =
  | { state: 'more' }
  | { state: 'done'; serverName: string | undefined }
  | { state: 'invalid'; reason: string };

const HANDSHAKE = 0x16;
const CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const HOST_NAME = 0;

/** Reads `data` (everything received so far) as the start of a TLS connection. */
export function readClientHello(data: Buffer): HelloResult {
  // Reassemble the handshake bytes from the records received so far.
  const parts: Buffer[] = [];
  let have = 0;
  let offset = 0;
  let needed: number | undefined;
  while (offset + 5 <= data.length) {
    if (data[offset] !== HANDSHAKE) return { state: 'invalid', reason: 'not a TLS handshake' };
    if (data[offset + 1] !== 3) return { state: 'invalid', reason: 'not a TLS record' };
    const length = data.readUInt16BE(offset + 3);
    if (length === 0 || length > 16384 + 2048) return { state: 'invalid', reason: 'a TLS record of an impossible length' };
    const body = data.subarray(offset + 5, Math.min(offset + 5 + length, data.length));
    parts.push(body);
    have += body.length;
    if (body.length < length) break;
    offset += 5 + length;
    if (needed === undefined && have >= 4) {
      const head = Buffer.concat(parts);
      if (head[0] !== CLIENT_HELLO) return { state: 'invalid', reason: 'the first handshake message is not a ClientHello' };
      needed = 4 + head.readUIntBE(1, 3);
      if (needed > MAX_HELLO) return { state: 'invalid', reason: 'a ClientHello larger than Cove reads' };
    }
    if (needed !== undefined && have >= needed) return parseHello(Buffer.concat(parts).subarray(4, needed));
  }
  if (data.length > MAX_HELLO + 1024) return { state: 'invalid', reason: 'a ClientHello larger than Cove reads' };
  if (data.length >= 1 && data[0] !== HANDSHAKE) return { state: 'invalid', reason: 'not a TLS handshake' };
  return { state: 'more' };
}

/** The server name of a whole ClientHello body (after the 4-byte handshake header). */
function parseHello(hello: Buffer): HelloResult {
  const invalid = (reason: string): HelloResult => ({ state: 'invalid', reason: `a malformed ClientHello (${reason})` });
  let p = 2 + 32; // version, random
  if (p + 1 > hello.length) return invalid('truncated');
  p += 1 + hello[p]; // session id
  if (p + 2 > hello.length) return invalid('truncated');
  p += 2 + hello.readUInt16BE(p); // cipher suites
  if (p + 1 > hello.length) return invalid('truncated');
  p += 1 + hello[p]; // compression methods
  if (p === hello.length) return { state: 'done', serverName: undefined }; // no extensions at all
  if (p + 2 > hello.length) return invalid('truncated');
  const end = p + 2 + hello.readUInt16BE(p);
  if (end > hello.length) return invalid('extensions past the end');
  p += 2;
  while (p + 4 <= end) {
    const type = hello.readUInt16BE(p);
    const length = hello.readUInt16BE(p + 2);
    p += 4;
    if (p + length > end) return invalid('an extension past the end');
    if (type === EXT_SERVER_NAME) return serverNameOf(hello.subarray(p, p + length));
    p += length;
  }
  return { state: 'done', serverName: undefined };
}

function serverNameOf(ext: Buffer): HelloResult {
  if (ext.length < 2 || ext.readUInt16BE(0) + 2 !== ext.length) return { state: 'invalid', reason: 'a malformed server name extension' };
  let p = 2;
  while (p + 3 <= ext.length) {
    const type = ext[p];
    const length = ext.readUInt16BE(p + 1);
    p += 3;
    if (p + length > ext.length) break;
    if (type === HOST_NAME) {
      const name = ext.subarray(p, p + length).toString('latin1');
      // A host name is ASCII letters, digits, hyphens and dots; anything else is not a name Cove can match.
      if (!/^[A-Za-z0-9.-]{1,253}$/.test(name)) return { state: 'invalid', reason: 'a server name that is not a host name' };
      return { state: 'done', serverName: name.toLowerCase() };
    }
    p += length;
  }
  return { state: 'invalid', reason: 'a malformed server name extension' };
}

/** A TLS alert record (fatal): what a refused client is told before the connection closes. */
export function tlsAlert(description: 'access_denied' | 'unrecognized_name' | 'internal_error'): Buffer {
  const code = { access_denied: 49, unrecognized_name: 112, internal_error: 80 }[description];
  return Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, code]);
}
