/**
 * Differential fuzzing of the HTTP/1.1 framer (lib/net/http1) against Node's own parser, llhttp. The preview relay
 * passes messages between a user's front proxy and a sandbox app, both of which most often parse like llhttp: if the
 * relay framed a byte stream differently from them, one sandbox's bytes could be read as another user's response
 * (request and response smuggling).
 *
 * The invariant, for any byte stream cut into any pieces: every message Cove accepts (its head returned by the
 * framer and taken by the functions the relay frames it with) is framed exactly as llhttp frames it, over the whole
 * stream at once: same start and end of the head, same end of the message, same body bytes. Cove may refuse (a
 * FramingError) what llhttp accepts, never accept what llhttp refuses, and never throw anything but FramingError.
 *
 * llhttp is driven through `process.binding('http_parser')`, one byte at a time, so that each callback tells the
 * exact offset where a head or a message ends. Streams are built from realistic pieces (start lines, framing fields
 * and their odd spellings, chunked bodies with extensions and trailers, pipelined messages), sometimes mutated, and
 * from random bytes.
 */
import { describe, expect, it } from 'vitest';
import { FramingError, Http1Framer, parseHead, requestFraming, requestLine, responseFraming, scanResponseHead, statusOf, type BodyFraming, type HeadLike } from '../../lib/net/http1';
import { fc, fuzz, timeoutFor } from './lib';

/** Time budgets under `npm test` (10 s in all). */
const BUDGET = { requests: 4000, responses: 4000, bytes: 2000 };

type Kind = 'request' | 'response';

// ── llhttp ───────────────────────────────────────────────────────────────────────────────────────────────────────

interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | (Error & { code?: string });
  finish(): undefined | (Error & { code?: string });
  close(): void;
  [callback: number]: (...args: never[]) => unknown;
}
interface ParserBinding {
  HTTPParser: {
    new (): NativeParser;
    REQUEST: number;
    RESPONSE: number;
    kOnMessageBegin: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kLenientNone: number;
  };
}

/** Node's binding to llhttp, without the deprecation warning that process.binding prints. */
const { HTTPParser } = (() => {
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    return (process as unknown as { binding(name: string): ParserBinding }).binding('http_parser');
  } finally {
    process.noDeprecation = quiet;
  }
})();

/** One message as llhttp framed it: offsets in the stream (ends exclusive), and the decoded body. */
interface LlMessage {
  begin: number;
  headEnd?: number;
  end?: number;
  body: Buffer[];
  upgrade?: boolean;
}

/**
 * llhttp over `bytes`, strict (no lenient flag, as Node's servers and clients run it). Responses answer `methods` in
 * order (1xx excepted): a response to HEAD has no body. `error` is the offset of the byte llhttp refused.
 */
function llhttp(bytes: Buffer, kind: Kind, methods: string[]): { messages: LlMessage[]; error?: number } {
  const parser = new HTTPParser();
  const messages: LlMessage[] = [];
  let at = 0;
  let finals = 0;
  parser.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
  parser[HTTPParser.kOnMessageBegin] = () => messages.push({ begin: at, body: [] });
  parser[HTTPParser.kOnHeaders] = () => undefined;
  parser[HTTPParser.kOnHeadersComplete] = (...args: unknown[]) => {
    const message = messages[messages.length - 1];
    message.headEnd = at + 1;
    message.upgrade = args[7] as boolean;
    const status = args[5] as number;
    // The return value tells llhttp to skip the body (1: the response to a HEAD request).
    return kind === 'response' && status >= 200 && methods[finals++] === 'HEAD' ? 1 : 0;
  };
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => void messages[messages.length - 1].body.push(Buffer.from(chunk));
  parser[HTTPParser.kOnMessageComplete] = () => void (messages[messages.length - 1].end = at + 1);
  try {
    for (at = 0; at < bytes.length; at++) {
      if (parser.execute(bytes.subarray(at, at + 1)) instanceof Error) return { messages, error: at };
    }
    // The end of the stream ends a close-delimited body.
    at = bytes.length - 1;
    if (parser.finish() instanceof Error) return { messages, error: bytes.length };
    return { messages };
  } finally {
    parser.close();
  }
}

// ── Cove ─────────────────────────────────────────────────────────────────────────────────────────────────────────

