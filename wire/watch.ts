import { z } from 'zod';

/**
 * File watching, Cove's own WebSocket channel: `GET /files/watch?path=…` streams what changes under a file or folder.
 *
 * - The upgrade is refused with the JSON error envelope when the query is invalid (400) or the path does not exist
 *   (404, `FILE_NOT_FOUND`): the path must exist when the watch starts. Relative paths resolve against the work dir.
 * - agent → client, text frames only, JSON keyed on `type` ({@link WatchServerMessage}):
 *   `event` for each change (absolute paths); `ready` once, when the initial scan is done (changes before it may
 *   already have arrived); `overflow` when the client read too slowly and events were dropped (rescan, then keep
 *   reading: events after it are complete again); `error` for a watch error that did not end the watch (e.g. the
 *   inotify limit was reached for a folder).
 * - A move is an `unlink` of the old path and an `add` of the new one. Removing a folder reports what was inside it
 *   too. Symbolic links are reported, never followed.
 * - client → agent: nothing is expected; messages are ignored. Closing the socket ends the watch.
 * - When the watched path itself is removed, its `unlink`/`unlinkDir` is the last event to count on: watch again once
 *   it is back.
 * - Close codes: 1000 when the client ends; 1011 when the watch could not start; when the agent stops, 1001 or a
 *   dropped connection.
 */

/** Folders ignored unless `ignoreDefaults=false`: they are large, and rarely what a watcher wants to hear about. */
export const WATCH_DEFAULT_IGNORES = ['node_modules', '.git'] as const;

/** A query-string boolean with a default, for flags that are on unless turned off. */
const queryFlag = (dflt: boolean) =>
  z
    .enum(['true', 'false', '1', '0', ''])
    .optional()
    .transform((v) => (v === undefined || v === '' ? dflt : v === 'true' || v === '1'));

/**
 * Splits a comma-separated list of globs, keeping commas inside braces (`*.{js,ts}` stays one pattern).
 * Empty items are dropped.
 */
export function splitGlobList(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '{') depth++;
    else if (ch === '}' && depth > 0) depth--;
    if (ch === ',' && depth === 0) {
      out.push(current);
      current = '';
    } else current += ch;
  }
  out.push(current);
  return out.map((s) => s.trim()).filter(Boolean);
}

/** Query of `GET /files/watch` (WebSocket). */
export const WatchQuery = z.object({
  path: z.string().min(1, 'must not be empty').describe('File or folder to watch; relative paths are taken from the work dir'),
  recursive: queryFlag(true).describe('Watch the whole tree under a folder (default), or only its direct entries'),
  ignore: z
    .string()
    .optional()
    .transform((v) => (v ? splitGlobList(v) : []))
    .describe(
      'Comma-separated globs to ignore (`*`, `**`, `?`, `[…]`, `{a,b}`). A glob without "/" matches a name at any ' +
        'depth (`*.log`, `dist`); one with "/" matches the path relative to the watched folder (`build/**`). An ' +
        'ignored folder is not descended into.',
    ),
  ignoreDefaults: queryFlag(true).describe(`Also ignore ${WATCH_DEFAULT_IGNORES.join(' and ')} (default true)`),
  initial: queryFlag(false).describe('Report what already exists as add/addDir events before ready (default false)'),
});
export type WatchQuery = z.output<typeof WatchQuery>;

/** Kinds of change, as chokidar names them. */
export const WATCH_EVENTS = ['add', 'change', 'unlink', 'addDir', 'unlinkDir'] as const;
export type WatchEventName = (typeof WATCH_EVENTS)[number];

/** One change. Size and mtime come with files' `add` and `change` when known. */
export const WatchEventMessage = z.object({
  type: z.literal('event'),
  event: z.enum(WATCH_EVENTS),
  path: z.string().describe('Absolute path'),
  isDir: z.boolean(),
  size: z.number().int().optional().describe('Bytes'),
  mtime: z.string().optional().describe('Last modification, ISO 8601'),
});
export type WatchEventMessage = z.infer<typeof WatchEventMessage>;

/** The initial scan is done: from now on every change is reported. `path` is the resolved path being watched. */
const WatchReadyMessage = z.object({ type: z.literal('ready'), path: z.string(), recursive: z.boolean() });
type WatchReadyMessage = z.infer<typeof WatchReadyMessage>;

/** Events (and errors) were dropped because the client read too slowly: what it knows may be stale, rescan. */
const WatchOverflowMessage = z.object({ type: z.literal('overflow'), dropped: z.number().int().min(1) });
type WatchOverflowMessage = z.infer<typeof WatchOverflowMessage>;

/** A watch error that did not end the watch; `code` is the OS error code when there is one (ENOSPC: inotify limit). */
const WatchErrorMessage = z.object({ type: z.literal('error'), message: z.string(), code: z.string().optional() });
type WatchErrorMessage = z.infer<typeof WatchErrorMessage>;

/** Text messages the agent sends on the watch channel. */
export const WatchServerMessage = z.discriminatedUnion('type', [
  WatchEventMessage,
  WatchReadyMessage,
  WatchOverflowMessage,
  WatchErrorMessage,
]);
export type WatchServerMessage = z.infer<typeof WatchServerMessage>;

/** One open watch, as `GET /files/watchers` lists it. */
export const WatcherInfo = z.object({
  path: z.string(),
  recursive: z.boolean(),
  ready: z.boolean(),
  queued: z.number().int().describe('Messages waiting for the client to read'),
  queuedBytes: z.number().int().describe('Estimated size of those messages'),
  bufferedBytes: z.number().int().describe('Bytes written to the socket and not yet sent'),
  dropped: z.number().int().describe('Messages dropped since the last overflow message'),
});
export type WatcherInfo = z.infer<typeof WatcherInfo>;

/** `GET /files/watchers`: the open watches (one file-system watcher each). */
export const WatchersResponse = z.object({ watchers: z.array(WatcherInfo) });
export type WatchersResponse = z.infer<typeof WatchersResponse>;
