import { randomBytes } from 'node:crypto';
import { CoveError } from './errors';

/**
 * The one error boundary of every entry point (request and upgrade listeners, raw socket handlers, SSH callbacks,
 * WebSocket message handlers, timers, stream events). Whatever escapes a handler is reported once, with an id that
 * the answer also carries, and ends that connection alone: the process keeps serving.
 */

/** Where unexpected errors are written; each program sets its own logger once at start (stderr until then). */
type ErrorReporter = (entry: { id: string; where: string; err: unknown }) => void;

let reporter: ErrorReporter = ({ id, where, err }) => {
  process.stderr.write(`cove: unexpected error ${id} in ${where}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
};

/** Sets where unexpected errors are reported (the program's log). */
export function setErrorReporter(next: ErrorReporter): void {
  reporter = next;
}

/**
 * An error that no code path expected, as the 500 a client sees: it names an id, and the log line with the stack
 * carries the same id. CoveErrors (expected failures, 4xx included) pass through unreported.
 */
export function unexpected(err: unknown, where: string): CoveError {
  if (err instanceof CoveError) return err;
  const id = randomBytes(6).toString('hex');
  try {
    reporter({ id, where, err });
  } catch {
    // A failing logger must not turn one bad request into a crash.
  }
  return new CoveError('INTERNAL_ERROR', `The request failed unexpectedly (error id ${id})`, `error id ${id}`);
}

/**
 * Wraps an event handler: anything it throws goes to `onError` (as a CoveError; unexpected ones reported once) instead
 * of escaping to the event emitter, where it would end the process. `onError` itself is guarded too.
 */
export function guard<A extends unknown[]>(where: string, fn: (...args: A) => void, onError: (error: CoveError, ...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      try {
        onError(unexpected(err, where), ...args);
      } catch (again) {
        unexpected(again, `${where} (while handling an error)`);
      }
    }
  };
}

/** A promise's rejection handled the same way: reported as unexpected unless it is a CoveError. */
export function settle(where: string, promise: Promise<unknown>, onError: (error: CoveError) => void = () => {}): void {
  promise.catch((err) => {
    try {
      onError(unexpected(err, where));
    } catch (again) {
      unexpected(again, `${where} (while handling an error)`);
    }
  });
}

/**
 * The last resort, not the fix: an error that escaped every boundary is logged and the process keeps serving,
 * because one bad input must not end every sandbox's API, toolbox, previews and SSH.
 */
export function installLastResort(program: string): void {
  process.on('uncaughtException', (err) => unexpected(err, `${program} (uncaught)`));
  process.on('unhandledRejection', (err) => unexpected(err, `${program} (unhandled rejection)`));
}
