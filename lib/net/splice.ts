import type { OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Joins two byte streams: what `a` reads is written to `b` and back, with backpressure both ways. `head` (bytes
 * already read from `a`, such as the rest of an upgrade request) goes to `b` first. When either side errors or closes,
 * both are destroyed, so no half-open connection is left behind.
 */
export function splice(a: Duplex, b: Duplex, head?: Buffer): void {
  if (head?.length) b.write(head);
  a.pipe(b);
  b.pipe(a);
  const close = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close);
  b.on('error', close);
  a.on('close', close);
  b.on('close', close);
}

/** An HTTP/1.1 request head (request line, headers, blank line), for requests written on a raw socket. */
export function requestHead(method: string, path: string, headers: OutgoingHttpHeaders): string {
  const lines = [`${method} ${path} HTTP/1.1`];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of ([] as (string | number)[]).concat(value ?? [])) lines.push(`${name}: ${v}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}
