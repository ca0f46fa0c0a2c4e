/**
 * Incremental HTTP/1.1 message framing over a byte stream, for relays that pass bodies through untouched and only
 * read (and may rewrite) message heads. It finds where each head ends and where each body ends (by length, chunked
 * encoding, connection close, or never after a protocol switch); it does not decode bodies.
 *
 * Strict on purpose: whatever it cannot frame without doubt is a FramingError, and the owner hands the bytes to a full
 * HTTP implementation or closes the connection. Requests and responses are held to the same grammar (RFC 9110/9112):
 * - a head is lines ended by CRLF: a bare CR, a bare LF or a NUL anywhere in it is refused, as soon as it arrives;
 * - a field line is `token ":" value`: no whitespace before the colon, no obsolete line folding; a value holds HTAB,
 *   SP, visible ASCII and obs-text (0x80-0xff), no other control character;
 * - Content-Length is one run of digits (no sign, no list, no repeated field, even with equal values);
 *   Transfer-Encoding is a list of tokens that ends with chunked and names it once, never beside Content-Length,
 *   never in an HTTP/1.0 message; these two, Connection and Proxy-Connection hold no tab (Node's parser reads
 *   `chunked<TAB>` as another coding than `chunked`) and never appear in trailers;
 * - a chunk line is hex digits and RFC 9112 chunk extensions, nothing else (no whitespace);
 * - nothing may follow a message that closes the connection (Connection or Proxy-Connection: close, or HTTP/1.0
 *   without keep-alive) but empty lines, which are dropped.
 * Every rule was checked against Node's own parser (llhttp) by test/fuzz/http1-differential.test.ts: whatever this
 * framer accepts, llhttp frames the same way.
 */
import { METHODS } from 'node:http';

/**
 * What framing reads of a head: the start line (`GET /x HTTP/1.1`, `HTTP/1.1 200 OK`) and lowercase header names.
 * Repeated fields are joined with ", ", except `cookie` ("; ") and `set-cookie`, whose values are joined with "\n"
 * (a Set-Cookie value may hold commas, in Expires, but never a LF): `headers['set-cookie'].split('\n')` gives them back.
 * Values are trimmed of the spaces and tabs around them.
 */
export interface HeadLike {
  line: string;
  headers: Record<string, string>;
}

/** One parsed head: start line and fields as sent (values trimmed), plus `headers` as in HeadLike. */
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

/** Refused input, never a bug: built without a stack trace (hostile clients make many, and nobody reads them). */
export class FramingError extends Error {
  readonly status: 400 | 431;
  constructor(message: string, status: 400 | 431 = 400) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.status = status;
  }
}

/** The largest head (and trailer section) framed: the same as Node's HTTP server (maxHeaderSize), which takes what the relay hands back. */
export const MAX_HEAD_BYTES = 16 * 1024;
const MAX_CHUNK_LINE = 4096;
/** RFC 9110 token characters (method and header names). */
const TCHAR = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]";
/** Field value characters (RFC 9110 §5.5): HTAB, SP, VCHAR, obs-text. */
const VCHAR = '[\\t\\x20-\\x7e\\x80-\\xff]';
const TOKEN = new RegExp(`^${TCHAR}+$`);
const FIELD_LINE = new RegExp(`^(${TCHAR}+):(${VCHAR}*)$`);
const START_LINE = new RegExp(`^${VCHAR}*$`);
/**
 * A status line: HTTP/1.0 or 1.1, a code at offset 9, an optional reason. The code is one RFC 9110 §15 allows
 * (100 to 599), and among informational ones only 100 to 103: Node's parser frames the body of any other 1xx by its
 * Content-Length or Transfer-Encoding, where RFC 9112 §6.3 says it has none.
 */
const STATUS_LINE = `HTTP/1\\.[01] (?:10[0-3]|[2-5]\\d\\d)(?: ${VCHAR}*)?`;
const STATUS = new RegExp(`^${STATUS_LINE}$`);
/** A whole response head in one pass: the status line, then field lines, each after a CRLF. */
const RESPONSE_HEAD = new RegExp(`^${STATUS_LINE}(?:\\r\\n${TCHAR}+:${VCHAR}*)*$`);
/**
 * Request targets (RFC 9112 §3.2), in ASCII only: origin-form, absolute-form (a scheme of letters, an authority of
 * RFC 3986 characters), asterisk-form (OPTIONS) and authority-form (CONNECT).
 */
