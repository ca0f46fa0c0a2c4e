import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/**
 * Where a connection the firewall redirected to the egress proxy was going (getsockopt SO_ORIGINAL_DST, through koffi;
 * Node has no binding). Used when the connection names no host of its own: TLS without a server name (clients send
 * none for an address), or bytes that are not TLS at all.
 */

const SOL_IP = 0;
const SO_ORIGINAL_DST = 80;

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number[]) => number;
let getsockopt: GetSockOpt | null | undefined;

function load(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): { func(prototype: string): unknown } };
    getsockopt = koffi.load('libc.so.6').func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)') as GetSockOpt;
  } catch {
    getsockopt = null;
  }
  return getsockopt;
}

/** The descriptor of a connected socket: `_handle.fd`, Node's private field (test/private-apis.test.ts watches it). */
export function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The IPv4 destination the connection had before its redirect (its own address when none), or undefined when unknown. */
export function originalDestination(socket: Socket): { address: string; port: number } | undefined {
  const fd = socketFd(socket);
  const call = fd === undefined ? null : load();
  if (!call || fd === undefined) return undefined;
  const value = Buffer.alloc(16);
  if (call(fd, SOL_IP, SO_ORIGINAL_DST, value, [16]) !== 0) return undefined;
  // struct sockaddr_in: family (2 bytes), port (network order), address.
  return { address: `${value[4]}.${value[5]}.${value[6]}.${value[7]}`, port: value.readUInt16BE(2) };
}
