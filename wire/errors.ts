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
  'RATE_LIMITED',
  // sandboxes (proxy)
  'SANDBOX_NOT_FOUND',
  'SANDBOX_EXISTS',
  'SANDBOX_NOT_STARTED',
  'SANDBOX_ERROR',
  'IMAGE_NOT_FOUND',
  'QUOTA_EXCEEDED',
  'AGENT_UNREACHABLE',
  'RUNTIME_UNAVAILABLE',
  // previews
  'PORT_NOT_LISTENING',
  'BAD_UPSTREAM_RESPONSE',
  'PREVIEW_UNAUTHORIZED',
  // lsp
  'LSP_SERVER_NOT_INITIALIZED',
  'LSP_SERVER_CRASHED',
  'LSP_SERVER_NOT_INSTALLED',
  'LSP_REQUEST_TIMEOUT',
  // git (Daytona's codes: the SDK turns them into its typed git errors)
  'GIT_AUTH_FAILED',
  'GIT_REPO_NOT_FOUND',
  'GIT_BRANCH_NOT_FOUND',
  'GIT_BRANCH_EXISTS',
  'GIT_PUSH_REJECTED',
  'GIT_DIRTY_WORKTREE',
  'GIT_MERGE_CONFLICT',
  'GIT_TRANSPORT_FAILED',
  'GIT_REMOTE_REJECTED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Sources stamped on errors, by the program that answered. The Daytona SDK keys its typed errors on `source|code`,
 * so Cove uses Daytona's names: the agent is the daemon, the control API the API, toolbox forwarding the proxy.
 */
export const ERROR_SOURCE = { agent: 'DAYTONA_DAEMON', api: 'DAYTONA_API', proxy: 'DAYTONA_PROXY' } as const;

/** The one error envelope of every Cove route. */
export const ErrorBody = z.object({
  message: z.string().describe('What went wrong, as a sentence for people'),
  code: z.enum(ERROR_CODES),
  source: z.string(),
  detail: z.string().optional().describe('Technical detail (the OS or tool error)'),
});
export type ErrorBody = z.infer<typeof ErrorBody>;
