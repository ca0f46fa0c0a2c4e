import { createRequire } from 'node:module';
import type * as NodePty from 'node-pty';

let nodePty: typeof NodePty | undefined;

/**
 * node-pty, required with the first terminal (a `/process/pty` session or an SSH channel with a pty), so that an idle
 * agent does not load the native module. Both get the same module instance. It is required rather than imported
 * because the bundle leaves native modules outside (scripts/build.mjs `external`).
 */
export function loadNodePty(): typeof NodePty {
  return (nodePty ??= createRequire(import.meta.url)('node-pty') as typeof NodePty);
}
