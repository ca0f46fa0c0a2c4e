/**
 * The framer's parts one by one: head parsing and serializing, the framing decisions, and the pull parser's
 * contract (items in order, pipelining, hand-over, limits). test/proxy/http1.test.ts covers refusals at length, and
 * test/fuzz/http1-differential.test.ts holds the framer to Node's own parser.
 */
import { describe, expect, it } from 'vitest';
import {
  FramingError,
  Http1Framer,
  MAX_HEAD_BYTES,
  parseHead,
  requestFraming,
  responseFraming,
  scanResponseHead,
  serializeHead,
  statusOf,
  type FramerItem,
} from './http1';

const buf = (s: string) => Buffer.from(s, 'latin1');
/** What next() returns until it needs more bytes, as text: `head:LINE` or the body bytes. */
function drain(framer: Http1Framer, onHead = (f: Http1Framer) => f.body(requestFraming(lastHead!))): string[] {
  const items: string[] = [];
  for (let item: FramerItem | undefined = framer.next(); item; item = framer.next()) {
    if (item.kind === 'head') {
      lastHead = item.head;
      items.push(`head:${item.head.line}`);
      onHead(framer);
    } else items.push(item.data.toString('latin1'));
  }
  return items;
}
let lastHead: Parameters<typeof requestFraming>[0] | undefined;

describe('parseHead', () => {
  it('keeps fields as sent, values trimmed, and joins repeated ones by name', () => {
    const head = parseHead('GET /x HTTP/1.1\r\nHost:  a.example \r\nAccept: text/html\r\naccept:\tapplication/json\r\nCookie: a=1\r\ncookie: b=2\r\nX-Empty:');
    expect(head.line).toBe('GET /x HTTP/1.1');
    expect(head.fields).toEqual([
      ['Host', 'a.example'],
      ['Accept', 'text/html'],
      ['accept', 'application/json'],
      ['Cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['X-Empty', ''],
    ]);
    expect(head.headers).toEqual({ host: 'a.example', accept: 'text/html, application/json', cookie: 'a=1; b=2', 'x-empty': '' });
  });

  it('takes obs-text in values and refuses control characters', () => {
    expect(parseHead('GET / HTTP/1.1\r\nX: caf\xe9').headers.x).toBe('caf\xe9');
    for (const bad of ['GET / HTTP/1.1\r\nX: a\x00', 'GET / HTTP/1.1\r\nX: a\x1b', 'GET /\r HTTP/1.1', 'GET / HTTP/1.1\r\n X: folded']) {
      expect(() => parseHead(bad), JSON.stringify(bad)).toThrow(FramingError);
    }
  });

  it('is what serializeHead writes back, byte for byte for a normal head', () => {
    const text = 'POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3';
    const head = parseHead(text);
    expect(serializeHead(head.line, head.fields).toString('latin1')).toBe(`${text}\r\n\r\n`);
    expect(serializeHead('HTTP/1.1 204 No Content', []).toString('latin1')).toBe('HTTP/1.1 204 No Content\r\n\r\n');
    // Latin-1 values keep their bytes.
    expect(serializeHead('GET / HTTP/1.1', [['X', '\xe9']])).toEqual(Buffer.from('GET / HTTP/1.1\r\nX: \xe9\r\n\r\n', 'latin1'));
  });
});

describe('scanResponseHead', () => {
  it('reads only the fields that frame or are rewritten, as parseHead reads them', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: 1\r\nConnection: keep-alive\r\nLocation: /next\r\nServer: s';
    expect(scanResponseHead(text)).toEqual({ line: 'HTTP/1.1 200 OK', headers: { 'content-length': '10', connection: 'keep-alive', location: '/next' } });
    const full = parseHead(text).headers;
    for (const [k, v] of Object.entries(scanResponseHead(text).headers)) expect(full[k]).toBe(v);
  });

  it('reads a head that is only a status line', () => {
    expect(scanResponseHead('HTTP/1.0 404 Not Found')).toEqual({ line: 'HTTP/1.0 404 Not Found', headers: {} });
  });
});

