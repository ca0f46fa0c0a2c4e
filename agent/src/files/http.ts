import type { Context } from 'hono';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ERROR_SOURCE } from '../../../wire/errors';
import type { BulkDownloadError } from '../../../wire/files';
import { CoveError } from '../../../lib/errors';
import { alreadySent } from '../../../lib/http/node';
import { isMultipart, multipartBody, multipartBoundary, type MultipartForm, type OutPart } from './multipart';
import type { BulkDownloadPart, UploadSource } from './service';

// The HTTP side of the files routes: request bodies handed to the service as streams, and the streamed answers.

/** Buffer between the request and whoever reads its body: a GiB upload moves in about a thousand chunks. */
const READ_CHUNK = 1024 * 1024;

/** The error a request body fails with when the client goes away before the whole body arrived. */
class ClientAbortedError extends CoveError {
  constructor() {
    super('INVALID_REQUEST', 'The client closed the connection before the upload finished');
  }
}

/**
 * The request body as a stream that its reader may abandon (destroy) without destroying the request: on failure
 * the response must still reach the client (a 507, say), so the request is unpiped and left for the HTTP server to
 * drain or cut instead of being torn down with the socket. A client that goes away fails the stream with
 * ClientAbortedError.
 */
function requestBody(req: IncomingMessage): Readable {
  const body = new PassThrough({ highWaterMark: READ_CHUNK });
  const onClose = () => {
    if (!req.complete) body.destroy(new ClientAbortedError());
  };
  const onError = () => body.destroy(new ClientAbortedError());
  req.on('close', onClose);
  req.on('error', onError);
  req.pipe(body);
  body.once('close', () => {
    req.unpipe(body);
    req.off('close', onClose);
    req.off('error', onError);
  });
  return body;
}

/**
 * What an upload request carries, from its Content-Type: a multipart/form-data form (its boundary checked before
 * any of the body is read), or the raw bytes of the file, whose type is the declared one.
 */
export function uploadSource(req: IncomingMessage): UploadSource {
  const contentType = req.headers['content-type'] ?? '';
  if (!isMultipart(contentType)) {
    return { kind: 'raw', type: contentType.split(';')[0] || 'application/octet-stream', body: requestBody(req) };
  }
  const boundary = multipartBoundary(contentType);
  return { kind: 'multipart', boundary, body: requestBody(req) };
}

/** The form of a request that must be multipart/form-data (a bulk upload). */
export function multipartForm(req: IncomingMessage): MultipartForm {
  const contentType = req.headers['content-type'] ?? '';
  if (!isMultipart(contentType)) throw new CoveError('INVALID_REQUEST', 'Expected a multipart/form-data body');
  const boundary = multipartBoundary(contentType);
  return { boundary, body: requestBody(req) };
}

/**
 * Streams a body straight to the Node response with backpressure (pipeline), bypassing web streams: about twice
 * the throughput for GiB files. If the client leaves or the read fails midway, the connection is closed, so the
 * client sees a short body rather than a corrupt one.
 */
async function sendStream(c: Context, headers: Record<string, string>, body: Readable | AsyncIterable<Buffer>): Promise<Response> {
  const out = (c.env as { outgoing: ServerResponse }).outgoing;
  out.writeHead(200, headers);
  try {
    await pipeline(body, out);
  } catch {
    // Headers are gone already; pipeline destroyed the socket, which is the only signal left to give.
  }
  return alreadySent();
}

/** Like sendStream, for a body that writes itself (a download through reused buffers). */
export async function sendWith(c: Context, headers: Record<string, string>, writeTo: (out: ServerResponse) => Promise<void>): Promise<Response> {
  const out = (c.env as { outgoing: ServerResponse }).outgoing;
  out.writeHead(200, headers);
  try {
    await writeTo(out);
    out.end();
  } catch {
    // Headers are gone already: cutting the connection is the only way left to tell the client the body is short.
    out.destroy();
  }
  return alreadySent();
}

/**
 * A bulk download as one multipart/form-data answer: a part named `file` per readable file, or a part named `error`
 * whose JSON body is the error envelope with its HTTP status. Parts are pulled as the client reads the answer.
 */
export function sendBulkDownload(c: Context, parts: AsyncIterable<BulkDownloadPart>): Promise<Response> {
  async function* framed(): AsyncGenerator<OutPart> {
    for await (const part of parts) {
      if (part.kind === 'file') {
        yield part;
        continue;
      }
      const { error } = part;
      const json: BulkDownloadError = { message: error.message, statusCode: error.status, code: error.code, source: ERROR_SOURCE.agent };
      yield { kind: 'error', filename: part.filename, json };
    }
  }
  const out = multipartBody(framed());
  return sendStream(c, { 'Content-Type': out.contentType }, out.body);
}
