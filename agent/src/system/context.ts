import type { Identity } from './identity';
import { spawnIdentity } from './identity';

/**
 * What every service needs to know about the sandbox: where work happens, who runs user code, and the environment
 * children start with (the agent's own, less its secrets, with the identity's HOME/USER).
 */
export interface SandboxContext {
  workdir: string;
  identity: Identity;
  /** Base environment of every child process. Never contains the agent token. */
  env: Record<string, string>;
  /** uid/gid options for child_process.spawn and node-pty when user code runs as another account. */
  spawnAs: { uid?: number; gid?: number };
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function createSandboxContext(opts: {
  workdir: string;
  identity: Identity;
  env: NodeJS.ProcessEnv;
}): SandboxContext {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.env)) if (v !== undefined) env[k] = v;
  env.HOME = opts.identity.home;
  env.USER = opts.identity.username;
  env.LOGNAME = opts.identity.username;
  env.SHELL = opts.identity.shell;
  env.PATH ??= DEFAULT_PATH;
  env.TERM ??= 'xterm-256color';
  env.LANG ??= 'C.UTF-8';
  return { workdir: opts.workdir, identity: opts.identity, env, spawnAs: spawnIdentity(opts.identity) };
}

/** Merges request envs over the base environment; request values win. */
export function childEnv(ctx: SandboxContext, extra?: Record<string, string>): Record<string, string> {
  return extra ? { ...ctx.env, ...extra } : ctx.env;
}
