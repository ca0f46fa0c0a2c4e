import type { ErrorBody, ErrorCode } from '../wire/errors';

/** HTTP status of every error code; a code without a status does not compile. */
export const ERROR_STATUS: Record<ErrorCode, number> = {
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  INSUFFICIENT_STORAGE: 507,
  INTERNAL_ERROR: 500,
  FILE_NOT_FOUND: 404,
  FILE_ACCESS_DENIED: 403,
  INVALID_FILE_PATH: 400,
  FILE_EXISTS: 409,
  FILE_READ_FAILED: 500,
  IS_A_DIRECTORY: 400,
  NOT_A_DIRECTORY: 400,
  DIRECTORY_NOT_EMPTY: 409,
  PROCESS_EXECUTION_TIMEOUT: 408,
  PROCESS_NOT_FOUND: 404,
  SESSION_NOT_FOUND: 404,
  SESSION_EXISTS: 409,
  SESSION_ENDED: 410,
  COMMAND_NOT_FOUND: 404,
  COMMAND_ALREADY_COMPLETED: 409,
  PTY_NOT_FOUND: 404,
  PTY_EXISTS: 409,
  UNSUPPORTED_LANGUAGE: 400,
  RATE_LIMITED: 429,
  SANDBOX_NOT_FOUND: 404,
  SANDBOX_EXISTS: 409,
  SANDBOX_NOT_STARTED: 409,
  SANDBOX_ERROR: 500,
  IMAGE_NOT_FOUND: 400,
  // 400 as Daytona answers a total CPU, memory or disk limit of an organization (its BadRequestError): SDK users get
  // the DaytonaBadRequestError (DaytonaValidationError) they get from Daytona.
  QUOTA_EXCEEDED: 400,
  AGENT_UNREACHABLE: 502,
  RUNTIME_UNAVAILABLE: 503,
  PORT_NOT_LISTENING: 502,
  // The app in a sandbox answered with a message Cove will not frame (smuggling shapes): a bad gateway.
  BAD_UPSTREAM_RESPONSE: 502,
  PREVIEW_UNAUTHORIZED: 401,
  // 400 because the SDK's DaytonaLspServerNotInitializedError is a DaytonaBadRequestError.
  LSP_SERVER_NOT_INITIALIZED: 400,
  // 503: the agent restarts the server, so the same request is worth retrying.
  LSP_SERVER_CRASHED: 503,
  LSP_SERVER_NOT_INSTALLED: 501,
  LSP_REQUEST_TIMEOUT: 504,
  // Git: the statuses of the HTTP classes that the SDK's typed git errors extend (auth failed is its 401 class,
  // transport failed its bad gateway, remote rejected its unprocessable entity).
  GIT_AUTH_FAILED: 401,
  GIT_REPO_NOT_FOUND: 404,
  GIT_BRANCH_NOT_FOUND: 404,
  GIT_BRANCH_EXISTS: 409,
  GIT_PUSH_REJECTED: 409,
  GIT_DIRTY_WORKTREE: 409,
  GIT_MERGE_CONFLICT: 409,
  GIT_TRANSPORT_FAILED: 502,
  GIT_REMOTE_REJECTED: 422,
};

/** The error every service throws, in the agent and the proxy. Routes never build error responses themselves. */
export class CoveError extends Error {
  readonly code: ErrorCode;
  readonly detail?: string;
  /** An expected failure with a code: built without a stack trace (bad input makes many; none is ever read). */
  constructor(code: ErrorCode, message: string, detail?: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = 'CoveError';
    this.code = code;
    if (detail !== undefined) this.detail = detail;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  /** The envelope; `source` names the program that answered (the Daytona SDK keys typed errors on it). */
  toBody(source: string): ErrorBody {
    const body: ErrorBody = { message: this.message, code: this.code, source };
    if (this.detail) body.detail = this.detail;
    return body;
  }
}

const OS_ERRORS: Record<string, { code: ErrorCode; say: (path: string) => string }> = {
  // "Not found", never "No such file or directory": clients (LangChain's Daytona provider) read "directory" as a
  // directory error.
  ENOENT: { code: 'FILE_NOT_FOUND', say: (p) => `Not found: ${p}` },
  EACCES: { code: 'FILE_ACCESS_DENIED', say: (p) => `Permission denied: ${p}` },
  EPERM: { code: 'FILE_ACCESS_DENIED', say: (p) => `Operation not permitted: ${p}` },
  EROFS: { code: 'FILE_ACCESS_DENIED', say: (p) => `Read-only file system: ${p}` },
  EISDIR: { code: 'IS_A_DIRECTORY', say: (p) => `Is a directory: ${p}` },
  ENOTDIR: { code: 'NOT_A_DIRECTORY', say: (p) => `Not a directory: ${p}` },
  EEXIST: { code: 'FILE_EXISTS', say: (p) => `Already exists: ${p}` },
  ENOTEMPTY: { code: 'DIRECTORY_NOT_EMPTY', say: (p) => `Directory not empty: ${p}` },
  ENOSPC: { code: 'INSUFFICIENT_STORAGE', say: (p) => `No space left on device while writing ${p}` },
  EDQUOT: { code: 'INSUFFICIENT_STORAGE', say: (p) => `Disk quota exceeded while writing ${p}` },
  EFBIG: { code: 'PAYLOAD_TOO_LARGE', say: (p) => `File too large: ${p}` },
  ENAMETOOLONG: { code: 'INVALID_FILE_PATH', say: (p) => `File name too long: ${p}` },
  ELOOP: { code: 'INVALID_FILE_PATH', say: (p) => `Too many levels of symbolic links: ${p}` },
  EXDEV: { code: 'INVALID_REQUEST', say: (p) => `Cannot move across file systems: ${p}` },
  EINVAL: { code: 'INVALID_REQUEST', say: (p) => `Invalid argument for ${p}` },
  EBUSY: { code: 'CONFLICT', say: (p) => `Resource busy: ${p}` },
};

/**
 * The one place OS errors become agent errors. `path` names what the operation touched, for the message.
 * Anything that is not an OS error is returned unchanged.
 */
export function fromOsError<E>(err: E, path = ''): CoveError | E {
  if (err instanceof CoveError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const known = code ? OS_ERRORS[code] : undefined;
  if (!known) return err;
  return new CoveError(known.code, known.say(path || (err as NodeJS.ErrnoException).path || ''), (err as Error).message);
}

/** Turns anything thrown into a CoveError. Unknown errors are 500 with their text as detail. */
export function toCoveError(err: unknown): CoveError {
  const mapped = fromOsError(err);
  if (mapped instanceof CoveError) return mapped;
  const message = mapped instanceof Error ? mapped.message : String(mapped);
  return new CoveError('INTERNAL_ERROR', 'The request failed unexpectedly', message);
}
