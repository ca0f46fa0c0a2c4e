import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { FSWatcher } from 'chokidar';
import { WATCH_DEFAULT_IGNORES, type WatchEventName, type WatcherInfo, type WatchServerMessage } from '../../../wire/watch';
import { fromOsError } from '../../../lib/errors';
import { guard } from '../../../lib/guard';
import type { SandboxContext } from '../system/context';
import { resolvePath } from '../system/paths';
import { watchesFolder } from './chokidar-private';
import { createIgnoreMatcher } from './ignore';

/** What one watch reports to, and how it is told to end. */
interface WatchSink {
  message(message: WatchServerMessage): void;
  /** The watch cannot go on (it failed to start, or the agent is stopping); `code` is a WebSocket close code. */
  end(code: 1001 | 1011, reason: string): void;
  /** Queue state, for the list of watchers. */
  status(): Pick<WatcherInfo, 'queued' | 'queuedBytes' | 'bufferedBytes' | 'dropped'>;
}

/** What to watch; `path` is absolute and existed when the request was checked (see `resolveExisting`). */
interface WatchOptions {
  path: string;
  recursive: boolean;
  ignore: string[];
  ignoreDefaults: boolean;
  initial: boolean;
}

interface WatchHandle {
  /** Stops watching and releases the file-system watches. Idempotent. */
  close(): Promise<void>;
}

type Chokidar = typeof import('chokidar');

/**
 * chokidar reports the first change of a file and drops the others of the next 50 ms (a leading-edge throttle; 5 ms
 * for the file's own fs.watch events), so the last write of a burst (`writeFile` truncates, then writes; a file
 * created then filled) may never be reported, and the size sent would be stale. Each file reported as added or
 * changed is stat'ed again once that window has passed, and reported as changed if it differs.
 */
const RECHECK_AFTER_MS = 60;

/**
 * chokidar reads a new folder and only then starts watching it, so an entry created in between is never reported
 * (a folder made and filled at once, as `mkdir -p a/b && touch a/x` or an unpacked archive does, loses a file now and
 * then). Each folder reported as added is therefore read again once chokidar watches it, and what chokidar does not
 * know is handed back to it, which reports it. The check waits for chokidar's watch of the folder (`watchesFolder`) for at
 * most this many rounds of RECHECK_AFTER_MS.
 */
const SWEEP_MAX_ROUNDS = 50;

/** Says what a watch error means; the inotify limits are the ones people hit. */
function describeWatchError(err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOSPC') {
    return 'The limit of watched folders (fs.inotify.max_user_watches) was reached: changes in some folders will be missed';
  }
  if (err.code === 'EMFILE') return 'Too many open watches (fs.inotify.max_user_instances): changes will be missed';
  return `Watch error: ${err.message}`;
}

function eventOf(name: WatchEventName, file: string, stats: Stats | undefined): WatchServerMessage {
  const isDir = name === 'addDir' || name === 'unlinkDir';
  const message: WatchServerMessage = { type: 'event', event: name, path: file, isDir };
  if (!isDir && stats && (name === 'add' || name === 'change')) {
    message.size = stats.size;
    message.mtime = stats.mtime.toISOString();
  }
  return message;
}

/**
 * File watching with chokidar (inotify underneath). Each watch owns one chokidar watcher; chokidar itself shares the
 * underlying `fs.watch` handles of a folder between watchers, so two clients on one folder cost one inotify watch.
 * chokidar is imported on the first watch, so an agent that never watches does not load it.
 *
 * Invariants: every watch is in `active` from `watch()` until its `close()` (or the service's), and its chokidar
 * watcher is closed by then, whatever the order of start and close; symbolic links are never followed (a link to `/`
 * must not make a watch of the work dir watch the whole disk).
 */
