import { z } from 'zod';
import { Envs } from './common';

/**
 * Cove's streaming exec: one command, its output as it comes, its stdin, signals and its exit code.
 *
 * WebSocket `GET /process/exec/stream`:
 * - client → agent, first message: text `{"type":"start", command, cwd?, envs?, timeout?}`.
 * - agent → client: text `{"type":"started","pid"}`; then binary frames whose first byte is the channel
 *   ({@link STDOUT} or {@link STDERR}) followed by the bytes; finally text `{"type":"exit", exitCode, signal, timedOut}`
 *   and a close with 1000.
 * - client → agent afterwards: binary frames are stdin bytes as they are (no prefix); text `{"type":"close-stdin"}`
 *   ends stdin; text `{"type":"signal","signal":"SIGINT"}` signals the command's process group.
 * - problems: text `{"type":"error", code, message}`; a bad `start` is followed by a close with 4400.
 * - a client that goes away does not stop the command: it runs to its end or its timeout (its stdin is closed).
 *
 * Server-sent events `POST /process/exec/stream` (body {@link ExecStreamRequest}), for clients without WebSockets:
 * events `started`, `stdout`, `stderr` (data `{"data": text}`, UTF-8 decoded across chunk boundaries) and `exit`,
 * each with the JSON of the matching message below. No stdin.
 */

/** Channel byte of an output frame. */
export const STDOUT = 1;
export const STDERR = 2;

/** What to run; the command goes through `sh -c`. Without a timeout the command may run for ever. */
export const ExecStreamRequest = z.object({
  command: z.string().min(1, 'must not be empty'),
  cwd: z.string().optional(),
  envs: Envs.optional(),
  timeout: z.number().min(0).max(2_147_483).optional().describe('Seconds; absent or 0 for no limit'),
});
export type ExecStreamRequest = z.infer<typeof ExecStreamRequest>;

/** Signal names a client may send. */
const STREAM_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGSTOP', 'SIGCONT'] as const;

const ExecStartMessage = ExecStreamRequest.extend({ type: z.literal('start') });
type ExecStartMessage = z.infer<typeof ExecStartMessage>;

const ExecCloseStdinMessage = z.object({ type: z.literal('close-stdin') });
const ExecSignalMessage = z.object({ type: z.literal('signal'), signal: z.enum(STREAM_SIGNALS) });

/** Text messages a client sends. */
export const ExecClientMessage = z.discriminatedUnion('type', [ExecStartMessage, ExecCloseStdinMessage, ExecSignalMessage]);
export type ExecClientMessage = z.infer<typeof ExecClientMessage>;

const ExecStartedMessage = z.object({ type: z.literal('started'), pid: z.number().int() });
type ExecStartedMessage = z.infer<typeof ExecStartedMessage>;

export const ExecExitMessage = z.object({
  type: z.literal('exit'),
  exitCode: z.number().int().describe('Exit status; 128 + signal number when a signal ended the command'),
  signal: z.string().nullable().describe('Name of the signal that ended the command, if one did'),
  timedOut: z.boolean(),
});
export type ExecExitMessage = z.infer<typeof ExecExitMessage>;

const ExecErrorMessage = z.object({ type: z.literal('error'), code: z.string(), message: z.string() });
type ExecErrorMessage = z.infer<typeof ExecErrorMessage>;

/** Text messages the agent sends. */
export const ExecServerMessage = z.discriminatedUnion('type', [ExecStartedMessage, ExecExitMessage, ExecErrorMessage]);
export type ExecServerMessage = z.infer<typeof ExecServerMessage>;

