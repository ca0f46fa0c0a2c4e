import { Envs } from './common';
import { z } from 'zod';

/**
 * PTY (interactive terminal) wire shapes: the HTTP routes under `/process/pty` and the frames of the PTY WebSocket
 * channel (`/process/pty/{sessionId}/connect` and `/process/pty/create-connect`).
 *
 * Channel framing, as the Daytona SDK's PtyHandle reads it:
 * - server → client: terminal output as binary frames; control messages as JSON text frames keyed on `type`
 *   (`{"type":"control","status":"connected"}` on attach, `…"exited"` when the process ends, `…"error"` when the
 *   attach fails). After `exited` the server closes with 1000 (exit code 0) or 1011 with the reason
 *   `{"exitCode","exitReason"}` as JSON.
 * - client → server: keyboard input as text or binary frames, written to the terminal unchanged.
 */

/** Subprotocol a client offers to ask for the `exited` control message; the server echoes it. */
export const PTY_EXIT_CONTROL_PROTOCOL = 'X-Daytona-Pty-Exit-Control';
/** Prefix of the subprotocol carrying create-connect envs: `X-Daytona-Pty-Envs~<base64url of the JSON object>`. */
export const PTY_ENVS_PROTOCOL_PREFIX = 'X-Daytona-Pty-Envs~';

/** Largest accepted terminal side, in cells. */
const PTY_MAX_SIZE = 1000;

/** A PTY session id: it is used in URL paths unescaped by the SDK, so no slashes, spaces, `?`, `#` or `%`. */
const PtyId = z
  .string()
  .min(1, 'must not be empty')
  .max(256, 'must be at most 256 characters')
  .regex(/^[^\s/?#%\\]+$/, 'must not contain whitespace, "/", "\\", "?", "#" or "%"');

const side = (name: string) =>
  z
    .number({ error: `${name} must be a number` })
    .int(`${name} must be an integer`)
    .min(1, `${name} must be at least 1`)
    .max(PTY_MAX_SIZE, `${name} must be at most ${PTY_MAX_SIZE}`);

/** Terminal size in a query string (create-connect). */
const querySide = (name: string) => z.coerce.number({ error: `${name} must be a number` }).pipe(side(name));


/** `POST /process/pty`. Without an id the agent picks one. */
export const PtyCreateRequest = z.object({
  id: PtyId.optional(),
  cwd: z.string().min(1).optional().describe('Working directory; relative paths are taken from the work dir'),
  envs: Envs.optional().describe('Variables added to the environment of the shell'),
  cols: side('cols').optional().describe('Columns, 80 by default'),
  rows: side('rows').optional().describe('Rows, 24 by default'),
  lazyStart: z.boolean().optional().describe('Start the shell on the first attach instead of now'),
});
export type PtyCreateRequest = z.infer<typeof PtyCreateRequest>;

export const PtyCreateResponse = z.object({ sessionId: z.string() });
export type PtyCreateResponse = z.infer<typeof PtyCreateResponse>;

/** `POST /process/pty/{sessionId}/resize`. */
export const PtyResizeRequest = z.object({ cols: side('cols'), rows: side('rows') });
export type PtyResizeRequest = z.infer<typeof PtyResizeRequest>;

/** Query of `GET /process/pty/create-connect` (the SDK's one-step create and attach). */
export const PtyCreateConnectQuery = z.object({
  id: PtyId,
  cols: querySide('cols').optional(),
  rows: querySide('rows').optional(),
  cwd: z.string().min(1).optional(),
});
export type PtyCreateConnectQuery = z.infer<typeof PtyCreateConnectQuery>;

/**
 * What the agent knows of a PTY session. The first fields are the Daytona SDK's PtySessionInfo; `processId`,
 * `exitCode`, `exitReason` and `clients` are Cove's additions. The exit code stays until the session is deleted.
 */
export const PtySessionInfo = z.object({
  id: z.string(),
  active: z.boolean().describe('Whether the shell is running'),
  cols: z.number().int(),
  rows: z.number().int(),
  cwd: z.string(),
  envs: Envs,
  createdAt: z.string().describe('ISO 8601'),
  lazyStart: z.boolean(),
  processId: z.number().int().optional(),
  exitCode: z.number().int().optional(),
  exitReason: z.string().optional(),
  clients: z.number().int().describe('WebSocket clients attached now'),
});
export type PtySessionInfo = z.infer<typeof PtySessionInfo>;

export const PtyListResponse = z.object({ sessions: z.array(PtySessionInfo) });
export type PtyListResponse = z.infer<typeof PtyListResponse>;

/** How a PTY's process ended. `exitReason` is absent for a clean exit (code 0). */
export const PtyExit = z.object({ exitCode: z.number().int(), exitReason: z.string().optional() });
export type PtyExit = z.infer<typeof PtyExit>;

/** Server → client control messages of the PTY channel (text frames). */
export const PtyControlMessage = z.discriminatedUnion('status', [
  z.object({ type: z.literal('control'), status: z.literal('connected') }),
  z.object({
    type: z.literal('control'),
    status: z.literal('exited'),
    exitCode: z.number().int(),
    exitReason: z.string().optional(),
  }),
  z.object({ type: z.literal('control'), status: z.literal('error'), error: z.string() }),
]);
export type PtyControlMessage = z.infer<typeof PtyControlMessage>;

/** Close code after an exit: 1000 for exit code 0, 1011 otherwise (the reason then carries the exit as JSON). */
export const ptyExitCloseCode = (exitCode: number): 1000 | 1011 => (exitCode === 0 ? 1000 : 1011);

/**
 * Close codes when an attach fails after the upgrade (the HTTP status plus 4000, as the agent does elsewhere); the
 * reason is JSON `{"error": message}`, which the SDK reports as the handle's error.
 */
export const ptyErrorCloseCode = (httpStatus: number): number => 4000 + Math.min(Math.max(httpStatus, 400), 599);

/** Encodes envs as the create-connect subprotocol token (base64url without padding, of the JSON object). */
export function encodeEnvsProtocol(envs: Envs): string {
  return PTY_ENVS_PROTOCOL_PREFIX + Buffer.from(JSON.stringify(envs)).toString('base64url');
}

/**
 * Reads the envs from offered subprotocols. Returns undefined when none was offered; throws with a sentence for
 * people when the token is not base64url JSON of string values.
 */
export function decodeEnvsProtocol(offered: readonly string[]): Envs | undefined {
  const token = offered.find((p) => p.startsWith(PTY_ENVS_PROTOCOL_PREFIX));
  if (token === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token.slice(PTY_ENVS_PROTOCOL_PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw new Error('The envs subprotocol is not base64url-encoded JSON');
  }
  const parsed = Envs.safeParse(value);
  if (!parsed.success) throw new Error('The envs subprotocol must encode an object of string values');
  return parsed.data;
}

/** Subprotocols listed in a `Sec-WebSocket-Protocol` request header. */
export function offeredProtocols(header: string | string[] | undefined): string[] {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
}
