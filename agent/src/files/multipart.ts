import type busboy from 'busboy';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CoveError } from '../../../lib/errors';

/**
 * The parser, loaded with the first multipart request rather than at start (an idle agent does not need it).
 * esbuild turns this `require` of a bundled module into a lazily evaluated wrapper.
 */
let parser: typeof busboy | undefined;
const loadBusboy = () => (parser ??= require('busboy') as typeof busboy);

/** Chunk size busboy hands on: large enough that a GiB upload is a few thousand writes, small enough to stay flat. */
const PART_HWM = 1024 * 1024;

/** One file part of a multipart request. */
interface FilePart {
  /** Form field name (`file`, `files[0].file`). */
  field: string;
  /** The part's filename parameter, path included (the SDK puts the destination there). */
  filename?: string;
  mimeType: string;
  stream: Readable;
}

/** A multipart/form-data body: its bytes and the boundary that separates its parts. */
export interface MultipartForm {
  body: Readable;
  boundary: string;
}

/** busboy's own media-type parser, so a boundary is read exactly as busboy would read it from the header. */
type ParseContentType = (value: string) => { type: string; subtype: string; params: Record<string, string | undefined> } | undefined;
let contentTypeParser: ParseContentType | undefined;
const loadContentTypeParser = () =>
  (contentTypeParser ??= (require('busboy/lib/utils.js') as { parseContentType: ParseContentType }).parseContentType);

/** Whether a media type (a Content-Type value) is multipart/form-data. */
export function isMultipart(mediaType: string): boolean {
  return /^multipart\/form-data\b/i.test(mediaType);
}

/** The boundary a multipart/form-data media type names; INVALID_REQUEST when it is malformed or names none. */
export function multipartBoundary(mediaType: string): string {
  const invalid = (detail: string) => new CoveError('INVALID_REQUEST', 'The request is not a valid multipart/form-data body', detail);
  const parsed = loadContentTypeParser()(mediaType);
  if (!parsed) throw invalid('Malformed content type');
  if (parsed.type !== 'multipart' || parsed.subtype !== 'form-data') throw invalid(`Unsupported content type: ${mediaType}`);
  const boundary = parsed.params.boundary;
  if (typeof boundary !== 'string') throw invalid('Multipart: Boundary not found');
  return boundary;
}

/**
 * Reads a multipart/form-data body with backpressure: busboy only asks for more of the body when the current file
 * part's consumer has taken what it had. Fields are reported as they arrive; file parts are handed to `onFile` one
 * at a time, in order, and the next part is not read before the promise `onFile` returned has settled. Resolves once
 * the whole form was read and every `onFile` settled; rejects on the first failure (a bad form, `onFile` throwing,
 * or the body failing, its error passed on when it is a CoveError) and then stops reading and destroys the body.
 */
