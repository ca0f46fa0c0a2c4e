import { createRequire } from 'node:module';

interface PacketWriter {
  allocStart: number;
  alloc(payloadLength: number): Buffer;
  finalize(packet: Buffer): Buffer;
}

/**
 * Sends one SSH message — `payload` is the message number and its fields — on an ssh2 connection (a server's
 * `Connection` or a `Client`), through ssh2's own packet writer: framed, encrypted and sequenced like the messages
 * ssh2 sends itself. ssh2 has no public API for a message it would not send (a per-connection USERAUTH_BANNER, or a
 * malformed message in a fuzz test). This is the one place that reads its private parts, as of ssh2 1.17.0:
 * `_protocol` on the connection, its `_packetRW.write` (`allocStart`, `alloc`, `finalize`) and `sendPacket` of
 * `ssh2/lib/protocol/utils.js`; test/private-apis.test.ts fails if an ssh2 update changes them. Throws when they are
 * not there.
 */
export function sendRawSshMessage(connection: object, payload: Buffer): void {
  const proto = (connection as { _protocol?: { _packetRW?: { write?: PacketWriter } } })._protocol;
  const writer = proto?._packetRW?.write;
  if (!proto || !writer || typeof writer.alloc !== 'function' || typeof writer.finalize !== 'function') {
    throw new Error('ssh2 internals changed: no _protocol._packetRW.write on the connection');
  }
  const { sendPacket } = createRequire(import.meta.url)('ssh2/lib/protocol/utils.js') as {
    sendPacket: (proto: unknown, packet: Buffer) => void;
  };
  const packet = writer.alloc(payload.length);
  payload.copy(packet, writer.allocStart);
  sendPacket(proto, writer.finalize(packet));
}
