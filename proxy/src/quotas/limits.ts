import { CoveError } from '../../../lib/errors';
import type { SandboxState } from '../../../wire/sandbox';

/**
 * The limits of one API key (Daytona's organization limits): how much its sandboxes may use together, and how large
 * one may be. `flag` is the option of `cove serve` (the server-wide default) and of `cove keys create|set` (the key's
 * own value); `env` sets the default too. Defaults follow Daytona's default tier (10 vCPU, 10 GiB of memory, 4 vCPU /
 * 8 GiB / 10 GiB per sandbox), with the total disk sized for ten sandboxes of Cove's default 10 GiB disk (Daytona's
 * 30 GiB is ten of its 3 GiB sandboxes) and Daytona's former limit of 10 concurrent sandboxes.
 */
export const LIMITS = {
  maxSandboxes: { flag: 'max-sandboxes', env: 'COVE_MAX_SANDBOXES', fallback: 10, says: 'started sandboxes at once' },
  maxCpu: { flag: 'max-cpu', env: 'COVE_MAX_CPU', fallback: 10, says: 'vCPU over started sandboxes' },
  maxMemory: { flag: 'max-memory', env: 'COVE_MAX_MEMORY', fallback: 10, says: 'GiB of memory over started sandboxes' },
  maxDisk: { flag: 'max-disk', env: 'COVE_MAX_DISK', fallback: 100, says: 'GiB of disk over started and stopped sandboxes' },
  maxSandboxCpu: { flag: 'max-sandbox-cpu', env: 'COVE_MAX_SANDBOX_CPU', fallback: 4, says: 'vCPU of one sandbox' },
  maxSandboxMemory: { flag: 'max-sandbox-memory', env: 'COVE_MAX_SANDBOX_MEMORY', fallback: 8, says: 'GiB of memory of one sandbox' },
  maxSandboxDisk: { flag: 'max-sandbox-disk', env: 'COVE_MAX_SANDBOX_DISK', fallback: 10, says: 'GiB of disk of one sandbox' },
} as const;

export type LimitName = keyof typeof LIMITS;
export const LIMIT_NAMES = Object.keys(LIMITS) as LimitName[];

/** Every limit's value: a whole number ≥ 0, or null for no limit. */
export type Limits = Record<LimitName, number | null>;
/** A key's own values; a limit it does not name takes the server's default (an admin key's: no limit). */
export type LimitOverrides = Partial<Limits>;

/** The built-in defaults (see LIMITS). */
export const DEFAULT_LIMITS = Object.fromEntries(LIMIT_NAMES.map((n) => [n, LIMITS[n].fallback])) as Limits;
const UNLIMITED = Object.fromEntries(LIMIT_NAMES.map((n) => [n, null])) as Limits;

/** The words a limit value may be given as, beside a whole number. */
const NO_LIMIT = 'unlimited';

/**
 * A limit value as people write it (a flag, an environment variable): a whole number ≥ 0, or "unlimited" (null).
 * Throws a sentence naming `what` otherwise.
 */
export function parseLimit(text: string, what: string): number | null {
  const value = text.trim().toLowerCase();
  if (value === NO_LIMIT) return null;
  if (!/^\d{1,9}$/.test(value)) throw new Error(`${what}: ${text.slice(0, 40)} is not a whole number ≥ 0 or "${NO_LIMIT}"`);
  return Number(value);
}

/** How a limit value reads in listings and help. */
export const showLimit = (value: number | null): string => (value === null ? NO_LIMIT : String(value));

/** The start-up line's account of the default limits: `quotas: per API key 10 started sandboxes at once, …`. */
export function describeLimits(defaults: Limits): string {
  const named = LIMIT_NAMES.map((n) => `${showLimit(defaults[n])} ${LIMITS[n].says}`);
  return `per API key without limits of its own: ${named.join(', ')}; admin keys only by their own`;
}

/**
 * The limits in force for a key: its own values over the server's defaults. An admin key (the operator's) is not
 * bound by the defaults: only the limits set on the key itself apply to it.
 */
export function effectiveLimits(defaults: Limits, own: LimitOverrides, admin: boolean): Limits {
  const limits = { ...(admin ? UNLIMITED : defaults) };
  for (const name of LIMIT_NAMES) if (own[name] !== undefined) limits[name] = own[name];
  return limits;
}

/**
 * States that hold compute (vCPU, memory, a started slot) and states that hold disk, as Daytona counts them: a
 * sandbox holds compute from creation until it has stopped, and disk as long as its file system exists (stopped
 * too). A sandbox in error or being destroyed holds nothing.
 */
