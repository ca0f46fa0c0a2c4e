/**
 * Incremental HTTP/1.1 message framing over a byte stream, for relays that pass bodies through untouched and only
 * read (and may rewrite) message heads. It finds where each head ends and where each body ends (by length, chunked
 * encoding, connection close, or never after a protocol switch); it does not decode bodies.
 *
 * Strict on purpose: whatever it cannot frame without doubt (both Content-Length and Transfer-Encoding, differing
 * lengths, a Transfer-Encoding that does not end in chunked, obsolete line folding, bare LF, stray whitespace) is a
 * FramingError, and the owner hands the bytes to a full HTTP implementation or closes the connection.
 */

/** What framing reads of a head: the start line (`GET /x HTTP/1.1`, `HTTP/1.1 200 OK`) and lowercase header names. */
export interface HeadLike {
  line: string;
  headers: Record<string, string>;
}

/** One parsed head: start line and fields as sent, plus lowercase names joined like Node's IncomingMessage.headers. */
export interface MessageHead extends HeadLike {
  fields: Array<[name: string, value: string]>;
}

/** How the body after a head is delimited. */
export type BodyFraming = { type: 'none' } | { type: 'length'; length: number } | { type: 'chunked' } | { type: 'close' } | { type: 'raw' };

/**
 * What `next()` yields: a head (and its bytes), or a piece of body as it was on the wire (chunk sizes and trailers
 * included). A message is complete when the framer is back at a head (`atHead`).
 */
export type FramerItem<H extends HeadLike = MessageHead> = { kind: 'head'; head: H; raw: Buffer } | { kind: 'body'; data: Buffer };

export class FramingError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 431 = 400,
  ) {
    super(message);
  }
}

export const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 4096;
/** RFC 9110 token characters (method and header names). */
const TCHAR = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]";
const TOKEN = new RegExp(`^${TCHAR}+$`);
const REQUEST_LINE = new RegExp(`^(${TCHAR}+) (\\S+) HTTP/1\\.1$`);
const REQUEST_START = new RegExp(`^${TCHAR}*( |$)`);
const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

const BAD_CHAR = /[\0\r\n]/;

/** Parses a head (without its final blank line). */
export function parseHead(text: string): MessageHead {
  const lines = text.split('\r\n');
  const line = lines[0];
  if (BAD_CHAR.test(line)) throw new FramingError('Bare CR, LF or NUL in the message head');
  const fields: MessageHead['fields'] = [];
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i];
    const colon = l.indexOf(':');
    const name = colon > 0 ? l.slice(0, colon) : '';
    // A name that is not a token also catches obsolete line folding (a line starting with a space).
    if (!TOKEN.test(name)) throw new FramingError('Malformed header line');
    const value = l.slice(colon + 1).trim();
    if (BAD_CHAR.test(value)) throw new FramingError('Bare CR, LF or NUL in the message head');
    fields.push([name, value]);
    const key = name.toLowerCase();
    const prior = headers[key];
    headers[key] = prior === undefined ? value : `${prior}${key === 'cookie' ? '; ' : ', '}${value}`;
  }
  return { line, fields, headers };
}

/** Header names a response is framed and rewritten by. */
const RESPONSE_FIELDS = new Set(['content-length', 'transfer-encoding', 'location']);

/**
 * A response head read for framing only: the status line and the headers in RESPONSE_FIELDS. Cheaper than
 * parseHead (responses outnumber every other head a relay reads); parseHead is there when a head must be rewritten.
 */
