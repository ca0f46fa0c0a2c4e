import type { SandboxContext } from '../system/context';

/** Placeholder until the capability lands. */
export function createLspService(_ctx: SandboxContext) {
  return { close: async () => {} };
}
export type LspService = ReturnType<typeof createLspService>;