/** One message Cove accepted: offsets in the stream, how its body is framed, its body bytes as on the wire. */
interface CoveMessage {
  begin: number;
  headEnd: number;
  framing: BodyFraming;
  wire: Buffer[];
  end?: number;
}

/**
 * The framer over `bytes` cut at `cuts`, each head taken as the relay takes it: a request by requestLine and
 * requestFraming, a response by statusOf and responseFraming (for the method it answers). Stops at the first
 * refusal. `accepted` is the offset up to which every byte was returned as part of an accepted message.
 */
function cove(bytes: Buffer, cuts: number[], kind: Kind, methods: string[]): { messages: CoveMessage[]; accepted: number; refused?: FramingError } {
  const framer = new Http1Framer<HeadLike>(kind === 'request' ? parseHead : scanResponseHead);
  const messages: CoveMessage[] = [];
  let at = 0;
  let finals = 0;
  const headFraming = (head: HeadLike): BodyFraming => {
    if (kind === 'request') {
      if (!requestLine(head.line)) throw new FramingError('not a request line the relay takes');
      return requestFraming(head);
    }
    const status = statusOf(head);
    return responseFraming(head, status >= 200 ? (methods[finals++] ?? 'GET') : 'GET');
  };
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  points.push(bytes.length);
  let from = 0;
  try {
    for (const to of points) {
      framer.feed(bytes.subarray(from, to));
      from = to;
      for (let item = framer.next(); item; item = framer.next()) {
        if (item.kind === 'head') {
          // Empty lines before a head are dropped: the head is here, or after up to four CRLF.
          let begin = at;
          while (!bytes.subarray(begin, begin + item.raw.length).equals(item.raw)) {
            expect(bytes.toString('latin1', begin, begin + 2), 'only CRLF is skipped before a head').toBe('\r\n');
            begin += 2;
          }
          if (kind === 'response') sameFields(item.head, item.raw);
          const framing = headFraming(item.head);
          const message: CoveMessage = { begin, headEnd: begin + item.raw.length, framing, wire: [] };
          messages.push(message);
          framer.body(framing);
          at = message.headEnd;
        } else {
          expect(item.data.equals(bytes.subarray(at, at + item.data.length)), 'body bytes are given back in order').toBe(true);
          messages[messages.length - 1].wire.push(item.data);
          at += item.data.length;
        }
        if (framer.atHead && messages.length && messages[messages.length - 1].end === undefined) messages[messages.length - 1].end = at;
      }
    }
  } catch (err) {
    if (!(err instanceof FramingError)) throw err;
    return { messages, accepted: at, refused: err };
  }
  // A close-delimited body ends with the stream.
  const last = messages[messages.length - 1];
  if (last?.framing.type === 'close') last.end = bytes.length;
  return { messages, accepted: at };
}

/** The relay rewrites a response head it took with parseHead: that must read it, and read the same fields. */
function sameFields(head: HeadLike, raw: Buffer): void {
  let full: HeadLike | undefined;
  try {
    full = parseHead(raw.toString('latin1', 0, raw.length - 4));
  } catch (err) {
    expect.fail(`parseHead refused a head scanResponseHead took: ${JSON.stringify(raw.toString('latin1'))} (${err})`);
  }
  for (const [name, value] of Object.entries(head.headers)) expect(full.headers[name], name).toBe(value);
}

