import type { WebSocket } from 'ws';
import { unexpected } from '../../lib/guard';
import { CoveError, fromOsError } from '../../lib/errors';

/**
 * What a client is told about anything thrown at an entry point: expected failures (CoveErrors, OS errors) as they
 * are, anything else as a 500 whose error id is also in the log with the stack (reported once, here).
 */
export function boundaryError(err: unknown, where: string): CoveError {
  const mapped = fromOsError(err);
  return mapped instanceof CoveError ? mapped : unexpected(mapped, where);
}

/** A WebSocket close reason within the 123 bytes a close frame allows, cut on a character boundary. */
export function closeReason(text: string): string {
  let reason = text;
  while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, Math.max(0, reason.length - Math.ceil((Buffer.byteLength(reason) - 123) / 3)));
  return reason;
}

/** Ends a WebSocket because of an error: the HTTP status plus 4000 (4400, 4404, 4500…), the message as reason. */
export function closeWithError(ws: WebSocket, error: CoveError): void {
  if (ws.readyState !== ws.OPEN && ws.readyState !== ws.CONNECTING) return;
  if (ws.readyState === ws.CONNECTING) return void ws.terminate();
  ws.close(4000 + Math.min(Math.max(error.status, 400), 599), closeReason(error.message));
}