const AUTHORITY_CHAR = "[-A-Za-z0-9._~!$&'()*+,;=:@%\\[\\]]";
const REQUEST_LINE = new RegExp(
  `^(${TCHAR}+) (?:(/[!-~]*|[A-Za-z]+://${AUTHORITY_CHAR}*(?:[/?][!-~]*)?)|(\\*)|(${AUTHORITY_CHAR}+:\\d+)) HTTP/1\\.1$`,
);
/** The methods Node's own parser knows: a request the HTTP server behind a relay would refuse is not relayed. */
const KNOWN_METHODS = new Set(METHODS);
const REQUEST_START = new RegExp(`^${TCHAR}*( |$)`);
/** A chunk line (RFC 9112 §7.1.1): size, then `;name` or `;name=value` extensions, without whitespace. */
const QUOTED = '"(?:[\\t !#-\\[\\]-~\\x80-\\xff]|\\\\[\\t\\x20-\\x7e\\x80-\\xff])*"';
const CHUNK_LINE = new RegExp(`^([0-9A-Fa-f]{1,12})(?:;${TCHAR}+(?:=(?:${TCHAR}+|${QUOTED}))?)*$`);
const EMPTY = Buffer.alloc(0);
const HEAD_END = Buffer.from('\r\n\r\n');

/** Fields that frame a message or end its connection: no tab in them, and none in trailers. */
const FRAMING_FIELDS = new Set(['content-length', 'transfer-encoding', 'connection', 'proxy-connection']);

/** `value` without the spaces and tabs around it. */
function trimOws(value: string): string {
  let from = 0;
  let to = value.length;
  while (from < to && (value.charCodeAt(from) === 32 || value.charCodeAt(from) === 9)) from++;
  while (to > from && (value.charCodeAt(to - 1) === 32 || value.charCodeAt(to - 1) === 9)) to--;
  return from === 0 && to === value.length ? value : value.slice(from, to);
}

/** Adds a field's value under its lowercase name, joined to an earlier one as HeadLike says; returns the value. */
function addField(headers: Record<string, string>, key: string, raw: string): string {
  if (raw.includes('\t') && FRAMING_FIELDS.has(key)) throw new FramingError(`A tab in ${key}`);
  const value = trimOws(raw);
  const prior = headers[key];
  headers[key] = prior === undefined ? value : `${prior}${key === 'cookie' ? '; ' : key === 'set-cookie' ? '\n' : ', '}${value}`;
  return value;
}

/** Parses a head (without its final blank line): any start line without control characters, then field lines. */
export function parseHead(text: string): MessageHead {
  const lines = text.split('\r\n');
  const line = lines[0];
  if (!START_LINE.test(line)) throw new FramingError('A bare CR or LF, a NUL or another control character in the start line');
  const fields: MessageHead['fields'] = [];
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    // A name that is not a token also catches obsolete line folding (a line starting with a space).
    const m = FIELD_LINE.exec(lines[i]);
    if (!m) throw new FramingError('Malformed header line');
    fields.push([m[1], addField(headers, m[1].toLowerCase(), m[2])]);
  }
  return { line, fields, headers };
}

/**
 * The lowercase name of the field line at `from` (its colon at `colon`) if it is one a response is framed and
 * rewritten by: content-length, transfer-encoding, connection, proxy-connection, location, set-cookie (the relay
 * drops cookies set for other hosts). Compared in place, without copying: the head is validated already, so a name
 * holds token characters only, and `| 0x20` lowercases its letters and leaves `-` as it is.
 */
function responseField(text: string, from: number, colon: number): string | undefined {
  let name: string;
  switch (colon - from) {
    case 8:
      name = 'location';
      break;
    case 10:
      name = (text.charCodeAt(from) | 0x20) === 0x63 ? 'connection' : 'set-cookie';
      break;
    case 14:
      name = 'content-length';
      break;
    case 16:
      name = 'proxy-connection';
      break;
    case 17:
      name = 'transfer-encoding';
      break;
    default:
      return undefined;
  }
  for (let i = 0; i < name.length; i++) if ((text.charCodeAt(from + i) | 0x20) !== name.charCodeAt(i)) return undefined;
  return name;
}

/**
 * A response head read for framing: the head is validated whole in one pass (status line, every field line, as the
 * module comment says), then only the status line and the fields responseField names are read: content-length,
 * transfer-encoding, connection, proxy-connection, location and set-cookie (values joined with "\n", see HeadLike).
 * Cheaper than parseHead (responses outnumber every other head a relay reads); parseHead is there when a head must
 * be rewritten.
 */