/** The data of a chunked body Cove accepted whole (sizes, extensions and trailers dropped). */
function dechunk(wire: Buffer): Buffer {
  const data: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = wire.indexOf('\r\n', at);
    const size = parseInt(wire.toString('latin1', at, eol).split(';')[0], 16);
    if (size === 0) return Buffer.concat(data);
    data.push(wire.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** Checks the invariant of this file for one stream; a failure names what differs. */
function same(bytes: Buffer, cuts: number[], kind: Kind, methods: string[]): void {
  const ours = cove(bytes, cuts, kind, methods);
  const theirs = llhttp(bytes, kind, methods);
  const shown = JSON.stringify(bytes.toString('latin1'));
  // Nothing Cove accepted may reach the byte llhttp refused.
  if (theirs.error !== undefined) expect(ours.accepted, `Cove accepted the byte llhttp refused (${theirs.error}) in ${shown}`).toBeLessThanOrEqual(theirs.error);
  for (let i = 0; i < ours.messages.length; i++) {
    const our = ours.messages[i];
    const their = theirs.messages[i];
    const where = `message ${i} of ${shown}`;
    expect(their?.headEnd, `llhttp has no head for ${where}`).toBeDefined();
    expect([our.begin, our.headEnd], `head boundaries of ${where}`).toEqual([their.begin, their.headEnd]);
    // After a protocol switch (an upgrade request) neither parser frames anything more.
    if (their.upgrade) return;
    if (our.end === undefined && ours.refused) {
      // Refused in its body: what Cove passed on of it must still be in llhttp's message, not in the next one.
      if (their.end !== undefined) expect(their.end, `end of ${where}, refused in its body`).toBeGreaterThanOrEqual(ours.accepted);
      return;
    }
    expect(our.end, `end of ${where}`).toBe(their.end);
    if (our.end !== undefined) {
      const wire = Buffer.concat(our.wire);
      const body = our.framing.type === 'chunked' ? dechunk(wire) : wire;
      expect(body.toString('latin1'), `body of ${where}`).toBe(Buffer.concat(their.body).toString('latin1'));
    }
  }
  if (ours.refused) return;
  // Cove refused nothing: it framed every message llhttp framed, no fewer.
  const framed = theirs.messages.filter((m) => m.headEnd !== undefined);
  const upgrade = framed.findIndex((m) => m.upgrade);
  expect(ours.messages.length, `messages framed in ${shown}`).toBe(upgrade < 0 ? framed.length : Math.min(framed.length, upgrade + 1));
}

// ── Generators ───────────────────────────────────────────────────────────────────────────────────────────────────

/** Mostly the first, sometimes any of the others. */
function mostly<T>(usual: T, ...others: T[]): fc.Arbitrary<T> {
  return fc.oneof({ weight: 30, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constantFrom(...others) });
}

/** Mostly one of `usual`, sometimes (one time in `odds`) one of `odd`. */
function usually<T>(usual: T[], odd: T[], odds = 5): fc.Arbitrary<T> {
  return fc.oneof({ weight: odds - 1, arbitrary: fc.constantFrom(...usual) }, { weight: 1, arbitrary: fc.constantFrom(...odd) });
}

const EOL = mostly('\r\n', '\n', '\r', '\r\r\n', '\n\r');
const LEADING = mostly('', '\r\n', '\r\n\r\n', '\r\n'.repeat(5), '\n', '\r');
const SEPARATOR = mostly(': ', ':', ':\t', ':  ', ' :', '\t:', ': \t');

/** Values of the fields that frame a message or end a connection: the usual ones, and odd spellings. */
const FRAMING_VALUES = {
  'Content-Length': usually(['0', '5', '10', '3'], ['05', '+5', '5, 5', '5,5', '5,6', ' 5', '5 ', '5\t', '\t5', '-1', '1 2', '0x5', '99999999999999999999', '', '\xa05']),
  'Transfer-Encoding': usually(
    ['chunked', 'gzip, chunked', 'CHUNKED', ' chunked'],
    ['chunked, gzip', 'Chunked', 'chunked\t', '\tchunked', 'chunked,', ',chunked', 'gzip,chunked', 'gzip ,\tchunked', 'chunked, chunked', 'gzip', 'identity', '', 'chunked;q=1', 'gzip;q=1, chunked', '"chunked"', 'gzip chunked', 'xchunked'],
  ),
  Connection: usually(['keep-alive', 'close', 'x, close', 'Keep-Alive'], ['Close', 'CLOSE', 'close,', ',close', 'close\t', 'close x', 'xclose', 'keep-alive, close', 'upgrade', 'Upgrade', 'upgrade, close', 'keep-alive\t', 'te']),
  'Proxy-Connection': usually(['keep-alive'], ['close', 'Close']),
  Upgrade: fc.constantFrom('websocket', 'h2c'),
};
type FramingName = keyof typeof FRAMING_VALUES;
const framingField = (name: FramingName) => fc.tuple(mostly(name, name.toLowerCase(), name.toUpperCase()), SEPARATOR, FRAMING_VALUES[name], EOL).map((parts) => parts.join(''));

/** One field line: a framing field, another field, or (seldom) something that is not a field line. */
const fieldLine: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...(Object.keys(FRAMING_VALUES) as FramingName[])).chain(framingField) },
  {
    weight: 12,
    arbitrary: fc
      .tuple(
        usually(['Host', 'X-A', 'Cookie', 'Set-Cookie', 'Keep-Alive', 'Date'], ['content-length', 'Content-Length ', 'Bad Name', 'X\x01', 'X-\xe9', '', 'X\t', '{X}'], 12),
        SEPARATOR,
        usually(['x', 'a b', 'sid=1; Expires=Wed, 09 Jun 2027 10:18:14 GMT', '\xe9', '', 'a\tb', ' a\t', '5', 'close'], ['a\x01b', 'a\x7f', 'a\rb', 'a\nb', 'a\0b', '\x0b'], 12),
        EOL,
      )
      .map((parts) => parts.join('')),
  },
  // Obsolete line folding, a line without a colon, an empty line too early.
  { weight: 1, arbitrary: fc.constantFrom(' folded\r\n', '\tfolded\r\n', 'NoColon\r\n', '\r\n', 'X: a\r\n b\r\n') },
);

