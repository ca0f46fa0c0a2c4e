import { z } from 'zod';
import { Envs } from './common';

/**
 * The code interpreter (Daytona's `sandbox.codeInterpreter`): long-lived Python kernels ("contexts") whose globals
 * persist from one run to the next. Shapes as the Daytona toolbox API has them (`CreateContextRequest`,
 * `InterpreterContext`, `ListContextsResponse` of `@daytona/toolbox-api-client`).
 *
 * WebSocket `GET /process/interpreter/execute`, one run per connection:
 * - client → agent, first message: text {@link InterpreterExecuteRequest} `{code, contextId?, envs?, timeout?}`.
 *   Without `contextId` the run goes to the default context (made on first use, kept, not listed).
 * - agent → client: text frames keyed on `type`: `{type:"stdout",text}` and `{type:"stderr",text}` as the code
 *   writes, at most {@link MAX_FRAME_TEXT} characters each; then, once the code has finished, `{type:"chart",chart}`
 *   for every matplotlib figure it left open or showed (Cove's addition; Daytona's SDK ignores it), and:
 *   - finished (raising or not): `{type:"error",name,value,traceback}` if it raised, `{type:"control",text:"completed"}`,
 *     close 1000;
 *   - interrupted by the client's `{type:"interrupt"}`: `{type:"control",text:"interrupted"}`, close 1000;
 *   - past its timeout: SIGINT to the kernel, then `{type:"error",name:"TimeoutError",…}` and close
 *     {@link INTERPRETER_TIMEOUT_CLOSE} (4008, which the SDK turns into DaytonaTimeoutError). No control frame comes
 *     first: the SDK resolves on one. The context keeps its state unless the kernel ignored SIGINT and was killed.
 *   - the kernel died (`os._exit`, a signal, out of memory): `{type:"error",name:"KernelDied",…}`, `completed`,
 *     close 1000; the next run on that context starts a fresh kernel (its globals are gone).
 *   - a bad request (invalid JSON, no `code`, unknown context, too many runs waiting): `{type:"error",name:CODE,value}`
 *     and a close with 4000 + the HTTP status of the error (4400, 4404, 4429…).
 * - client → agent afterwards: text `{"type":"interrupt"}` sends SIGINT to the kernel (KeyboardInterrupt).
 * - a client that goes away does not stop the run; its output is dropped.
 * Runs of one context queue and run one at a time, in order.
 */

/** Seconds a run may take when the request names none (Daytona's default); 0 means no limit. */
export const DEFAULT_RUN_TIMEOUT_SECONDS = 600;
/** Close code of a run that went past its timeout (the Daytona SDK maps it to DaytonaTimeoutError). */
export const INTERPRETER_TIMEOUT_CLOSE = 4008;
/** Most characters of output in one stdout/stderr frame; longer output comes in several frames. */
export const MAX_FRAME_TEXT = 64 * 1024;
/** Languages a context can run. */
export const INTERPRETER_LANGUAGES = ['python'] as const;
/** Id of the context that runs without a `contextId`. */
export const DEFAULT_CONTEXT_ID = 'default';

/** `POST /process/interpreter/context`. */
export const CreateContextRequest = z.object({
  cwd: z.string().min(1, 'must not be empty').nullish().describe('Working directory of the kernel; relative paths start at the work dir'),
  // A plain string so that another language gets UNSUPPORTED_LANGUAGE with a message naming the field.
  language: z.string().nullish().describe(`One of ${INTERPRETER_LANGUAGES.join(', ')}; python when absent`),
});
export type CreateContextRequest = z.infer<typeof CreateContextRequest>;

export const InterpreterContext = z.object({
  id: z.string(),
  cwd: z.string(),
  language: z.string(),
  createdAt: z.string().describe('ISO 8601'),
  active: z.boolean().describe('Whether its kernel process is running (a dead kernel restarts on the next run)'),
});
export type InterpreterContext = z.infer<typeof InterpreterContext>;

export const ListContextsResponse = z.object({ contexts: z.array(InterpreterContext).describe('Every context but the default one') });
export type ListContextsResponse = z.infer<typeof ListContextsResponse>;

export const DeleteContextResponse = z.object({ message: z.string() });
export type DeleteContextResponse = z.infer<typeof DeleteContextResponse>;

/** First message of the execute WebSocket. */
export const InterpreterExecuteRequest = z.object({
  code: z.string({ error: 'is required (a string of Python code)' }).min(1, 'must not be empty'),
  contextId: z.string().min(1, 'must not be empty').nullish(),
  envs: Envs.nullish().describe('Environment variables set for this run only'),
  timeout: z
    .number()
    .min(0)
    .max(2_147_483)
    .nullish()
    .describe(`Seconds; ${DEFAULT_RUN_TIMEOUT_SECONDS} when absent, 0 for no limit`),
});
export type InterpreterExecuteRequest = z.infer<typeof InterpreterExecuteRequest>;

/** What a client may send once its run started. */
export const InterpreterClientMessage = z.object({ type: z.literal('interrupt') });
export type InterpreterClientMessage = z.infer<typeof InterpreterClientMessage>;

/**
 * A matplotlib figure, as Daytona's `Chart` (`type` is line, scatter, bar, pie, box_and_whisker, composite_chart or
 * unknown; `png` is base64). Elements: `{label, points}` for line and scatter, `{label, group, value}` for bar (value
 * as text, as the API types it), `{label, angle, radius}` for pie, `{label, min, first_quartile, median,
 * third_quartile, max, outliers}` for box_and_whisker, whole sub-charts (without png) for composite_chart.
 */
export const ChartShape = z.looseObject({
  type: z.string(),
  title: z.string().optional(),
  png: z.string().optional(),
  elements: z.array(z.looseObject({})).optional(),
});
export type ChartShape = z.infer<typeof ChartShape>;

const OutputFrame = z.object({ type: z.enum(['stdout', 'stderr']), text: z.string() });
export const ErrorFrame = z.object({ type: z.literal('error'), name: z.string(), value: z.string(), traceback: z.string() });
const ControlFrame = z.object({ type: z.literal('control'), text: z.enum(['completed', 'interrupted']) });
const ChartFrame = z.object({ type: z.literal('chart'), chart: ChartShape });

/** Text frames the agent sends. */
export const InterpreterServerFrame = z.union([OutputFrame, ErrorFrame, ControlFrame, ChartFrame]);
export type InterpreterServerFrame = z.infer<typeof InterpreterServerFrame>;
export type InterpreterErrorFrame = z.infer<typeof ErrorFrame>;
