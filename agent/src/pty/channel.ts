import type { WebSocket } from 'ws';
import {
  ptyErrorCloseCode,
  ptyExitCloseCode,
  type PtyControlMessage,
  type PtyExit,
} from '../../../wire/pty';
import { guard } from '../../../lib/guard';
import type { CoveError } from '../../../lib/errors';
import type { PtyAttachment, PtySink } from './service';

/** WebSocket close reasons are limited to 123 bytes. */
const MAX_REASON_BYTES = 123;

function closeReason(value: object): string {
  let text = JSON.stringify(value);
  while (Buffer.byteLength(text) > MAX_REASON_BYTES) {
    // Shorten the longest string field until the JSON fits.
    const [key, str] = Object.entries(value)
      .filter(([, v]) => typeof v === 'string')
      .sort((a, b) => (b[1] as string).length - (a[1] as string).length)[0] as [string, string];
    value = { ...value, [key]: str.slice(0, Math.max(0, str.length - (Buffer.byteLength(text) - MAX_REASON_BYTES) - 1)) };
    text = JSON.stringify(value);
  }
  return text;
}

const sendControl = (socket: WebSocket, msg: PtyControlMessage) => socket.send(JSON.stringify(msg));

/**
 * Serves one PTY WebSocket client: `attach` connects it to the service, then the channel sends the `connected`
 * control message, output as binary frames, and on exit the `exited` message (only to clients that offered the
 * exit-control subprotocol) and the close. Input frames, text or binary, go to the terminal as they are. Closing the
 * socket detaches the client and never touches the process.
 */
export function servePtyChannel(
  socket: WebSocket,
  opts: { exitControl: boolean; attach: (sink: PtySink) => PtyAttachment },
): void {
  const open = () => socket.readyState === socket.OPEN;
  const sink: PtySink = {
    write(data, flushed) {
      if (!open()) return flushed();
      socket.send(data, { binary: true }, () => flushed());
    },
    exit(result: PtyExit) {
      if (!open()) return;
      if (opts.exitControl) sendControl(socket, { type: 'control', status: 'exited', ...result });
      socket.close(ptyExitCloseCode(result.exitCode), closeReason(result));
    },
    drop(reason) {
      if (!open()) return;
      sendControl(socket, { type: 'control', status: 'error', error: reason });
      socket.close(4008, closeReason({ error: reason }));
    },
  };
  const attachment = opts.attach(sink);
  socket.on(
    'message',
    guard(
      'terminal input',
      (data: Buffer | ArrayBuffer | Buffer[]) => attachment.input(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)),
      (error) => rejectPtyChannel(socket, error),
    ),
  );
  const detach = guard('terminal detach', () => attachment.detach(), () => {});
  socket.on('close', detach);
  // A broken connection is followed by 'close'; without a listener the error would be thrown.
  socket.on('error', detach);
  // The replay and live output are delivered asynchronously by the service, so this goes first.
  sendControl(socket, { type: 'control', status: 'connected' });
}

/** Ends a channel whose attach failed: an `error` control message, then a close carrying the error as JSON. */
export function rejectPtyChannel(socket: WebSocket, error: CoveError): void {
  if (socket.readyState !== socket.OPEN) return;
  sendControl(socket, { type: 'control', status: 'error', error: error.message });
  socket.close(ptyErrorCloseCode(error.status), closeReason({ error: error.message }));
}