const chunkExtension = mostly('', ';a=b', ';a', ';a="b c"', ';a="b\\"c"', ';a=b;c', '; a=b', ';a = b', ' ;a=b', ';', ';a=\x01', ';a="\x01"', ';a="\xe9"', ';a=\xe9', '\t;a=b');

/** One chunk: a size (right, wrong or malformed), extensions, data and the CRLF after it. */
const chunk: fc.Arbitrary<string> = fc
  .tuple(fc.string({ maxLength: 12, unit: fc.constantFrom('a', 'b', 'z', '\r', '\n', '0') }), mostly(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), chunkExtension, EOL, mostly('\r\n', '', '\n', 'xx'))
  .map(([data, form, ext, eol, after]) => {
    const hex = data.length.toString(16);
    const sizes = [hex, hex.toUpperCase(), `00${hex}`, (data.length + 1).toString(16), data.length ? (data.length - 1).toString(16) : 'g', '', ` ${hex}`, `${hex} `, `0x${hex}`, 'fffffffffffffffff', '-1'];
    return `${sizes[form]}${ext}${eol}${data}${after}`;
  });

/** A chunked body: chunks, the last chunk, trailer fields and the final CRLF. */
const chunkedBody: fc.Arbitrary<string> = fc
  .tuple(fc.array(chunk, { maxLength: 3 }), chunkExtension, EOL, fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(fieldLine, { maxLength: 2 }) }), mostly('\r\n', '', '\n'))
  .map(([chunks, ext, eol, trailers, end]) => `${chunks.join('')}0${ext}${eol}${trailers.join('')}${end}`);

const someBytes = fc.string({ maxLength: 12, unit: fc.constantFrom('x', 'y', '\r', '\n', 'H') });

/**
 * The framing fields and body of a message: none; a Content-Length and as many bytes (sometimes not); a
 * Transfer-Encoding and a chunked body; or any framing fields and any bytes.
 */
const framedBody: fc.Arbitrary<{ fields: string[]; body: string }> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ fields: [] as string[], body: '' }) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.string({ maxLength: 12, unit: fc.constantFrom('x', 'y', '\r', '\n') }), SEPARATOR, mostly('', 'x', '\r\n'))
      .map(([body, sep, extra]) => ({ fields: [`Content-Length${sep}${body.length}\r\n`], body: body + extra })),
  },
  { weight: 3, arbitrary: fc.tuple(framingField('Transfer-Encoding'), chunkedBody).map(([field, body]) => ({ fields: [field], body })) },
  { weight: 2, arbitrary: fc.tuple(fc.array(framingField('Content-Length'), { maxLength: 2 }), fc.array(framingField('Transfer-Encoding'), { maxLength: 2 }), fc.oneof(someBytes, chunkedBody)).map(([cl, te, body]) => ({ fields: [...cl, ...te], body })) },
);

/** A head's field lines (framing fields among others, in any order), the blank line, and what follows it. */
const fieldsAndBody: fc.Arbitrary<string> = fc
  .tuple(framedBody, fc.array(fieldLine, { maxLength: 3 }), fc.nat(), EOL)
  .map(([{ fields, body }, others, at, end]) => {
    const all = [...others];
    for (const field of fields) all.splice(at % (all.length + 1), 0, field);
    return `${all.join('')}${end}${body}`;
  });

