import type { RawData, WebSocket } from 'ws';
import {
  INTERPRETER_TIMEOUT_CLOSE,
  InterpreterClientMessage,
  InterpreterExecuteRequest,
  MAX_FRAME_TEXT,
  type InterpreterServerFrame,
} from '../../../wire/interpreter';
import { guard } from '../../../lib/guard';
import { CoveError } from '../../../lib/errors';
import { describeIssues } from '../../../lib/http/router';
import { boundaryError, closeReason, closeWithError } from '../boundary';
import type { InterpreterService, RunHandle, RunOutcome, RunSink } from './service';

/** Output a slow client may have outstanding before the kernel's output is paused (it then blocks on its pipes). */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
/** How long a client may take to send its request after connecting. */
const REQUEST_TIMEOUT_MS = 30_000;

function toText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CoveError('INVALID_JSON', 'The message is not valid JSON: send {"code": "...", "contextId"?, "envs"?, "timeout"?}', (err as Error).message);
  }
}

/** Parses the first message; throws INVALID_JSON or INVALID_REQUEST with a message naming the field. */
function parseRequest(text: string): InterpreterExecuteRequest {
  const parsed = InterpreterExecuteRequest.safeParse(parseJson(text));
  if (!parsed.success) throw new CoveError('INVALID_REQUEST', `Invalid request ${describeIssues('message', parsed.error)}`);
  return parsed.data;
}

/**
 * Serves one execute WebSocket (the protocol is in wire/interpreter.ts): reads the request, queues the run, streams
 * its output as JSON frames, and ends with the frames and close that the run's outcome calls for. Every handler is
 * behind the error boundary; a failure ends this connection alone.
 */
export function serveInterpreterChannel(socket: WebSocket, service: InterpreterService): void {
  let handle: RunHandle | undefined;
  let paused = false;
  let finished = false;
  const open = () => socket.readyState === socket.OPEN;

  const afterSend = () => {
    if (paused && socket.bufferedAmount < LOW_WATER) {
      paused = false;
      handle?.resume();
    }
  };
  const send = (frame: InterpreterServerFrame) => {
    if (!open()) return;
    socket.send(JSON.stringify(frame), afterSend);
    if (!paused && socket.bufferedAmount > HIGH_WATER) {
      paused = true;
      handle?.pause();
    }
  };
  /** A request the agent refuses: an error frame naming the code, then a close with 4000 + its status. */
  const refuse = (error: CoveError) => {
    finished = true;
    send({ type: 'error', name: error.code, value: error.message, traceback: '' });
    closeWithError(socket, error);
  };

  const sink: RunSink = {
    output(stream, text) {
      for (let i = 0; i < text.length; i += MAX_FRAME_TEXT) send({ type: stream, text: text.slice(i, i + MAX_FRAME_TEXT) });
    },
    chart(chart) {
      send({ type: 'chart', chart });
    },
    end(outcome: RunOutcome) {
      finished = true;
      if (!open()) return;
      switch (outcome.kind) {
        case 'completed':
          if (outcome.error) send({ type: 'error', ...outcome.error });
          send({ type: 'control', text: 'completed' });
          socket.close(1000, 'completed');
          return;
        case 'interrupted':
          send({ type: 'control', text: 'interrupted' });
          socket.close(1000, 'interrupted');
          return;
        case 'timeout':
          // No control frame first: the Daytona SDK resolves on one, and must reject with its timeout error.
          send({ type: 'error', ...outcome.error });
          socket.close(INTERPRETER_TIMEOUT_CLOSE, closeReason('Execution timed out'));
          return;
        case 'died':
          send({ type: 'error', ...outcome.error });
          send({ type: 'control', text: 'completed' });
          socket.close(1000, closeReason(outcome.error.name));
          return;
        case 'failed':
          refuse(outcome.error);
          return;
      }
    },
  };

  const waiting = setTimeout(
    guard(
      'interpreter request wait',
      () => {
        if (!handle && !finished) refuse(new CoveError('INVALID_REQUEST', `No request arrived within ${REQUEST_TIMEOUT_MS / 1000} s of connecting`));
      },
      () => {},
    ),
    REQUEST_TIMEOUT_MS,
  );

  const onMessage = (data: RawData) => {
    if (finished) return;
    const text = toText(data);
    if (!handle) {
      clearTimeout(waiting);
      try {
        handle = service.execute(parseRequest(text), sink);
      } catch (err) {
        refuse(boundaryError(err, 'interpreter request'));
      }
      return;
    }
    let message: unknown;
    try {
      message = parseJson(text);
    } catch {
      message = undefined;
    }
    if (InterpreterClientMessage.safeParse(message).success) handle.interrupt();
    // Anything else after the request is ignored: an error frame would be read as the run's own error.
  };

  socket.on(
    'message',
    guard('interpreter message', onMessage, (error) => {
      if (!finished) refuse(error);
      else closeWithError(socket, error);
    }),
  );
  socket.on('error', () => {});
  socket.on(
    'close',
    guard(
      'interpreter close',
      () => {
        clearTimeout(waiting);
        handle?.detach();
      },
      () => {},
    ),
  );
}
