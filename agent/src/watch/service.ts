import type { SandboxContext } from '../system/context';

/** Placeholder until the capability lands. */
export function createWatchService(_ctx: SandboxContext) {
  return { close: async () => {} };
}
export type WatchService = ReturnType<typeof createWatchService>;
