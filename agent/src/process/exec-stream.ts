import { StringDecoder } from 'node:string_decoder';
import type { RawData, WebSocket } from 'ws';
import {
  ExecClientMessage,
  STDERR,
  STDOUT,
  type ExecServerMessage,
  type ExecStreamRequest,
} from '../../../wire/exec-stream';
import { guard, settle } from '../../../lib/guard';
import { CoveError } from '../../../lib/errors';
import { describeIssues } from '../../../lib/http/router';
import { boundaryError, closeReason, closeWithError } from '../boundary';
import type { ProcessService, StreamHandle, StreamSink } from './service';

/** Output a slow client may have outstanding before the command's output is paused (it then blocks on its pipe). */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
/** SSE comment interval, so that idle proxies keep a quiet stream open. */
const SSE_KEEPALIVE_MS = 15_000;

const OPEN = 1;

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Parses one text message from the client; throws INVALID_JSON or INVALID_REQUEST with a message for people. */
function parseClientMessage(text: string): ExecClientMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CoveError('INVALID_JSON', 'The message is not valid JSON', (err as Error).message);
  }
  const parsed = ExecClientMessage.safeParse(value);
  if (!parsed.success) throw new CoveError('INVALID_REQUEST', `Invalid message ${describeIssues('message', parsed.error)}`);
  return parsed.data;
}

/** The streaming exec protocol of wire/exec-stream.ts over one WebSocket. */
export function serveExecWebSocket(socket: WebSocket, service: ProcessService): void {
  let handle: StreamHandle | undefined;
  let starting = false;
  /** What the client sent while its command was starting, applied once it runs. */
  let early: Array<(h: StreamHandle) => void> = [];
  let closed = false;
  let paused = false;

  const sendJson = (message: ExecServerMessage) => {
    if (socket.readyState === OPEN) socket.send(JSON.stringify(message));
  };
  const sendError = (err: unknown) => {
    const error = boundaryError(err, 'exec stream');
    sendJson({ type: 'error', code: error.code, message: error.message });
    return error;
  };
  const afterSend = () => {
    if (paused && socket.bufferedAmount < LOW_WATER) {
      paused = false;
      handle?.resume();
    }
  };

  const sink: StreamSink = {
    started: (pid) => sendJson({ type: 'started', pid }),
    output: (channel, chunk) => {
      if (socket.readyState !== OPEN) return;
      const frame = Buffer.allocUnsafe(chunk.length + 1);
      frame[0] = channel;
      chunk.copy(frame, 1);
      socket.send(frame, { binary: true }, afterSend);
      if (!paused && socket.bufferedAmount > HIGH_WATER) {
        paused = true;
        handle?.pause();
      }
    },
    exit: (info) => {
      sendJson({ type: 'exit', exitCode: info.exitCode, signal: info.signal, timedOut: info.timedOut });
      if (socket.readyState === OPEN) socket.close(1000, 'exited');
    },
  };

  const onMessage = (data: RawData, isBinary: boolean) => {
    if (isBinary) {
      const bytes = toBuffer(data);
      if (handle) handle.write(bytes);
      else if (starting) early.push((h) => h.write(bytes));
      else sendError(new CoveError('INVALID_REQUEST', 'Send a start message before stdin bytes'));
      return;
    }
    let message: ExecClientMessage;
    try {
      message = parseClientMessage(toBuffer(data).toString('utf8'));
    } catch (err) {
      const error = sendError(err);
      if (!handle && !starting) socket.close(4400, closeReason(error.message));
      return;
    }
    if (message.type === 'start') {
      if (handle || starting) {
        sendError(new CoveError('CONFLICT', 'The command has already been started'));
        return;
      }
      starting = true;
      const { type: _type, ...request } = message;
      settle(
        'exec stream start',
        service.startStream(request, sink).then(
          (h) => {
            handle = h;
            for (const apply of early) apply(h);
            early = [];
            // The client may have left while the command was starting; it runs on regardless.
            if (closed) h.detach();
          },
          (err) => {
            early = [];
            const error = sendError(err);
            // A start the client got wrong closes with 4400 (wire/exec-stream.ts); a failure of the agent with 4500.
            if (error.status >= 500) closeWithError(socket, error);
            else if (socket.readyState === OPEN) socket.close(4400, closeReason(error.message));
          },
        ),
        (error) => closeWithError(socket, error),
      );
      return;
    }
    const apply = (h: StreamHandle) => (message.type === 'close-stdin' ? h.closeStdin() : h.signal(message.signal));
    if (handle) apply(handle);
    else if (starting) early.push(apply);
    else sendError(new CoveError('INVALID_REQUEST', `Send a start message before "${message.type}"`));
  };
  socket.on(
    'message',
    guard('exec stream message', onMessage, (error) => {
      sendJson({ type: 'error', code: error.code, message: error.message });
      closeWithError(socket, error);
    }),
  );
  socket.on('error', () => {});
  socket.on(
    'close',
    guard(
      'exec stream close',
      () => {
        closed = true;
        handle?.detach();
      },
      () => {},
    ),
  );
}

/** Server-sent events for one command (no stdin): started, stdout, stderr, exit. Rejects if it cannot start. */
export async function execSseResponse(service: ProcessService, request: ExecStreamRequest): Promise<Response> {
  const encoder = new TextEncoder();
  const decoders = { [STDOUT]: new StringDecoder('utf8'), [STDERR]: new StringDecoder('utf8') };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let handle: StreamHandle | undefined;
  let done = false;
  let keepalive: NodeJS.Timeout | undefined;

  const push = (text: string) => {
    if (done) return;
    controller.enqueue(encoder.encode(text));
    if ((controller.desiredSize ?? 1) <= 0) handle?.pause();
  };
  const event = (name: string, data: unknown) => push(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  const finish = () => {
    done = true;
    clearInterval(keepalive);
  };

  const body = new ReadableStream<Uint8Array>(
    {
      start: (c) => {
        controller = c;
      },
      pull: () => handle?.resume(),
      cancel: () => {
        // The client left: the command runs on to its end or its timeout.
        finish();
        handle?.detach();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER }),
  );
  const sink: StreamSink = {
    started: (pid) => event('started', { type: 'started', pid }),
    output: (channel, chunk) => {
      const text = decoders[channel].write(chunk);
      if (text) event(channel === STDOUT ? 'stdout' : 'stderr', { data: text });
    },
    exit: (info) => {
      for (const [channel, decoder] of Object.entries(decoders)) {
        const rest = decoder.end();
        if (rest) event(Number(channel) === STDOUT ? 'stdout' : 'stderr', { data: rest });
      }
      event('exit', { type: 'exit', exitCode: info.exitCode, signal: info.signal, timedOut: info.timedOut });
      if (!done) controller.close();
      finish();
    },
  };
  handle = await service.startStream(request, sink);
  if (!done) {
    keepalive = setInterval(guard('exec stream keep-alive', () => push(': keep-alive\n\n'), finish), SSE_KEEPALIVE_MS);
    keepalive.unref();
  }
  return new Response(body, {
    headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' },
  });
}
