import { Envs } from './common';
import { z } from 'zod';

/**
 * One-shot commands: `POST /process/execute` and `POST /process/code-run`, shaped as the Daytona toolbox API
 * (`ExecuteRequest`, `ExecuteResponse`, `CodeRunRequest`, `CodeRunResponse` of `@daytona/toolbox-api-client`).
 */

/** Seconds a command may run when the request names no timeout (Daytona's default). `0` means no limit. */
export const DEFAULT_TIMEOUT_SECONDS = 360;

/** Most output bytes a one-shot answer keeps; beyond it the middle of the output is dropped and a marker says so. */
export const MAX_OUTPUT_BYTES = 10 * 1024 * 1024;

/** Environment variables for a command; values win over the sandbox's own. */

/** Seconds; `0` disables the limit. Clients in other languages send `null` for "not set". */
const Timeout = z.number().min(0).max(2_147_483).nullish().describe(`Seconds; ${DEFAULT_TIMEOUT_SECONDS} when absent, 0 for no limit`);

export const ExecuteRequest = z.object({
  command: z.string().min(1, 'must not be empty').describe('Shell command, run with `sh -c`'),
  timeout: Timeout,
  cwd: z.string().nullish().describe('Working directory; relative paths are taken from the sandbox work dir'),
  envs: Envs.nullish(),
});
export type ExecuteRequest = z.infer<typeof ExecuteRequest>;

export const ExecuteResponse = z.object({
  exitCode: z.number().int().describe('Exit status; 128 + signal number when a signal ended the command'),
  result: z.string().describe('stdout and stderr, interleaved in the order they were written'),
});
export type ExecuteResponse = z.infer<typeof ExecuteResponse>;

/** Languages `code-run` knows. */
export const CODE_LANGUAGES = ['python', 'javascript', 'typescript'] as const;
export type CodeLanguage = (typeof CODE_LANGUAGES)[number];

export const CodeRunRequest = z.object({
  code: z.string().describe('Program text'),
  // A plain string here so that an unknown language gets its own error code (UNSUPPORTED_LANGUAGE) and message.
  language: z.string().describe(`One of ${CODE_LANGUAGES.join(', ')}`),
  argv: z.array(z.string()).nullish().describe('Arguments the program sees after its own name'),
  envs: Envs.nullish(),
  timeout: Timeout,
});
export type CodeRunRequest = z.infer<typeof CodeRunRequest>;

/** A matplotlib figure the program drew (python): its type, title, PNG (base64) and, where known, its elements. */
const Chart = z.looseObject({ type: z.string().optional(), title: z.string().optional(), png: z.string().optional() });

export const CodeRunResponse = z.object({
  exitCode: z.number().int(),
  result: z.string().describe('stdout and stderr, interleaved in the order they were written'),
  artifacts: z.object({ charts: z.array(Chart).optional() }).optional(),
});
export type CodeRunResponse = z.infer<typeof CodeRunResponse>;
