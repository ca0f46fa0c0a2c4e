import type { FSWatcher } from 'chokidar';

/**
 * Whether chokidar watches folder `dir` itself yet (has read it and set up its fs.watch), or undefined when that
 * cannot be told. No public API says so: `getWatched()` lists a folder as soon as chokidar starts reading it, before
 * it watches it. chokidar 5.0.0 keeps the closers of its watches in the private map `FSWatcher#_closers` (path →
 * closer functions), added right after the watch is set up; this is the one place that reads it, and
 * test/private-apis.test.ts fails if a chokidar update changes it. Should it change anyway, callers get undefined and
 * go on without waiting.
 */
export function watchesFolder(watcher: FSWatcher, dir: string): boolean | undefined {
  const closers = (watcher as unknown as { _closers?: unknown })._closers;
  return closers instanceof Map ? closers.has(dir) : undefined;
}
