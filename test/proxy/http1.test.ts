/**
 * The HTTP/1.1 framer the preview relay reads requests and responses with: message boundaries found whatever the
 * chunking of the input, bodies passed on byte for byte, and what it must not guess at refused.
 */
import { describe, expect, it } from 'vitest';
import { FramingError, Http1Framer, requestFraming, responseFraming, type MessageHead } from '../../lib/net/http1';

/** Feeds `input` in pieces of `step` bytes; returns the heads seen and the bytes given back, in order. */
function frame(input: string, step: number, framing: (head: MessageHead) => Parameters<Http1Framer['body']>[0] = requestFraming) {
  const framer = new Http1Framer();
  const heads: string[] = [];
  const out: Buffer[] = [];
  let ends = 0;
  const bytes = Buffer.from(input, 'latin1');
  for (let i = 0; i < bytes.length; i += step) {
    framer.feed(bytes.subarray(i, i + step));
    for (let item = framer.next(); item; item = framer.next()) {
      if (item.kind === 'head') {
        heads.push(item.head.line);
        out.push(item.raw);
        framer.body(framing(item.head));
      } else out.push(item.data);
      if (framer.atHead) ends++;
    }
  }
  return { heads, out: Buffer.concat(out).toString('latin1'), ends, idle: framer.idle };
}

const REQUESTS = [
  'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world',
  'PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-A: 1\r\n\r\n',
  'POST /d HTTP/1.1\r\nHost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n',
  'GET /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
].join('');

describe('HTTP/1.1 framer', () => {
  it('finds every message whatever the pieces, and gives every byte back in order', () => {
    for (const step of [1, 2, 3, 7, 64, REQUESTS.length]) {
      const { heads, out, ends, idle } = frame(REQUESTS, step);
      expect(heads).toEqual(['GET /a HTTP/1.1', 'POST /b HTTP/1.1', 'PUT /c HTTP/1.1', 'POST /d HTTP/1.1', 'GET /e HTTP/1.1']);
      expect(out).toBe(REQUESTS);
      expect(ends).toBeGreaterThanOrEqual(5);
      expect(idle).toBe(true);
    }
  });

  it('frames responses by the method they answer and their status', () => {
    const responses =
      'HTTP/1.1 100 Continue\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' +
      'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n' + // to a HEAD: no body
      'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n' +
      'HTTP/1.1 200 OK\r\n\r\nuntil the end';
    const methods = ['GET', 'GET', 'HEAD', 'GET', 'GET', 'GET'];
    let n = 0;
    const { heads, out } = frame(responses, 5, (head) => responseFraming(head, methods[n++]));
    expect(heads).toHaveLength(6);
    expect(out).toBe(responses);
  });

  it('refuses what it must not guess at', () => {
    const refused = [
      'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n',
      'POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
      'GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n',
      'GET / HTTP/1.1\r\nBad Name: a\r\n\r\n',
      'GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n',
    ];
    for (const input of refused) expect(() => frame(input, 4), input).toThrow(FramingError);
    const huge = `GET / HTTP/1.1\r\nX: ${'a'.repeat(70_000)}`;
    expect(() => frame(huge, 4096)).toThrow(expect.objectContaining({ status: 431 }));
  });

  it('tells early whether the bytes can begin a request', () => {
    const may = (text: string | Buffer) => {
      const framer = new Http1Framer();
      framer.feed(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'));
      return framer.mayBeRequest();
    };
    expect(may('GE')).toBe(true);
    expect(may('GET /x HTT')).toBe(true);
    expect(may('\r\nGET /x HTTP/1.1\r\nHost')).toBe(true);
    expect(may(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))).toBe(false);
    expect(may('GET /x SPDY/3\r\n')).toBe(false);
    expect(may('{"json": 1}')).toBe(false);
  });

  it('hands back what it has not returned, a head put back included', () => {
    const framer = new Http1Framer();
    framer.feed(Buffer.from('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n'));
    const first = framer.next();
    expect(first).toMatchObject({ kind: 'head' });
    framer.unread((first as { raw: Buffer }).raw);
    expect(framer.rest().toString()).toBe('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n');
    expect(framer.idle).toBe(true);
  });
});