export function scanResponseHead(text: string): HeadLike {
  let eol = text.indexOf('\r\n');
  const line = eol < 0 ? text : text.slice(0, eol);
  const headers: Record<string, string> = {};
  while (eol >= 0) {
    const from = eol + 2;
    eol = text.indexOf('\r\n', from);
    const first = text.charCodeAt(from) | 0x20;
    // c(ontent-length), t(ransfer-encoding), l(ocation): anything else is skipped unread.
    if (first !== 0x63 && first !== 0x74 && first !== 0x6c) continue;
    const l = eol < 0 ? text.slice(from) : text.slice(from, eol);
    const colon = l.indexOf(':');
    const name = l.slice(0, colon).toLowerCase();
    if (colon < 0 || !RESPONSE_FIELDS.has(name)) continue;
    const value = l.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { line, headers };
}

/** A head's bytes from a start line and fields. */
export function serializeHead(line: string, fields: MessageHead['fields']): Buffer {
  let text = `${line}\r\n`;
  for (const [name, value] of fields) text += `${name}: ${value}\r\n`;
  return Buffer.from(`${text}\r\n`, 'latin1');
}

function lengthOf(value: string): number {
  const values = value.split(',').map((v) => v.trim());
  if (!values.every((v) => /^\d{1,15}$/.test(v)) || new Set(values).size !== 1) throw new FramingError('Invalid Content-Length');
  return Number(values[0]);
}

function chunkedLast(value: string): boolean {
  const codings = value.split(',').map((v) => v.trim().toLowerCase());
  return codings[codings.length - 1] === 'chunked';
}

/** How a request's body is delimited (RFC 9112 §6.3, refusing what it allows only for compatibility). */
export function requestFraming(head: HeadLike): BodyFraming {
  const te = head.headers['transfer-encoding'];
  const cl = head.headers['content-length'];
  if (te !== undefined) {
    if (cl !== undefined) throw new FramingError('Both Transfer-Encoding and Content-Length');
    if (!chunkedLast(te)) throw new FramingError('A request Transfer-Encoding must end with chunked');
    return { type: 'chunked' };
  }
  if (cl !== undefined) {
    const length = lengthOf(cl);
    return length ? { type: 'length', length } : { type: 'none' };
  }
  return { type: 'none' };
}

/** The status code of a response head, or throws. */
export function statusOf(head: HeadLike): number {
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(head.line);
  if (!m) throw new FramingError('Malformed status line');
  return Number(m[1]);
}

/** Method and target of an HTTP/1.1 request line; undefined for anything else (HTTP/1.0 included). */
export function requestLine(line: string): { method: string; target: string } | undefined {
  const m = REQUEST_LINE.exec(line);
  return m ? { method: m[1], target: m[2] } : undefined;
}

/** How a response's body is delimited, given the method of the request it answers. */
export function responseFraming(head: HeadLike, method: string): BodyFraming {
  const status = statusOf(head);
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) return { type: 'none' };
  if (method === 'CONNECT' && status < 300) return { type: 'raw' };
  const te = head.headers['transfer-encoding'];
  if (te !== undefined) return chunkedLast(te) ? { type: 'chunked' } : { type: 'close' };
  const cl = head.headers['content-length'];
  if (cl !== undefined) {
    const length = lengthOf(cl);
    return length ? { type: 'length', length } : { type: 'none' };
  }
  return { type: 'close' };
}

type State =
  | { at: 'head' }
  | { at: 'framing' }
  | { at: 'length'; left: number }
  | { at: 'chunk-size' }
  | { at: 'chunk-data'; left: number }
  | { at: 'chunk-crlf' }
  | { at: 'trailers' }
  | { at: 'close' };

/**
 * A pull parser: `feed()` bytes as they arrive, then call `next()` until it returns undefined (it needs more bytes).
 * After each head the owner must call `body()` with the framing of what follows. `rest()` takes every byte not yet
 * returned, so the owner can stop at a head and give the stream to someone else.
 */
export class Http1Framer<H extends HeadLike = MessageHead> {
  private pending: Buffer = EMPTY;
  private state: State = { at: 'head' };

  /** `parse` reads each head's text (without the blank line): parseHead, or scanResponseHead for responses. */
  constructor(private readonly parse: (text: string) => H = parseHead as unknown as (text: string) => H) {}

  feed(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
  }

  /** Whether the framer is between messages with nothing buffered. */
  get idle(): boolean {
    return this.state.at === 'head' && this.pending.length === 0;
  }

  /**
   * Whether the bytes buffered at a head could begin a request: a method (a token) and a space, and once the first
   * line is whole, one ending in HTTP/1.x.
   */
  mayBeRequest(): boolean {
    const text = this.pending.toString('latin1', 0, Math.min(this.pending.length, 8192)).replace(/^(\r\n)+/, '');
    const eol = text.indexOf('\r\n');
    const line = eol < 0 ? text : text.slice(0, eol);
    if (!REQUEST_START.test(line)) return false;
    return eol < 0 || / HTTP\/1\.[01]$/.test(line);
  }

  /** Whether it waits for the start of a message (possibly with some of it buffered). */
  get atHead(): boolean {
    return this.state.at === 'head';
  }

  /** Whether the message under way ends only when the connection does (or never: after a protocol switch). */
  get closeDelimited(): boolean {
    return this.state.at === 'close';
  }

