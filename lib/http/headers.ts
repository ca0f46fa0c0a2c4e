/**
 * Headers that describe one connection and are never forwarded by a proxy (RFC 9110 §7.6.1), lower-case as Node
 * names them.
 */
export const HOP_BY_HOP_HEADERS: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];
