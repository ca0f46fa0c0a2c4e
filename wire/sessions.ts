import { z } from 'zod';
import { queryBool } from './common';

/**
 * Wire shapes of the session routes (`/process/session…`): long-lived shells whose cwd and environment persist
 * from command to command. Field names follow the Daytona toolbox API (`Session`, `Command`,
 * `SessionExecuteRequest`, `SessionExecuteResponse`, `SessionCommandLogsResponse`, `SessionSendInputRequest`).
 */

/** A session id travels in URL paths, so it must be one non-empty path segment of printable characters. */
export const SessionId = z
  .string()
  .min(1, 'must not be empty')
  .max(256, 'must be at most 256 characters')
  .regex(/^[^/\u0000-\u001f\u007f]+$/, 'must not contain "/" or control characters');

export const CreateSessionRequest = z.object({ sessionId: SessionId });
export type CreateSessionRequest = z.infer<typeof CreateSessionRequest>;

/** One command run in a session. `exitCode` is absent while the command is queued or running. */
export const SessionCommand = z.object({
  id: z.string(),
  command: z.string(),
  exitCode: z.number().int().optional(),
});
export type SessionCommand = z.infer<typeof SessionCommand>;

/** A session and every command it ran, oldest first. */
export const Session = z.object({
  sessionId: z.string(),
  commands: z.array(SessionCommand),
});
export type Session = z.infer<typeof Session>;

export const SessionList = z.array(Session);
export type SessionList = z.infer<typeof SessionList>;

export const SessionExecuteRequest = z.object({
  command: z
    .string()
    .min(1, 'must not be empty')
    .refine((s) => !s.includes('\u0000'), 'must not contain NUL bytes'),
  /** Return at once with the command id (202) instead of waiting for the exit code. */
  runAsync: z.boolean().optional(),
  /** Older name of `runAsync`. */
  async: z.boolean().optional(),
  /** Input sent to the command is echoed into its stdout log unless this is true (as a terminal would show it). */
  suppressInputEcho: z.boolean().optional(),
});
export type SessionExecuteRequest = z.input<typeof SessionExecuteRequest>;

/** Answer of exec: only `cmdId` when run asynchronously; everything once the command ended otherwise. */
export const SessionExecuteResponse = z.object({
  cmdId: z.string(),
  output: z.string().optional().describe('stdout and stderr interleaved in arrival order'),
  stdout: z.string().optional(),
  stderr: z.string().optional(),
  exitCode: z.number().int().optional(),
});
export type SessionExecuteResponse = z.infer<typeof SessionExecuteResponse>;

export const SessionCommandLogs = z.object({
  output: z.string().describe('stdout and stderr interleaved in arrival order'),
  stdout: z.string(),
  stderr: z.string(),
});
export type SessionCommandLogs = z.infer<typeof SessionCommandLogs>;

export const SessionSendInputRequest = z.object({ data: z.string() });
export type SessionSendInputRequest = z.infer<typeof SessionSendInputRequest>;

/** `?follow=true` asks for the WebSocket stream (it is only honoured on a WebSocket upgrade). */
export const SessionLogsQuery = z.object({ follow: queryBool });
export type SessionLogsQuery = z.infer<typeof SessionLogsQuery>;

/**
 * Follow-logs WebSocket: binary frames, each one chunk of output prefixed with three bytes naming its stream
 * (the Daytona SDK's `stdDemuxStream` framing). The server closes with 1000 once the command has ended.
 */
export const STDOUT_PREFIX = Buffer.from([0x01, 0x01, 0x01]);
export const STDERR_PREFIX = Buffer.from([0x02, 0x02, 0x02]);
/** Close code sent when the followed command has ended and everything was sent. */
export const LOGS_END_CLOSE_CODE = 1000;

/**
 * SDKs before 0.167 read a session command's output differently: `output` of `exec` and the body of `logs` (as
 * text) carry every chunk prefixed like the follow frames above, and they split stdout from stderr themselves.
 * They name their version in `X-Daytona-SDK-Version`; clients that send none get today's shape.
 */
const MARKED_OUTPUT_BEFORE = [0, 167, 0] as const;

/** Whether a client that sent this `X-Daytona-SDK-Version` reads session output in the marked form. */
export function wantsMarkedOutput(sdkVersion: string | undefined): boolean {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(sdkVersion?.trim() ?? '');
  if (!m) return false;
  const version = [Number(m[1]), Number(m[2]), Number(m[3])];
  for (let i = 0; i < 3; i++) if (version[i] !== MARKED_OUTPUT_BEFORE[i]) return version[i] < MARKED_OUTPUT_BEFORE[i];
  return false;
}
