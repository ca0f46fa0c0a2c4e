import { CoveError } from '../../../lib/errors';
import type { UpdateEnvRequest } from '../../../wire/env';
import type { SandboxContext } from '../system/context';

/** Names the agent sets from the account user code runs as: changing them would describe another account. */
const IDENTITY_NAMES = new Set(['HOME', 'USER', 'LOGNAME', 'SHELL']);
/** Largest `NAME=value` string: Linux refuses to exec with a longer one (MAX_ARG_STRLEN, E2BIG). */
export const MAX_ENV_ENTRY = 128 * 1024 - 1;
/** Largest environment in all: arguments and environment share the exec limit (ARG_MAX, 2 MiB on most systems). */
const MAX_ENV_TOTAL = 1024 * 1024;

/**
 * Why a name may not be set or removed through `POST /env`, or undefined when it may. Cove's own variables, the
 * identity variables, and the variables that change how programs the agent starts itself behave (the SFTP server on
 * the agent's Node, language servers, git) are refused; they can still be given to one command, session or PTY.
 */
export function protectedReason(name: string): string | undefined {
  if (name.startsWith('COVE_')) return 'COVE_* variables are reserved for Cove';
  if (IDENTITY_NAMES.has(name)) return `${name} is set by the agent from the sandbox user's account`;
  if (name.startsWith('LD_') || name === 'NODE_OPTIONS') return `${name} would change the programs the agent starts itself; pass it to one command instead`;
  return undefined;
}

const refuse = (field: string, message: string) => new CoveError('INVALID_REQUEST', `Invalid request body.${field}: ${message}`);
const entrySize = (name: string, value: string) => Buffer.byteLength(name) + Buffer.byteLength(value) + 2;

/**
 * The environment every process the agent starts from now on begins with (`ctx.env`, shared with every service).
 * Changes are checked whole and applied at once: a refused request changes nothing. Running processes, sessions and
 * terminals keep the environment they started with.
 */
export function createEnvService(ctx: SandboxContext) {
  return {
    update(req: UpdateEnvRequest): void {
      const set = req.set ?? {};
      for (const [i, name] of (req.unset ?? []).entries()) {
        const reason = protectedReason(name) ?? (name === 'PATH' ? 'PATH cannot be removed (shells, git and language servers are found through it)' : undefined);
        if (reason) throw refuse(`unset.${i}`, reason);
      }
      for (const [name, value] of Object.entries(set)) {
        const reason = protectedReason(name) ?? (name === 'PATH' && value === '' ? 'PATH cannot be empty' : undefined);
        if (reason) throw refuse(`set.${name}`, reason);
        if (entrySize(name, value) > MAX_ENV_ENTRY) throw refuse(`set.${name}`, `NAME=value is limited to ${MAX_ENV_ENTRY} bytes`);
      }

      const next: Record<string, string> = { ...ctx.env };
      for (const name of req.unset ?? []) delete next[name];
      const prefix = req.unsetValuePrefix;
      if (prefix) {
        for (const [name, value] of Object.entries(next)) {
          if (value.startsWith(prefix) && !Object.hasOwn(set, name) && !protectedReason(name) && name !== 'PATH') delete next[name];
        }
      }
      Object.assign(next, set);
      let total = 0;
      for (const [name, value] of Object.entries(next)) total += entrySize(name, value);
      if (total > MAX_ENV_TOTAL) throw refuse('set', `the environment would take ${total} bytes; the limit is ${MAX_ENV_TOTAL}`);

      // In place: every service holds this same object.
      for (const name of Object.keys(ctx.env)) if (!Object.hasOwn(next, name)) delete ctx.env[name];
      Object.assign(ctx.env, next);
    },
  };
}
export type EnvService = ReturnType<typeof createEnvService>;
