import type { SandboxContext } from '../system/context';

/** Placeholder until the capability lands. */
export function createFilesService(_ctx: SandboxContext) {
  return { close: async () => {} };
}
export type FilesService = ReturnType<typeof createFilesService>;
