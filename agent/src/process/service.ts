import type { SandboxContext } from '../system/context';

/** Placeholder until the capability lands. */
export function createProcessService(_ctx: SandboxContext) {
  return { close: async () => {} };
}
export type ProcessService = ReturnType<typeof createProcessService>;
