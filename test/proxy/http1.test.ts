/**
 * The HTTP/1.1 framer the preview relay reads requests and responses with: message boundaries found whatever the
 * chunking of the input, bodies passed on byte for byte, and what it must not guess at refused.
 */
import { describe, expect, it } from 'vitest';
import { FramingError, Http1Framer, parseHead, requestFraming, requestLine, responseFraming, scanResponseHead, statusOf, type HeadLike, type MessageHead } from '../../lib/net/http1';

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

/** Feeds responses in pieces of `step` bytes to a framer reading heads as the relay does; `methods` they answer. */
function frameResponses(input: string, step: number, methods: string[] = []) {
  const framer = new Http1Framer<HeadLike>(scanResponseHead);
  const heads: HeadLike[] = [];
  const framings: string[] = [];
  const out: Buffer[] = [];
  let n = 0;
  const bytes = Buffer.from(input, 'latin1');
  for (let i = 0; i < bytes.length; i += step) {
    framer.feed(bytes.subarray(i, i + step));
    for (let item = framer.next(); item; item = framer.next()) {
      if (item.kind === 'head') {
        heads.push(item.head);
        out.push(item.raw);
        const framing = responseFraming(item.head, statusOf(item.head) >= 200 ? (methods[n++] ?? 'GET') : 'GET');
        framings.push(framing.type === 'length' ? `length ${framing.length}` : framing.type);
        framer.body(framing);
      } else out.push(item.data);
    }
  }
  return { heads, framings, out: Buffer.concat(out).toString('latin1'), framer };
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

describe('HTTP/1.1 framer: response heads as strict as requests', () => {
  it('frames ordinary responses as before, reading the fields that frame and rewrite them', () => {
    const responses =
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: Mon, 30 Nov 2026 10:00:00 GMT\r\n\r\nhello' +
      'HTTP/1.1 302 Found\r\nLocation: /login\r\ncontent-length: 0\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nX-Odd: a\tb \xe9\r\n\r\n2;a=b;c="d e"\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n' +
      'HTTP/1.1 204 No Content\r\n\r\n' +
      'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx' +
      'HTTP/1.1 200\r\n\r\nuntil the end';
    for (const step of [1, 3, 64, responses.length]) {
      const { heads, framings, out } = frameResponses(responses, step);
      expect(out).toBe(responses);
      expect(framings).toEqual(['length 5', 'none', 'chunked', 'none', 'length 1', 'close']);
      expect(heads[1].headers).toEqual({ location: '/login', 'content-length': '0' });
      expect(heads[2].headers).toEqual({ 'transfer-encoding': 'gzip, chunked' });
      expect(heads[4].headers).toEqual({ connection: 'keep-alive', 'content-length': '1' });
    }
  });

  it('reads the fields it frames by whatever their case, and no others', () => {
    const head = 'HTTP/1.1 200 OK\r\nCONTENT-length: 1\r\nX-Content-Length: 9\r\nContent-Lengthy: 3\r\nlocatioN: /a\r\nSET-COOKIE: a=1\r\nConnectioN: close\r\nProxy-Connection: keep-alive\r\nTRANSFER-ENCODINg: chunked\r\nContent-Type: text/plain';
    expect(scanResponseHead(head).headers).toEqual({
      'content-length': '1',
      location: '/a',
      'set-cookie': 'a=1',
      connection: 'close',
      'proxy-connection': 'keep-alive',
      'transfer-encoding': 'chunked',
    });
  });

  it('joins Set-Cookie values with a LF, keeping the commas inside them', () => {
    const head = 'HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Expires=Wed, 09 Jun 2027 10:18:14 GMT; Domain=example.com\r\nset-cookie:  b=2 \r\nContent-Length: 0';
    const cookies = ['a=1; Expires=Wed, 09 Jun 2027 10:18:14 GMT; Domain=example.com', 'b=2'];
    expect(scanResponseHead(head).headers['set-cookie'].split('\n')).toEqual(cookies);
    expect(parseHead(head).headers['set-cookie'].split('\n')).toEqual(cookies);
    expect(scanResponseHead('HTTP/1.1 200 OK\r\nSet-Cookie: c=3').headers['set-cookie']).toBe('c=3');
  });

  it('refuses a response head it must not guess at', () => {
    const refused: Record<string, string> = {
      'bare LF': 'HTTP/1.1 200 OK\nContent-Length: 5\n\nhello',
      'bare LF in the middle': 'HTTP/1.1 200 OK\r\nX: a\nContent-Length: 5\r\n\r\nhello',
      'bare CR': 'HTTP/1.1 200 OK\r\nX: a\rContent-Length: 5\r\n\r\nhello',
      'bare CR before the blank line': 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\r\n\r\n',
      NUL: 'HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n',
      'a control character in a value': 'HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n',
      DEL: 'HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n',
      'obsolete line folding': 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n',
      'folding with a tab': 'HTTP/1.1 200 OK\r\nX: a\r\n\tContent-Length: 5\r\n\r\n',
      'a name that is not a token': 'HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n',
      'a non-ASCII name': 'HTTP/1.1 200 OK\r\nX-\xe9: a\r\n\r\n',
      'no colon': 'HTTP/1.1 200 OK\r\nContent-Length\r\n\r\n',
      'an empty name': 'HTTP/1.1 200 OK\r\n: a\r\n\r\n',
      'a space before the colon': 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello',
      'a tab before the colon': 'HTTP/1.1 200 OK\r\nContent-Length\t: 5\r\n\r\nhello',
      'a lowercase protocol': 'http/1.1 200 OK\r\n\r\n',
      'HTTP/2.0': 'HTTP/2.0 200 OK\r\n\r\n',
      'HTTP/0.9': 'HTTP/0.9 200 OK\r\n\r\n',
      'two spaces before the status': 'HTTP/1.1  200 OK\r\n\r\n',
      'a tab after the status': 'HTTP/1.1 200\tOK\r\n\r\n',
      'two digits': 'HTTP/1.1 20 OK\r\n\r\n',
      'four digits': 'HTTP/1.1 2000 OK\r\n\r\n',
      'a status below 100': 'HTTP/1.1 099 OK\r\n\r\n',
      'a status above 599': 'HTTP/1.1 600 OK\r\n\r\n',
      'an informational status above 103': 'HTTP/1.1 110 X\r\nContent-Length: 3\r\n\r\nabc',
      'a control character in the reason': 'HTTP/1.1 200 O\x01K\r\n\r\n',
      'an empty status line': '\r\n\r\n\r\n\r\n\r\n\r\n',
    };
    for (const [why, input] of Object.entries(refused)) expect(() => frameResponses(input, 3), why).toThrow(FramingError);
  });

  it('refuses a bare LF, a bare CR or a NUL as soon as it arrives, without waiting for the end of the head', () => {
    for (const partial of ['HTTP/1.1 200 OK\nContent-Length: 5', 'HTTP/1.1 200 OK\r\nX: a\rb', 'HTTP/1.1 200\0', '\nHTTP/1.1 200 OK']) {
      const framer = new Http1Framer<HeadLike>(scanResponseHead);
      framer.feed(Buffer.from(partial, 'latin1'));
      expect(() => framer.next(), JSON.stringify(partial)).toThrow(FramingError);
    }
    // A CR at the end of what has arrived may still be followed by its LF.
    const framer = new Http1Framer<HeadLike>(scanResponseHead);
    framer.feed(Buffer.from('HTTP/1.1 200 OK\r'));
    expect(framer.next()).toBeUndefined();
    framer.feed(Buffer.from('\nContent-Length: 0\r\n\r\n'));
    expect(framer.next()).toMatchObject({ kind: 'head', head: { line: 'HTTP/1.1 200 OK' } });
  });

  it('refuses framing fields it must not guess at, in responses to any method and with any status', () => {
    const refused: Record<string, string> = {
      'Transfer-Encoding not ending with chunked': 'Transfer-Encoding: gzip',
      'chunked, then another coding': 'Transfer-Encoding: chunked, gzip',
      'chunked twice': 'Transfer-Encoding: chunked, chunked',
      'chunked in two fields': 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked',
      'an empty coding last': 'Transfer-Encoding: chunked,',
      'a coding with a parameter': 'Transfer-Encoding: gzip;q=1, chunked',
      'a tab after chunked': 'Transfer-Encoding: chunked\t',
      'Transfer-Encoding and Content-Length': 'Transfer-Encoding: chunked\r\nContent-Length: 5',
      'conflicting lengths': 'Content-Length: 5\r\nContent-Length: 6',
      'the same length twice': 'Content-Length: 5\r\nContent-Length: 5',
      'a list of lengths': 'Content-Length: 5, 5',
      'a signed length': 'Content-Length: +5',
      'a negative length': 'Content-Length: -1',
      'a space inside the length': 'Content-Length: 1 2',
      'a tab around the length': 'Content-Length: 5\t',
      'a non-breaking space before the length': 'Content-Length: \xa05',
      'an empty length': 'Content-Length:',
      'a hexadecimal length': 'Content-Length: 0x5',
      'a tab in Connection': 'Connection: close\t\r\nContent-Length: 0',
    };
    for (const [why, fields] of Object.entries(refused)) {
      for (const [status, method] of [
        ['200 OK', 'GET'],
        ['200 OK', 'HEAD'],
        ['204 No Content', 'GET'],
        ['304 Not Modified', 'GET'],
        ['100 Continue', 'GET'],
      ]) {
        expect(() => frameResponses(`HTTP/1.1 ${status}\r\n${fields}\r\n\r\n`, 1024, [method]), `${why} (${status} to ${method})`).toThrow(FramingError);
      }
    }
    expect(() => frameResponses('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 64), 'Transfer-Encoding in HTTP/1.0').toThrow(FramingError);
    // What is still allowed: spaces around a length, chunked in any case, a close-delimited body.
    expect(frameResponses('HTTP/1.1 200 OK\r\nContent-Length:  3 \r\n\r\nabc', 64).framings).toEqual(['length 3']);
    expect(frameResponses('HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n', 64).framings).toEqual(['chunked']);
    expect(frameResponses('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc', 64).framings).toEqual(['close']);
  });

  it('refuses bytes after a response that closes the connection, and drops empty lines there', () => {
    for (const [head, closes] of [
      ['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0', true],
      ['HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0', true],
      ['HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0', true],
      ['HTTP/1.0 200 OK\r\nContent-Length: 0', true],
      ['HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0', true],
      ['HTTP/1.1 100 Continue\r\nConnection: close', true],
      ['HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0', false],
      ['HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0', false],
    ] as const) {
      const next = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
      if (closes) expect(() => frameResponses(`${head}\r\n\r\n${next}`, 7), head).toThrow(FramingError);
      else {
        const { heads, framer } = frameResponses(`${head}\r\n\r\n${next}`, 7);
        expect([heads.length, framer.ended], head).toEqual([2, false]);
      }
      if (!closes) continue;
      const { framer } = frameResponses(`${head}\r\n\r\n\r\n\n`, 7);
      expect(framer.atHead).toBe(true);
      expect(framer.idle).toBe(true);
      expect(framer.ended).toBe(true);
      framer.feed(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'));
      expect(() => framer.next()).toThrow(FramingError);
      expect(framer.ended).toBe(true);
    }
  });
});

describe('HTTP/1.1 framer: requests', () => {
  it('takes request lines Node would take, and no other', () => {
    expect(requestLine('GET /a?b=c#d HTTP/1.1')).toEqual({ method: 'GET', target: '/a?b=c#d' });
    expect(requestLine('OPTIONS * HTTP/1.1')).toEqual({ method: 'OPTIONS', target: '*' });
    expect(requestLine('GET http://h:80/p?q HTTP/1.1')).toEqual({ method: 'GET', target: 'http://h:80/p?q' });
    expect(requestLine('CONNECT h:443 HTTP/1.1')).toEqual({ method: 'CONNECT', target: 'h:443' });
    expect(requestLine('PROPFIND /dav HTTP/1.1')).toEqual({ method: 'PROPFIND', target: '/dav' });
    for (const line of [
      'GET /a\x01b HTTP/1.1',
      'GET /a\x7f HTTP/1.1',
      'GET /\xe9 HTTP/1.1',
      'GET /a\tb HTTP/1.1',
      'GET /a b HTTP/1.1',
      'GET  / HTTP/1.1',
      'GET / HTTP/1.0',
      'GET / HTTP/1.1 ',
      'get / HTTP/1.1',
      'FOO / HTTP/1.1',
      'PRI * HTTP/1.1',
      'GET * HTTP/1.1',
      'GET h:80 HTTP/1.1',
      'GET a HTTP/1.1',
      'GET ?a HTTP/1.1',
      'GET http:/x HTTP/1.1',
      'GET http://h#x HTTP/1.1',
      'CONNECT / HTTP/1.1',
    ]) {
      expect(requestLine(line), JSON.stringify(line)).toBeUndefined();
    }
  });

  it('refuses request heads and framing fields it must not guess at', () => {
    const refused: Record<string, string> = {
      'a control character in a value': 'GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n',
      'a vertical tab in a value': 'GET / HTTP/1.1\r\nX: \x0b\r\n\r\n',
      'a control character in the request line': 'GET /\x01 HTTP/1.1\r\n\r\n',
      'a signed length': 'POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc',
      'a space inside the length': 'POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n',
      'a list of equal lengths': 'POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc',
      'a repeated length': 'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
      'a tab in the length': 'POST / HTTP/1.1\r\nContent-Length:\t3\r\n\r\nabc',
      'a tab in Transfer-Encoding': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n',
      'Transfer-Encoding in HTTP/1.0': 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      CONNECT: 'CONNECT h:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n',
      'a space before a chunk extension': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 ;a=b\r\nx\r\n0\r\n\r\n',
      'a space after the chunk size': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n',
      'an empty chunk extension': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;\r\nx\r\n0\r\n\r\n',
      'a control character in a chunk extension': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\x01\r\nx\r\n0\r\n\r\n',
      'an unterminated quoted extension': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a="b\r\nx\r\n0\r\n\r\n',
      'a bare LF after a chunk size': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n',
      'Content-Length in trailers': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n',
      'Transfer-Encoding in trailers': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n',
      'Connection in trailers': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nConnection: close\r\n\r\n',
      'a bare LF in trailers': 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\n',
      'a request after Connection: close': 'GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n',
    };
    for (const [why, input] of Object.entries(refused)) expect(() => frame(input, 5), why).toThrow(FramingError);
    // Quoted chunk extensions and other trailers are fine.
    const ok = 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a="b \\"c\\""\r\nx\r\n0\r\nX-Checksum: 1\r\n\r\n';
    expect(frame(ok, 5).out).toBe(ok);
  });
});
