import type { SandboxContext } from '../system/context';

/** Placeholder until the capability lands. */
export function createPtyService(_ctx: SandboxContext) {
  return { close: async () => {} };
}
export type PtyService = ReturnType<typeof createPtyService>;
