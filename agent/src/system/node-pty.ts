import { createRequire } from 'node:module';
import type * as NodePty from 'node-pty';
import { forkingUserCode } from './oom';

let nodePty: typeof NodePty | undefined;

/**
 * node-pty, required with the first terminal (a `/process/pty` session or an SSH channel with a pty), so that an idle
 * agent does not load the native module. Both get the same module instance. It is required rather than imported
 * because the bundle leaves native modules outside (scripts/build.mjs `external`).
 */
export function loadNodePty(): typeof NodePty {
  if (!nodePty) {
    const loaded = createRequire(import.meta.url)('node-pty') as typeof NodePty;
    // node-pty forks in spawn() itself, outside Node's child_process: its terminals start as user code too (oom.ts).
    nodePty = { ...loaded, spawn: (...args: Parameters<typeof loaded.spawn>) => forkingUserCode(() => loaded.spawn(...args)) };
  }
  return nodePty;
}
