import type { SandboxContext } from '../system/context';

/** Placeholder until the capability lands. */
export function createSessionsService(_ctx: SandboxContext) {
  return { close: async () => {} };
}
export type SessionsService = ReturnType<typeof createSessionsService>;