export function scanResponseHead(text: string): HeadLike {
  if (!RESPONSE_HEAD.test(text)) throw new FramingError('Malformed response head');
  let eol = text.indexOf('\r\n');
  const line = eol < 0 ? text : text.slice(0, eol);
  const headers: Record<string, string> = {};
  while (eol >= 0) {
    const from = eol + 2;
    eol = text.indexOf('\r\n', from);
    // c(ontent-length, onnection), t(ransfer-encoding), l(ocation), s(et-cookie), p(roxy-connection): others unread.
    const first = text.charCodeAt(from) | 0x20;
    if (first !== 0x63 && first !== 0x74 && first !== 0x6c && first !== 0x73 && first !== 0x70) continue;
    const colon = text.indexOf(':', from);
    const name = responseField(text, from, colon);
    if (name !== undefined) addField(headers, name, eol < 0 ? text.slice(colon + 1) : text.slice(colon + 1, eol));
  }
  return { line, headers };
}

/** A head's bytes from a start line and fields. */
export function serializeHead(line: string, fields: MessageHead['fields']): Buffer {
  let text = `${line}\r\n`;
  for (const [name, value] of fields) text += `${name}: ${value}\r\n`;
  return Buffer.from(`${text}\r\n`, 'latin1');
}

/** A Content-Length: digits only; a list or a repeated field (joined with ", ") is refused even with equal values. */
function lengthOf(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new FramingError('Invalid Content-Length');
  return Number(value);
}

/** Checks a Transfer-Encoding: tokens, the last one chunked, chunked nowhere else. */
function checkChunked(value: string): void {
  const codings = value.split(',');
  for (let i = 0; i < codings.length; i++) {
    const coding = trimOws(codings[i]);
    const chunked = coding.toLowerCase() === 'chunked';
    if (!TOKEN.test(coding) || chunked !== (i === codings.length - 1)) {
      throw new FramingError('A Transfer-Encoding must be a list of codings ending with chunked, and name it once');
    }
  }
}

/**
 * The framing fields of a head, checked: Content-Length and Transfer-Encoding (not both, a valid length, a coding
 * list ending with chunked, no Transfer-Encoding in HTTP/1.0). Returns the length, 'chunked', or undefined (neither).
 */
function framingFields(head: HeadLike, http10: boolean): number | 'chunked' | undefined {
  const te = head.headers['transfer-encoding'];
  const cl = head.headers['content-length'];
  if (te !== undefined) {
    if (cl !== undefined) throw new FramingError('Both Transfer-Encoding and Content-Length');
    if (http10) throw new FramingError('Transfer-Encoding in an HTTP/1.0 message');
    checkChunked(te);
    return 'chunked';
  }
  return cl === undefined ? undefined : lengthOf(cl);
}

/**
 * How a request's body is delimited (RFC 9112 §6.3, refusing what it allows only for compatibility). A CONNECT
 * request is refused: what follows it is a tunnel or another request, depending on the response.
 */
export function requestFraming(head: HeadLike): BodyFraming {
  if (head.line.startsWith('CONNECT ')) throw new FramingError('CONNECT opens a tunnel');
  const framing = framingFields(head, head.line.endsWith(' HTTP/1.0'));
  if (framing === 'chunked') return { type: 'chunked' };
  return framing ? { type: 'length', length: framing } : { type: 'none' };
}

/** The status code of a response head (HTTP/1.0 or 1.1, 100 to 103 or 200 to 599), or throws. */
export function statusOf(head: HeadLike): number {
  if (!STATUS.test(head.line)) throw new FramingError('Malformed status line');
  return Number(head.line.slice(9, 12));
}

/**
 * Method and target of an HTTP/1.1 request line; undefined for anything else: HTTP/1.0, a method Node's parser does
 * not know (http.METHODS), a target with a space, a control character or a byte above 0x7e, `*` other than for
 * OPTIONS, an authority-form target other than for CONNECT (and CONNECT with any other).
 */
export function requestLine(line: string): { method: string; target: string } | undefined {
  const m = REQUEST_LINE.exec(line);
  if (!m || !KNOWN_METHODS.has(m[1])) return undefined;
  const method = m[1];
  if (m[2] !== undefined ? method === 'CONNECT' : m[3] !== undefined ? method !== 'OPTIONS' : method !== 'CONNECT') return undefined;
  return { method, target: m[2] ?? m[3] ?? m[4] };
}

