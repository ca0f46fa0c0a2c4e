import { z } from 'zod';

/**
 * Every machine-readable error code Cove returns. Codes that the Daytona SDK knows keep Daytona's names so that
 * SDK users get typed errors (`DaytonaFileNotFoundError`, …).
 */
export const ERROR_CODES = [
  'INVALID_REQUEST',
  'INVALID_JSON',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'INSUFFICIENT_STORAGE',
  'INTERNAL_ERROR',
  // files
  'FILE_NOT_FOUND',
  'FILE_ACCESS_DENIED',
  'INVALID_FILE_PATH',
  'FILE_EXISTS',
  'FILE_READ_FAILED',
  'IS_A_DIRECTORY',
  'NOT_A_DIRECTORY',
  'DIRECTORY_NOT_EMPTY',
  // processes, sessions, pty
  'PROCESS_EXECUTION_TIMEOUT',
  'PROCESS_NOT_FOUND',
  'SESSION_NOT_FOUND',
  'SESSION_EXISTS',
  'SESSION_ENDED',
  'COMMAND_NOT_FOUND',
  'COMMAND_ALREADY_COMPLETED',
  'PTY_NOT_FOUND',
  'PTY_EXISTS',
  'UNSUPPORTED_LANGUAGE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Source stamped on agent errors; the Daytona SDK keys its typed errors on `source|code`. */
export const AGENT_ERROR_SOURCE = 'DAYTONA_DAEMON';

/** The one error envelope of every Cove route. */
export const ErrorBody = z.object({
  message: z.string().describe('What went wrong, as a sentence for people'),
  code: z.enum(ERROR_CODES),
  source: z.string(),
  detail: z.string().optional().describe('Technical detail (the OS or tool error)'),
});
export type ErrorBody = z.infer<typeof ErrorBody>;
