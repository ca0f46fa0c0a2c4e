/**
 * Reading the sandbox's own cgroup: the CPU and memory limits it runs under and what it uses of them. cgroup v2
 * (`cpu.max`, `cpu.stat`, `memory.max`, `memory.current`, `memory.stat`) and v1 (`cpu.cfs_quota_us`/`cfs_period_us`,
 * `cpuacct.usage`, `memory.limit_in_bytes`, `memory.usage_in_bytes`, `memory.stat`). The parsers are pure and total:
 * text they do not understand gives undefined, never an exception.
 */

/** A v1 memory limit at or above this means "no limit" (the kernel reports PAGE_COUNTER_MAX in bytes, about 2^63). */
const V1_UNLIMITED = 2 ** 60;

/** Where this process sits: the v2 path (`0::/…`) and the v1 path of each controller. */
interface CgroupMembership {
  v2?: string;
  v1: Map<string, string>;
}

/** Parses /proc/self/cgroup (`id:controllers:path` lines). */
export function parseProcCgroup(text: string): CgroupMembership {
  const membership: CgroupMembership = { v1: new Map() };
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers, path] = m;
    if (id === '0' && controllers === '') membership.v2 = path;
    else for (const c of controllers.split(',')) if (c) membership.v1.set(c, path);
  }
  return membership;
}

/** A single non-negative integer file (`memory.current`, `cpuacct.usage`), or undefined. */
export function parseCount(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (!t || !/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `key value` lines (`memory.stat`, `cpu.stat`) → numbers by key; lines that are not that are skipped. */
export function parseKeyed(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const m = /^(\w+)\s+(\d+)\s*$/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** v2 `cpu.max` (`QUOTA PERIOD` or `max PERIOD`) → CPUs allowed, undefined without a limit. */
export function parseCpuMax(text: string | undefined): number | undefined {
  const m = /^(max|\d+)(?:\s+(\d+))?\s*$/.exec(text?.trim() ?? '');
  if (!m || m[1] === 'max') return undefined;
  const period = m[2] === undefined ? 100_000 : Number(m[2]);
  const quota = Number(m[1]);
  return period > 0 && quota > 0 ? quota / period : undefined;
}

/** v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` → CPUs allowed, undefined without a limit (quota -1). */
export function parseCfsQuota(quota: string | undefined, period: string | undefined): number | undefined {
  const q = Number(quota?.trim());
  const p = Number(period?.trim());
  if (!quota?.trim() || !period?.trim() || !Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return q / p;
}

/** A memory limit: v2 `memory.max` (`max` or bytes) or v1 `memory.limit_in_bytes`; undefined without a limit. */
export function parseMemoryLimit(text: string | undefined): number | undefined {
  const n = parseCount(text);
  return n === undefined || n >= V1_UNLIMITED ? undefined : n;
}

/** A cpuset list (`0-3,6,8-9`) → how many CPUs it names; undefined when it is not one. */
export function parseCpuList(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (!t) return undefined;
  let count = 0;
  for (const part of t.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) return undefined;
    count += to - from + 1;
  }
  return count || undefined;
}

/** One reading of the cgroup: limits, and CPU time used so far. Fields the system does not offer are undefined. */
export interface CgroupReading {
  version: 1 | 2;
  /** CPUs allowed by a quota (may be fractional), or by the cpuset. */
  cpuLimit?: number;
  cpusetCount?: number;
  /** CPU time used by the cgroup since it was created, in nanoseconds. */
  cpuUsageNs?: number;
  memLimit?: number;
  /** Memory charged to the cgroup, page cache included. */
  memCurrent?: number;
  /** Page cache, and the part of it that is inactive (reclaimable first). */
  memCache?: number;
  memInactiveFile?: number;
}

/** The files of one cgroup version, already read (undefined when absent), for `interpretCgroup`. */
export interface CgroupFiles {
  version: 1 | 2;
  files: Record<string, string | undefined>;
}

/** The v2 files, or for v1 `controller/file`, that `interpretCgroup` reads. */
export const CGROUP_FILES = {
  2: ['cpu.max', 'cpu.stat', 'cpuset.cpus.effective', 'memory.max', 'memory.current', 'memory.stat'],
  1: ['cpu/cpu.cfs_quota_us', 'cpu/cpu.cfs_period_us', 'cpuacct/cpuacct.usage', 'cpuset/cpuset.effective_cpus', 'cpuset/cpuset.cpus', 'memory/memory.limit_in_bytes', 'memory/memory.usage_in_bytes', 'memory/memory.stat'],
} as const;

/** Turns the files of a cgroup into a reading. */
export function interpretCgroup({ version, files }: CgroupFiles): CgroupReading {
  if (version === 2) {
    const stat = parseKeyed(files['memory.stat']);
    const usageUsec = parseKeyed(files['cpu.stat']).get('usage_usec');
    return {
      version,
      cpuLimit: parseCpuMax(files['cpu.max']),
      cpusetCount: parseCpuList(files['cpuset.cpus.effective']),
      cpuUsageNs: usageUsec === undefined ? undefined : usageUsec * 1000,
      memLimit: parseMemoryLimit(files['memory.max']),
      memCurrent: parseCount(files['memory.current']),
      memCache: stat.get('file'),
      memInactiveFile: stat.get('inactive_file'),
    };
  }
  const stat = parseKeyed(files['memory/memory.stat']);
  // The hierarchical limit includes the limits of parent cgroups.
  const limits = [parseMemoryLimit(files['memory/memory.limit_in_bytes']), parseMemoryLimit(String(stat.get('hierarchical_memory_limit') ?? ''))].filter(
    (n): n is number => n !== undefined,
  );
  return {
    version,
    cpuLimit: parseCfsQuota(files['cpu/cpu.cfs_quota_us'], files['cpu/cpu.cfs_period_us']),
    cpusetCount: parseCpuList(files['cpuset/cpuset.effective_cpus'] ?? files['cpuset/cpuset.cpus']),
    cpuUsageNs: parseCount(files['cpuacct/cpuacct.usage']),
    memLimit: limits.length ? Math.min(...limits) : undefined,
    memCurrent: parseCount(files['memory/memory.usage_in_bytes']),
    memCache: stat.get('total_cache') ?? stat.get('cache'),
    memInactiveFile: stat.get('total_inactive_file') ?? stat.get('inactive_file'),
  };
}

/**
 * CPU use between two readings as a percentage of the CPUs allowed (0–100): CPU time used over wall time times CPUs.
 * Undefined when the readings cannot say (no usage counter, no time elapsed, a counter that went back).
 */
export function cpuPercent(before: { usageNs?: number; atNs: number }, after: { usageNs?: number; atNs: number }, cpus: number): number | undefined {
  if (before.usageNs === undefined || after.usageNs === undefined) return undefined;
  const wall = after.atNs - before.atNs;
  const used = after.usageNs - before.usageNs;
  if (wall <= 0 || used < 0 || cpus <= 0) return undefined;
  return Math.min(100, Math.max(0, (used / (wall * cpus)) * 100));
}
