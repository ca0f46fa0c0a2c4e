import type { SandboxContext } from '../system/context';

/** Facts about the sandbox that clients ask for: version and well-known folders. */
export function createInfoService(ctx: SandboxContext, version: string) {
  return {
    version: () => version,
    userHomeDir: () => ctx.identity.home,
    workDir: () => ctx.workdir,
    /** Daytona's project dir is where a cloned project lives; in Cove it is the work dir. */
    projectDir: () => ctx.workdir,
  };
}
export type InfoService = ReturnType<typeof createInfoService>;