  /** From now on every byte is body: the protocol was switched (101), nothing is framed any more. */
  switchToRaw(): void {
    this.state = { at: 'close' };
  }

  /** Sets how the body of the message whose head was just returned is delimited. */
  body(framing: BodyFraming): void {
    if (this.state.at !== 'framing') throw new Error('body() is only valid right after a head');
    if (framing.type === 'none') this.state = { at: 'head' };
    else if (framing.type === 'length') this.state = { at: 'length', left: framing.length };
    else if (framing.type === 'chunked') this.state = { at: 'chunk-size' };
    else this.state = { at: 'close' };
  }

  /** Everything received and not yet returned; the framer is empty afterwards. */
  rest(): Buffer {
    const rest = this.pending;
    this.pending = EMPTY;
    return rest;
  }

  /** Puts bytes back in front (a head the owner decided not to handle). */
  unread(bytes: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([bytes, this.pending]) : bytes;
    this.state = { at: 'head' };
  }

  next(): FramerItem<H> | undefined {
    const s = this.state;
    switch (s.at) {
      case 'head': {
        // RFC 9112 §2.2: an empty line before a request line is ignored.
        let start = 0;
        while (this.pending.length >= start + 2 && this.pending[start] === 13 && this.pending[start + 1] === 10 && start < 8) start += 2;
        const end = this.pending.indexOf(HEAD_END, start);
        if (end < 0) {
          if (this.pending.length > MAX_HEAD_BYTES) throw new FramingError('Request headers too large', 431);
          return undefined;
        }
        if (end - start > MAX_HEAD_BYTES) throw new FramingError('Request headers too large', 431);
        const raw = this.pending.subarray(start, end + 4);
        const head = this.parse(raw.toString('latin1', 0, raw.length - 4));
        this.pending = this.pending.subarray(end + 4);
        this.state = { at: 'framing' };
        return { kind: 'head', head, raw };
      }
      case 'framing':
        throw new Error('body() was not called after a head');
      case 'length':
      case 'chunk-data': {
        // Counted bytes: the rest of a body of known length, or of one chunk.
        if (!this.pending.length) return undefined;
        const data = this.take(Math.min(s.left, this.pending.length));
        s.left -= data.length;
        if (s.left === 0) this.state = s.at === 'length' ? { at: 'head' } : { at: 'chunk-crlf' };
        return { kind: 'body', data };
      }
      case 'close':
        return this.pending.length ? { kind: 'body', data: this.take(this.pending.length) } : undefined;
      case 'chunk-size': {
        const eol = this.pending.indexOf(CRLF);
        if (eol < 0) {
          if (this.pending.length > MAX_CHUNK_LINE) throw new FramingError('Chunk size line too long');
          return undefined;
        }
        const line = this.pending.toString('latin1', 0, eol);
        const m = /^([0-9A-Fa-f]{1,12})(?:[ \t]*;.*)?$/.exec(line);
        if (!m || /[\r\n\0]/.test(line)) throw new FramingError('Malformed chunk size');
        const size = parseInt(m[1], 16);
        this.state = size === 0 ? { at: 'trailers' } : { at: 'chunk-data', left: size };
        return { kind: 'body', data: this.take(eol + 2) };
      }
      case 'chunk-crlf':
        if (this.pending.length < 2) return undefined;
        if (this.pending[0] !== 13 || this.pending[1] !== 10) throw new FramingError('Chunk data not followed by CRLF');
        this.state = { at: 'chunk-size' };
        return { kind: 'body', data: this.take(2) };
      case 'trailers': {
        // Trailer fields, then an empty line; passed on as they are.
        if (this.pending.length >= 2 && this.pending[0] === 13 && this.pending[1] === 10) {
          this.state = { at: 'head' };
          return { kind: 'body', data: this.take(2) };
        }
        const end = this.pending.indexOf(HEAD_END);
        if (end < 0) {
          if (this.pending.length > MAX_HEAD_BYTES) throw new FramingError('Trailers too large');
          return undefined;
        }
        parseHead(`x\r\n${this.pending.toString('latin1', 0, end)}`);
        const data = this.take(end + 4);
        this.state = { at: 'head' };
        return { kind: 'body', data };
      }
    }
  }

  private take(n: number): Buffer {
    const data = this.pending.subarray(0, n);
    this.pending = n === this.pending.length ? EMPTY : this.pending.subarray(n);
    return data;
  }
}