describe('framing decisions', () => {
  const req = (line: string, headers: Record<string, string> = {}) => ({ line, headers });

  it('frames requests by Content-Length, chunked, or no body', () => {
    expect(requestFraming(req('GET / HTTP/1.1'))).toEqual({ type: 'none' });
    expect(requestFraming(req('POST / HTTP/1.1', { 'content-length': '0' }))).toEqual({ type: 'none' });
    expect(requestFraming(req('POST / HTTP/1.1', { 'content-length': '007' }))).toEqual({ type: 'length', length: 7 });
    expect(requestFraming(req('POST / HTTP/1.1', { 'content-length': '999999999999999' }))).toEqual({ type: 'length', length: 999999999999999 });
    expect(requestFraming(req('POST / HTTP/1.1', { 'transfer-encoding': 'Chunked' }))).toEqual({ type: 'chunked' });
    expect(requestFraming(req('POST / HTTP/1.0', { 'content-length': '2' }))).toEqual({ type: 'length', length: 2 });
  });

  it('refuses lengths past 15 digits, CONNECT, and chunked in HTTP/1.0', () => {
    expect(() => requestFraming(req('POST / HTTP/1.1', { 'content-length': '1000000000000000' }))).toThrow(FramingError);
    expect(() => requestFraming(req('CONNECT h:443 HTTP/1.1'))).toThrow(FramingError);
    expect(() => requestFraming(req('POST / HTTP/1.0', { 'transfer-encoding': 'chunked' }))).toThrow(FramingError);
  });

  it('frames responses by the request method and the status', () => {
    const res = (line: string, headers: Record<string, string> = {}) => ({ line, headers });
    expect(responseFraming(res('HTTP/1.1 200 OK', { 'content-length': '5' }), 'GET')).toEqual({ type: 'length', length: 5 });
    expect(responseFraming(res('HTTP/1.1 200 OK', { 'content-length': '5' }), 'HEAD')).toEqual({ type: 'none' });
    expect(responseFraming(res('HTTP/1.1 200 OK', { 'content-length': '0' }), 'GET')).toEqual({ type: 'none' });
    expect(responseFraming(res('HTTP/1.1 200 OK'), 'GET')).toEqual({ type: 'close' });
    expect(responseFraming(res('HTTP/1.1 200 Connection established'), 'CONNECT')).toEqual({ type: 'raw' });
    expect(responseFraming(res('HTTP/1.1 407 Proxy Authentication Required', { 'content-length': '2' }), 'CONNECT')).toEqual({ type: 'length', length: 2 });
    for (const line of ['HTTP/1.1 101 Switching Protocols', 'HTTP/1.1 103 Early Hints', 'HTTP/1.1 204 No Content', 'HTTP/1.1 304 Not Modified']) {
      expect(responseFraming(res(line, { 'transfer-encoding': 'chunked' }), 'GET'), line).toEqual({ type: 'none' });
    }
  });

  it('reads status codes only from a well-formed status line', () => {
    expect(statusOf({ line: 'HTTP/1.1 418 I am a teapot', headers: {} })).toBe(418);
    expect(statusOf({ line: 'HTTP/1.0 599', headers: {} })).toBe(599);
    for (const line of ['HTTP/1.1 104 X', 'HTTP/1.1 600 X', 'HTTP/1.2 200 OK', 'GET / HTTP/1.1', 'HTTP/1.1 2OO OK']) {
      expect(() => statusOf({ line, headers: {} }), line).toThrow(FramingError);
    }
  });
});