export function createWatchService(ctx: SandboxContext) {
  let chokidar: Promise<Chokidar> | undefined;
  const active = new Map<WatchHandle, { options: WatchOptions; sink: WatchSink; isReady: () => boolean }>();

  return {
    /**
     * The absolute path to watch for a client's `p` (relative to the work dir); throws FILE_NOT_FOUND when it does
     * not exist. Synchronous, so it can run while a WebSocket upgrade is being decided. A watched path that is itself
     * a symbolic link is resolved to its target, which is what gets watched and reported.
     */
    resolveExisting(p: string): string {
      const abs = resolvePath(ctx.workdir, p);
      try {
        return lstatSync(abs).isSymbolicLink() ? realpathSync(abs) : abs;
      } catch (err) {
        throw fromOsError(err, p);
      }
    },

    /** Starts a watch that reports to `sink`: events, then `ready` once the initial scan is done. */
    watch(options: WatchOptions, sink: WatchSink): WatchHandle {
      let watcher: FSWatcher | undefined;
      let closed = false;
      let ready = false;
      const globs = [...(options.ignoreDefaults ? WATCH_DEFAULT_IGNORES : []), ...options.ignore];
      const ignored = createIgnoreMatcher(options.path, globs);
      /**
       * Files just reported as added or changed (what was reported, and when to look again), and folders just added
       * (when to read them again): oldest first, since every entry is due RECHECK_AFTER_MS after it was queued.
       */
      const recheck = new Map<string, { seen?: Stats; dir?: { rounds: number }; due: number }>();
      let recheckTimer: NodeJS.Timeout | undefined;
      const handle: WatchHandle = {
        async close() {
          if (closed) return;
          closed = true;
          clearTimeout(recheckTimer);
          recheck.clear();
          active.delete(handle);
          await watcher?.close();
        },
      };
      const queueRecheck = (file: string, entry: { seen?: Stats; dir?: { rounds: number } }) => {
        recheck.delete(file);
        recheck.set(file, { ...entry, due: Date.now() + RECHECK_AFTER_MS });
        recheckTimer ??= setTimeout(recheckDueGuarded, RECHECK_AFTER_MS);
      };
      const recheckFile = (file: string, seen: Stats | undefined) =>
        stat(file).then(
          (st) => {
            if (closed || !st.isFile() || (seen && st.size === seen.size && st.mtimeMs === seen.mtimeMs)) return;
            sink.message(eventOf('change', file, st));
          },
          // Gone since: its unlink is on its way.
          () => {},
        );
      const sweepDir = (dir: string, rounds: number) => {
        if (!watcher) return;
        if (watchesFolder(watcher, dir) === false && rounds < SWEEP_MAX_ROUNDS) {
          queueRecheck(dir, { dir: { rounds: rounds + 1 } });
          return;
        }
        const w = watcher;
        readdir(dir).then(
          (names) => {
            if (closed) return;
            const known = new Set(w.getWatched()[dir] ?? []);
            for (const name of names) {
              const entry = path.join(dir, name);
              // The third argument marks the path as found by a change, not given by the user: chokidar reports it.
              if (!known.has(name) && !ignored(entry)) w.add(entry, undefined, true);
            }
          },
          // Gone since: its unlinkDir is on its way.
          () => {},
        );
      };
      const recheckDue = () => {
        recheckTimer = undefined;
        const now = Date.now();
        for (const [file, { seen, dir, due }] of recheck) {
          if (due > now) {
            recheckTimer = setTimeout(recheckDueGuarded, due - now);
            return;
          }
          recheck.delete(file);
          if (dir) sweepDir(file, dir.rounds);
          else void recheckFile(file, seen);
        }
      };
      const recheckDueGuarded = guard('watch recheck', () => recheckDue(), () => {});
      const report = (name: WatchEventName, file: string, stats: Stats | undefined) => {
        sink.message(eventOf(name, file, stats));
        // What the initial scan found was not being written to as far as anyone knows: no need to look twice.
        if (!ready && name !== 'change') return;
        if (name === 'add' || name === 'change') queueRecheck(file, { seen: stats });
        else if (name === 'addDir' && options.recursive) queueRecheck(file, { dir: { rounds: 0 } });
      };
      active.set(handle, { options, sink, isReady: () => ready });

      (chokidar ??= import('chokidar'))
        .then(({ watch }) => {
          if (closed) return;
          watcher = watch(options.path, {
            ignoreInitial: !options.initial,
            depth: options.recursive ? undefined : 0,
            followSymlinks: false,
            // Folders the agent may not read are skipped rather than reported over and over.
            ignorePermissionErrors: true,
            ignored: (file: string) => ignored(file),
          });
          // 'all' carries only the five change kinds (not ready, error or raw).
          watcher.on('all', guard('watch event', (name: string, file: string, stats?: Stats) => report(name as WatchEventName, file, stats), () => {}));
          watcher.on('error', (err) => {
            const e = err as NodeJS.ErrnoException;
            sink.message({ type: 'error', message: describeWatchError(e), ...(e.code ? { code: e.code } : {}) });
          });
          watcher.on('ready', () => {
            ready = true;
            sink.message({ type: 'ready', path: options.path, recursive: options.recursive });
          });
        })
        .catch((err: unknown) => {
          void handle.close();
          sink.end(1011, `The watch could not start: ${(err as Error).message}`);
        });
      return handle;
    },

    /** The open watches and their queues. */
    list(): WatcherInfo[] {
      return [...active.values()].map(({ options, sink, isReady }) => ({
        path: options.path,
        recursive: options.recursive,
        ready: isReady(),
        ...sink.status(),
      }));
    },

    /** Ends every watch (the agent is stopping). */
    async close(): Promise<void> {
      const entries = [...active.entries()];
      await Promise.allSettled(
        entries.map(async ([handle, { sink }]) => {
          await handle.close();
          sink.end(1001, 'The agent is stopping');
        }),
      );
    },
  };
}
export type WatchService = ReturnType<typeof createWatchService>;