// A paused sandbox keeps its memory (its processes are frozen, not gone): it holds compute too. One being copied (a
// fork, a snapshot) counts as a started one: a stopped one holds compute for the seconds the copy takes. An archived
// one holds nothing: its files are in the archive store, not on the engine's disk. One whose image is being built is
// being made (as Daytona counts it); one whose build failed holds nothing.
const COMPUTE_STATES: readonly SandboxState[] = ['creating', 'starting', 'started', 'stopping', 'pausing', 'paused', 'resuming', 'restoring', 'forking', 'snapshotting', 'pending_build', 'building_snapshot'];
const DISK_STATES: readonly SandboxState[] = [...COMPUTE_STATES, 'stopped', 'archiving'];

/** The resources of one sandbox (vCPU, GiB, GiB). */
export interface Resources {
  cpu: number;
  memory: number;
  disk: number;
}

/** What a key's sandboxes hold. */
interface Usage extends Resources {
  started: number;
}

/** What the sandboxes in these states hold together. */
export function usageOf(sandboxes: Iterable<Resources & { state: SandboxState }>): Usage {
  const usage: Usage = { started: 0, cpu: 0, memory: 0, disk: 0 };
  for (const s of sandboxes) {
    if (COMPUTE_STATES.includes(s.state)) {
      usage.started += 1;
      usage.cpu += s.cpu;
      usage.memory += s.memory;
    }
    if (DISK_STATES.includes(s.state)) usage.disk += s.disk;
  }
  return usage;
}

const over = (limit: number | null, total: number): limit is number => limit !== null && total > limit;
const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** Why no sandbox of `wanted` resources may exist at all (over a per-sandbox maximum: a bad request naming the field). */
export function sizeRefusal(limits: Limits, wanted: Partial<Resources>): CoveError | undefined {
  const perSandbox = [
    ['cpu', wanted.cpu, limits.maxSandboxCpu, 'vCPU'],
    ['memory', wanted.memory, limits.maxSandboxMemory, 'GiB'],
    ['disk', wanted.disk, limits.maxSandboxDisk, 'GiB'],
  ] as const;
  for (const [field, value, max, unit] of perSandbox) {
    if (value !== undefined && over(max, value)) return new CoveError('INVALID_REQUEST', `${field} ${value} is over the maximum of ${max} ${unit} per sandbox for this API key`);
  }
  return undefined;
}

/**
 * Why a sandbox of `wanted` resources may not start beside the `usage` of the key's other sandboxes, or undefined
 * when it may. A sandbox larger than a per-sandbox maximum is a bad request (INVALID_REQUEST, naming the field); one
 * that does not fit the key's totals is QUOTA_EXCEEDED, naming the limit and its value.
 */
export function refusal(limits: Limits, usage: Usage, wanted: Resources, opts: { /** false: the sandbox stays stopped (disk only) */ holdsCompute?: boolean } = {}): CoveError | undefined {
  const tooLarge = sizeRefusal(limits, wanted);
  if (tooLarge) return tooLarge;
  const quota = (message: string, detail: string) => new CoveError('QUOTA_EXCEEDED', message, detail);
  const compute = opts.holdsCompute ?? true;
  if (compute && over(limits.maxSandboxes, usage.started + 1)) {
    return quota(
      `Sandbox limit of ${plural(limits.maxSandboxes, 'started sandbox', 'started sandboxes')} reached for this API key: stop or delete one first`,
      `max-sandboxes ${limits.maxSandboxes}; started, starting or stopping: ${usage.started}`,
    );
  }
  if (compute && over(limits.maxCpu, usage.cpu + wanted.cpu)) {
    return quota(
      `Total CPU limit of ${limits.maxCpu} vCPU reached for this API key: ${usage.cpu} vCPU in use by started sandboxes, and this sandbox needs ${wanted.cpu}`,
      `max-cpu ${limits.maxCpu}; in use ${usage.cpu}; requested ${wanted.cpu}`,
    );
  }
  if (compute && over(limits.maxMemory, usage.memory + wanted.memory)) {
    return quota(
      `Total memory limit of ${limits.maxMemory} GiB reached for this API key: ${usage.memory} GiB in use by started sandboxes, and this sandbox needs ${wanted.memory} GiB`,
      `max-memory ${limits.maxMemory}; in use ${usage.memory}; requested ${wanted.memory}`,
    );
  }
  if (over(limits.maxDisk, usage.disk + wanted.disk)) {
    return quota(
      `Total disk limit of ${limits.maxDisk} GiB reached for this API key: ${usage.disk} GiB held by started and stopped sandboxes, and this sandbox needs ${wanted.disk} GiB; delete sandboxes you no longer need`,
      `max-disk ${limits.maxDisk}; in use ${usage.disk}; requested ${wanted.disk}`,
    );
  }
  return undefined;
}