/**
 * How a response's body is delimited, given the method of the request it answers. Its framing fields are checked
 * even where they do not apply (HEAD, 1xx, 204, 304): Content-Length beside Transfer-Encoding, an invalid length, or
 * a Transfer-Encoding that does not end with chunked is refused (RFC 9112 would read that last as close-delimited;
 * Cove does not guess). A response with neither field is close-delimited.
 */
export function responseFraming(head: HeadLike, method: string): BodyFraming {
  const status = statusOf(head);
  const framing = framingFields(head, head.line.startsWith('HTTP/1.0'));
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) return { type: 'none' };
  if (method === 'CONNECT' && status < 300) return { type: 'raw' };
  if (framing === 'chunked') return { type: 'chunked' };
  if (framing === undefined) return { type: 'close' };
  return framing ? { type: 'length', length: framing } : { type: 'none' };
}

/** Whether a connection option is listed in a Connection value (comma-separated, case-insensitive). */
function hasOption(value: string | undefined, option: string): boolean {
  if (value === undefined) return false;
  for (const item of value.split(',')) if (trimOws(item).toLowerCase() === option) return true;
  return false;
}

/**
 * Whether the connection ends after this message (RFC 9112 §9.6): `close` in Connection or Proxy-Connection (Node's
 * parser honours both), or HTTP/1.0 without `keep-alive` in Connection.
 */
function closesConnection(head: HeadLike): boolean {
  const { connection } = head.headers;
  if (hasOption(connection, 'close') || hasOption(head.headers['proxy-connection'], 'close')) return true;
  const http10 = head.line.startsWith('HTTP/1.0 ') || head.line.endsWith(' HTTP/1.0');
  return http10 && !hasOption(connection, 'keep-alive');
}

type State =
  | { at: 'head' }
  | { at: 'framing' }
  | { at: 'length'; left: number }
  | { at: 'chunk-size' }
  | { at: 'chunk-data'; left: number }
  | { at: 'chunk-crlf' }
  | { at: 'trailers' }
  | { at: 'close' }
  | { at: 'closed' };

/**
 * A pull parser: `feed()` bytes as they arrive, then call `next()` until it returns undefined (it needs more bytes).
 * After each head the owner must call `body()` with the framing of what follows. `rest()` takes every byte not yet
 * returned, so the owner can stop at a head and give the stream to someone else. Only FramingError is thrown for
 * what arrives, whatever it is (other errors mean the owner broke this contract).
 *
 * After a message that closes the connection (see closesConnection) the framer stays at a head (`atHead`, `idle`
 * once its input is consumed) but frames nothing more: empty lines are dropped, any other byte is a FramingError.
 */
export class Http1Framer<H extends HeadLike = MessageHead> {
  private pending: Buffer = EMPTY;
  private state: State = { at: 'head' };
  /** The message under way closes the connection. */
  private last = false;
  /** Bytes of a partial head or trailer section already checked for bare CR, bare LF and NUL. */
  private checked = 0;

  /** `parse` reads each head's text (without the blank line): parseHead, or scanResponseHead for responses. */
  constructor(private readonly parse: (text: string) => H = parseHead as unknown as (text: string) => H) {}

  feed(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
  }

