import type { SandboxContext } from '../system/context';

/** Placeholder until the capability lands. */
export function createGitService(_ctx: SandboxContext) {
  return { close: async () => {} };
}
export type GitService = ReturnType<typeof createGitService>;