export function readMultipart(
  form: MultipartForm,
  handlers: { onField?: (name: string, value: string) => void; onFile: (part: FilePart) => Promise<void> },
): Promise<void> {
  const { body } = form;
  return new Promise<void>((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = loadBusboy()({
        // Quoted, so any boundary the media-type parser returned reads back the same.
        headers: { 'content-type': `multipart/form-data; boundary="${form.boundary.replace(/[\\"]/g, (c) => `\\${c}`)}"` },
        preservePath: true,
        defParamCharset: 'utf8',
        highWaterMark: PART_HWM,
        fileHwm: PART_HWM,
        limits: { fieldSize: 1024 * 1024, fields: 100_000, files: 10_000, parts: 200_000 },
      });
    } catch (err) {
      body.destroy();
      reject(new CoveError('INVALID_REQUEST', 'The request is not a valid multipart/form-data body', (err as Error).message));
      return;
    }
    let settled = false;
    let pending: Promise<void> = Promise.resolve();
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      body.unpipe(bb);
      body.off('error', onError);
      body.off('close', onClose);
      body.destroy();
      // Destroying busboy fails the file part being read, so its consumer stops and cleans up; the error is
      // answered only once that cleanup is done, so the caller never sees a temp file the error left behind.
      const error = err instanceof Error ? err : new Error(String(err));
      bb.destroy(error);
      const cleanedUp = pending.catch(() => {});
      const patience = new Promise((r) => setTimeout(r, 5000).unref());
      void Promise.race([cleanedUp, patience]).then(() => reject(error));
    };
    const onError = (err: Error) =>
      fail(err instanceof CoveError ? err : new CoveError('INVALID_REQUEST', 'The upload body could not be read', err.message));
    // A body closed before its end without an error was abandoned by whoever was writing it.
    const onClose = () => {
      if (!body.readableEnded) fail(new CoveError('INVALID_REQUEST', 'The upload body ended before the form did'));
    };

    bb.on('field', (name, value) => {
      try {
        handlers.onField?.(name, value);
      } catch (err) {
        fail(err);
      }
    });
    bb.on('file', (field, stream, info) => {
      // A part cut short (the form ends early, or busboy is destroyed) fails its stream; a part that is skipped, or
      // not consumed yet, has no one else listening, and the error would end the process.
      stream.on('error', () => {});
      const part: FilePart = { field, filename: info.filename, mimeType: info.mimeType, stream };
      // Parts arrive strictly one after another; chaining keeps results in order even if a handler awaits.
      pending = pending.then(() => (settled ? stream.resume() && undefined : handlers.onFile(part)));
      pending.catch(fail);
    });
    bb.on('error', (err: Error) =>
      fail(err instanceof CoveError ? err : new CoveError('INVALID_REQUEST', 'The multipart body is malformed', err.message)),
    );
    bb.on('close', () => {
      pending.then(() => {
        if (settled) return;
        settled = true;
        body.off('error', onError);
        body.off('close', onClose);
        resolve();
      }, fail);
    });
    body.on('error', onError);
    body.on('close', onClose);
    body.pipe(bb);
  });
}

/**
 * A value as an RFC 5987 `ext-value` (`UTF-8''…`). Total: a lone surrogate (a client can send one in a JSON path),
 * which encodeURIComponent throws on, is sent as U+FFFD, the character the file system stores for it too.
 */
export function rfc5987(value: string): string {
  const wellFormed = value.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  return `UTF-8''${encodeURIComponent(wellFormed).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}

/** Quotes a header parameter value; non-ASCII names also get an RFC 5987 `filename*` that parsers prefer. */
function dispositionParams(name: string, filename: string): string {
  const quoted = filename.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, ' ');
  if (/^[\x20-\x7e]*$/.test(filename)) return `name="${name}"; filename="${quoted}"`;
  const ascii = quoted.replace(/[^\x20-\x7e]/g, '_');
  return `name="${name}"; filename="${ascii}"; filename*=${rfc5987(filename)}`;
}

/** A part of a multipart/form-data response: bytes of a file, or a JSON error for a path that could not be read. */
export type OutPart =
  | { kind: 'file'; filename: string; size: number; body: AsyncIterable<Buffer> }
  | { kind: 'error'; filename: string; json: unknown };

/**
 * Writes parts as a multipart/form-data body, pulling each part's bytes only as fast as the consumer reads (the
 * generator is the backpressure). File parts carry their exact Content-Length, which the SDK uses for progress.
 */
export function multipartBody(parts: AsyncIterable<OutPart>): { contentType: string; body: AsyncGenerator<Buffer> } {
  const boundary = `cove-${randomBytes(16).toString('hex')}`;
  async function* body(): AsyncGenerator<Buffer> {
    for await (const part of parts) {
      if (part.kind === 'error') {
        const json = Buffer.from(JSON.stringify(part.json));
        yield Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; ${dispositionParams('error', part.filename)}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n`,
        );
        yield json;
        yield Buffer.from('\r\n');
        continue;
      }
      yield Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; ${dispositionParams('file', part.filename)}\r\n` +
          `Content-Type: application/octet-stream\r\nContent-Length: ${part.size}\r\n\r\n`,
      );
      let sent = 0;
      for await (const chunk of part.body) {
        sent += chunk.length;
        yield chunk;
      }
      // The length is already on the wire: a file that changed size while being read cannot be framed honestly.
      if (sent !== part.size) throw new Error(`${part.filename} changed size while it was being sent (${sent} of ${part.size} bytes)`);
      yield Buffer.from('\r\n');
    }
    yield Buffer.from(`--${boundary}--\r\n`);
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: body() };
}