describe('Http1Framer', () => {
  it('returns a chunked body piece by piece as it was on the wire: size lines, data, CRLFs, trailers', () => {
    const framer = new Http1Framer();
    framer.feed(buf('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 9\r\n\r\n'));
    expect(drain(framer)).toEqual(['head:POST / HTTP/1.1', '5;ext=1\r\n', 'hello', '\r\n', 'A\r\n', '0123456789', '\r\n', '0\r\n', 'X-Sum: 9\r\n\r\n']);
    expect(framer.idle).toBe(true);
  });

  it('frames pipelined requests with bodies, and is at a head between them', () => {
    const framer = new Http1Framer();
    framer.feed(buf('POST /1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyGET /3 HTTP/1.1\r\n\r\n'));
    const seen: Array<[string, boolean]> = [];
    for (let item = framer.next(); item; item = framer.next()) {
      if (item.kind === 'head') framer.body(requestFraming(item.head));
      seen.push([item.kind === 'head' ? item.head.line : item.data.toString(), framer.atHead]);
    }
    expect(seen).toEqual([
      ['POST /1 HTTP/1.1', false],
      ['abc', true],
      ['POST /2 HTTP/1.1', false],
      ['xy', true],
      ['GET /3 HTTP/1.1', true],
    ]);
  });

  it('passes a long body through in the pieces it arrives in, never more than the length', () => {
    const framer = new Http1Framer();
    framer.feed(buf('PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\n'));
    expect(drain(framer)).toEqual(['head:PUT / HTTP/1.1']);
    framer.feed(buf('0123'));
    expect(drain(framer)).toEqual(['0123']);
    framer.feed(buf('456789GET'));
    expect(drain(framer)).toEqual(['456789']);
    expect(framer.atHead).toBe(true);
    expect(framer.idle).toBe(false);
    expect(framer.rest().toString()).toBe('GET');
  });

  it('skips up to four empty lines before a request, and refuses a fifth', () => {
    const ok = new Http1Framer();
    ok.feed(buf('\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n'));
    expect(drain(ok)).toEqual(['head:GET / HTTP/1.1']);
    const refused = new Http1Framer();
    refused.feed(buf('\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n'));
    expect(() => drain(refused)).toThrow(FramingError);
  });

  it('takes a head of exactly the limit and refuses a longer one with 431', () => {
    const line = 'GET / HTTP/1.1\r\nX: ';
    const exact = new Http1Framer();
    exact.feed(buf(`${line}${'a'.repeat(MAX_HEAD_BYTES - line.length)}\r\n\r\n`));
    expect(drain(exact)).toEqual(['head:GET / HTTP/1.1']);
    const over = new Http1Framer();
    over.feed(buf(`${line}${'a'.repeat(MAX_HEAD_BYTES - line.length + 1)}\r\n\r\n`));
    expect(() => over.next()).toThrow(expect.objectContaining({ status: 431 }));
  });

  it('refuses a chunk size line that never ends, and trailers past the limit', () => {
    const framer = new Http1Framer();
    framer.feed(buf('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n'));
    drain(framer);
    framer.feed(buf(`1;${'a'.repeat(5000)}`));
    expect(() => framer.next()).toThrow(FramingError);
    const trailers = new Http1Framer();
    trailers.feed(buf('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n'));
    drain(trailers);
    trailers.feed(buf(`X: ${'a'.repeat(MAX_HEAD_BYTES + 10)}`));
    expect(() => trailers.next()).toThrow(FramingError);
  });

  it('frames nothing after a protocol switch or in a close-delimited body', () => {
    const framer = new Http1Framer();
    framer.feed(buf('GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n'));
    drain(framer, (f) => f.switchToRaw());
    expect(framer.closeDelimited).toBe(true);
    framer.feed(buf('GET / HTTP/1.1\r\n\r\n\x81\x00'));
    expect(drain(framer)).toEqual(['GET / HTTP/1.1\r\n\r\n\x81\x00']);
    expect(framer.atHead).toBe(false);
  });

  it('holds its owner to the contract: body() right after a head, and only then', () => {
    const framer = new Http1Framer();
    expect(() => framer.body({ type: 'none' })).toThrow(/right after a head/);
    framer.feed(buf('GET / HTTP/1.1\r\n\r\n'));
    expect(framer.next()).toMatchObject({ kind: 'head' });
    expect(() => framer.next()).toThrow(/body\(\) was not called/);
    // These are the owner's bugs, not hostile input: not FramingErrors.
    expect(() => framer.next()).not.toThrow(FramingError);
  });

  it('starts over at a head when bytes are put back mid-message', () => {
    const framer = new Http1Framer();
    framer.feed(buf('POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab'));
    const items = drain(framer);
    expect(items).toEqual(['head:POST / HTTP/1.1', 'ab']);
    framer.unread(buf('GET /again HTTP/1.1\r\n\r\n'));
    expect(framer.atHead).toBe(true);
    expect(drain(framer)).toEqual(['head:GET /again HTTP/1.1']);
  });
});