  /** Whether the framer is between messages with nothing buffered. */
  get idle(): boolean {
    return this.atHead && this.pending.length === 0;
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

  /** Whether it waits for the start of a message (possibly with some of it buffered), or the connection's end. */
  get atHead(): boolean {
    return this.state.at === 'head' || this.state.at === 'closed';
  }

  /**
   * Whether the message that closes the connection (see closesConnection) is complete: nothing more will be framed,
   * and `next()` throws a FramingError for any byte but CR and LF (then `ended` stays true).
   */
  get ended(): boolean {
    return this.state.at === 'closed';
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
    if (framing.type === 'none') this.endMessage();
    else if (framing.type === 'length') this.state = { at: 'length', left: framing.length };
    else if (framing.type === 'chunked') this.state = { at: 'chunk-size' };
    else this.state = { at: 'close' };
  }

  /** Everything received and not yet returned; the framer is empty afterwards. */
  rest(): Buffer {
    const rest = this.pending;
    this.pending = EMPTY;
    this.checked = 0;
    return rest;
  }

  /** Puts bytes back in front (a head the owner decided not to handle). */
  unread(bytes: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([bytes, this.pending]) : bytes;
    this.state = { at: 'head' };
    this.last = false;
    this.checked = 0;
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
          if (this.pending.length > MAX_HEAD_BYTES) throw new FramingError('Message head too large', 431);
          this.checkPartial(start);
          return undefined;
        }
        if (end - start > MAX_HEAD_BYTES) throw new FramingError('Message head too large', 431);
        const raw = this.pending.subarray(start, end + 4);
        const head = this.parse(raw.toString('latin1', 0, raw.length - 4));
        this.pending = this.pending.subarray(end + 4);
        this.checked = 0;
        this.last = closesConnection(head);
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
        if (s.left === 0) {
          if (s.at === 'length') this.endMessage();
          else this.state = { at: 'chunk-crlf' };
        }
        return { kind: 'body', data };
      }
      case 'close':
        return this.pending.length ? { kind: 'body', data: this.take(this.pending.length) } : undefined;
      case 'chunk-size': {
        // The first LF ends the line, and must follow a CR.
        const lf = this.pending.indexOf(10);
        if (lf < 0) {
          if (this.pending.length > MAX_CHUNK_LINE) throw new FramingError('Chunk size line too long');
          return undefined;
        }
        if (lf === 0 || this.pending[lf - 1] !== 13) throw new FramingError('Bare LF in a chunk size line');
        const m = CHUNK_LINE.exec(this.pending.toString('latin1', 0, lf - 1));
        if (!m) throw new FramingError('Malformed chunk size line');
        const size = parseInt(m[1], 16);
        this.state = size === 0 ? { at: 'trailers' } : { at: 'chunk-data', left: size };
        return { kind: 'body', data: this.take(lf + 1) };
      }
      case 'chunk-crlf':
        if (this.pending.length < 2) return undefined;
        if (this.pending[0] !== 13 || this.pending[1] !== 10) throw new FramingError('Chunk data not followed by CRLF');
        this.state = { at: 'chunk-size' };
        return { kind: 'body', data: this.take(2) };
      case 'trailers': {
        // Trailer fields, then an empty line; passed on as they are.
        if (this.pending.length >= 2 && this.pending[0] === 13 && this.pending[1] === 10) {
          this.endMessage();
          return { kind: 'body', data: this.take(2) };
        }
        const end = this.pending.indexOf(HEAD_END);
        if (end < 0) {
          if (this.pending.length > MAX_HEAD_BYTES) throw new FramingError('Trailers too large');
          this.checkPartial(0);
          return undefined;
        }
        const { headers } = parseHead(`x\r\n${this.pending.toString('latin1', 0, end)}`);
        // RFC 9110 §6.5.1: no framing or connection field in trailers (Node's parser would act on some of them).
        for (const name of FRAMING_FIELDS) if (headers[name] !== undefined) throw new FramingError(`${name} in trailers`);
        const data = this.take(end + 4);
        this.endMessage();
        return { kind: 'body', data };
      }
      case 'closed': {
        // Nothing follows the last message of a connection; empty lines are dropped, as Node's parser drops them.
        let i = 0;
        while (i < this.pending.length && (this.pending[i] === 13 || this.pending[i] === 10)) i++;
        if (i < this.pending.length) throw new FramingError('Data after the message that closes the connection');
        this.pending = EMPTY;
        return undefined;
      }
    }
  }

  /** The message under way is complete: the next one may begin, unless it closed the connection. */
  private endMessage(): void {
    this.state = this.last ? { at: 'closed' } : { at: 'head' };
    this.checked = 0;
  }

  /**
   * Refuses a partial head (or trailer section) from `start` as soon as it holds a NUL, a LF that does not follow a
   * CR, or a CR followed by anything but LF, instead of waiting for a CRLFCRLF that may never come. Each byte is
   * looked at once (a final CR twice), whatever the chunking.
   */
  private checkPartial(start: number): void {
    const p = this.pending;
    for (let i = Math.max(start, this.checked); i < p.length; i++) {
      const b = p[i];
      if (b === 0 || (b === 10 && (i === start || p[i - 1] !== 13)) || (b === 13 && i + 1 < p.length && p[i + 1] !== 10)) {
        throw new FramingError('A bare CR or LF, or a NUL, in the message head');
      }
    }
    this.checked = Math.max(start, p.length - 1);
  }

  private take(n: number): Buffer {
    const data = this.pending.subarray(0, n);
    this.pending = n === this.pending.length ? EMPTY : this.pending.subarray(n);
    return data;
  }
}