const requestMessage: fc.Arbitrary<string> = fc
  .tuple(
    LEADING,
    mostly('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND', 'M-SEARCH', 'CONNECT', 'FOO', 'get', 'PRI', 'G T', ''),
    mostly(' ', '  ', '\t', ''),
    mostly('/', '/a?b=c', '/x#f', '*', 'http://h/p', 'http://h', 'HTTP://H:80/?q', 'h:80', '/\x01', '/\x7f', '/\xe9', '/a b', '', '//', 'a', '/%zz', 'http://h#x', 'http:/x', '?a', '/"<>{}|\\^`'),
    mostly(' ', '  ', '\t', ''),
    mostly('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ', 'HTTP/1.10', 'HTTP/0.9'),
    EOL,
    fieldsAndBody,
  )
  .map((parts) => parts.join(''));

const responseMessage: fc.Arbitrary<string> = fc
  .tuple(
    LEADING,
    mostly('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'http/1.1'),
    mostly(' ', '  ', '\t', ''),
    usually(['200', '200', '204', '304', '100', '404'], ['102', '103', '110', '199', '205', '500', '099', '600', '2000', '20', '101']),
    mostly(' OK', '', ' ', '  OK', '\tOK', ' O\x01K', ' \xe9', 'OK'),
    EOL,
    fieldsAndBody,
  )
  .map((parts) => parts.join(''));

/** A few bytes replaced, inserted or removed somewhere. */
const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 });
function mutate(text: string, edits: Array<[number, number, number]>): Buffer {
  let bytes = Buffer.from(text, 'latin1');
  for (const [position, kind, byte] of edits) {
    const at = position % (bytes.length + 1);
    const b = Buffer.from([byte]);
    if (kind === 0) bytes = Buffer.concat([bytes.subarray(0, at), b, bytes.subarray(at + 1)]);
    else if (kind === 1) bytes = Buffer.concat([bytes.subarray(0, at), b, bytes.subarray(at)]);
    else bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
  }
  return bytes;
}

/** Pipelined messages, sometimes mutated; where to cut the stream; the methods the responses answer. */
function streams(message: fc.Arbitrary<string>) {
  return fc.record({
    messages: fc.array(message, { minLength: 1, maxLength: 4 }),
    edits: fc.oneof({ weight: 4, arbitrary: fc.constant([] as Array<[number, number, number]>) }, { weight: 1, arbitrary: mutation }),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
    methods: fc.array(mostly('GET', 'HEAD', 'POST'), { minLength: 4, maxLength: 4 }),
  });
}

describe('HTTP/1.1 framer against llhttp', () => {
  it('frames requests as llhttp does, or refuses them', { timeout: timeoutFor(BUDGET.requests) }, async () => {
    await fuzz(
      'http1 requests vs llhttp',
      fc.property(streams(requestMessage), ({ messages, edits, cuts }) => same(mutate(messages.join(''), edits), cuts, 'request', [])),
      BUDGET.requests,
    );
  });

  it('frames responses as llhttp does, or refuses them', { timeout: timeoutFor(BUDGET.responses) }, async () => {
    await fuzz(
      'http1 responses vs llhttp',
      fc.property(streams(responseMessage), ({ messages, edits, cuts, methods }) => same(mutate(messages.join(''), edits), cuts, 'response', methods)),
      BUDGET.responses,
    );
  });

  it('throws nothing but FramingError on random bytes, and accepts nothing llhttp refuses', { timeout: timeoutFor(BUDGET.bytes) }, async () => {
    const text = fc.string({ maxLength: 200, unit: fc.constantFrom('\r', '\n', ' ', ':', '0', '5', 'a', 'G', 'E', 'T', '/', 'H', '1', '.', ';', '\t', '\0', 'P') });
    await fuzz(
      'http1 random bytes',
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 300 }), text.map((t) => new Uint8Array(Buffer.from(`GET / HTTP/1.1\r\n${t}`, 'latin1'))), text.map((t) => new Uint8Array(Buffer.from(`HTTP/1.1 200 OK\r\n${t}`, 'latin1')))),
        fc.array(fc.nat(), { maxLength: 8 }),
        (bytes, cuts) => {
          same(Buffer.from(bytes), cuts, 'request', []);
          same(Buffer.from(bytes), cuts, 'response', ['GET', 'HEAD', 'GET', 'GET']);
        },
      ),
      BUDGET.bytes,
    );
  });
});
