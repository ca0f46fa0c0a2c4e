import { existsSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SystemMetrics } from '../../../wire/metrics';
import type { SandboxContext } from '../system/context';
import { CGROUP_FILES, cpuPercent, interpretCgroup, parseProcCgroup, type CgroupFiles, type CgroupReading } from './cgroup';

/** The first request measures CPU over this window; later ones over the time since the previous request. */
const FIRST_WINDOW_MS = 200;
/** Requests closer together than this reuse the previous CPU figure: a shorter window says nothing. */
const MIN_WINDOW_MS = 100;

const read = (file: string): Promise<string | undefined> => readFile(file, 'utf8').catch(() => undefined);

/**
 * Where this process's cgroup files are. Inside a container the cgroup mount shows the container's own cgroup at
 * its root, while /proc/self/cgroup may still name the host's path: the named folder is used when it exists, the
 * mount root otherwise.
 */
export function locateCgroup(root: string, procSelfCgroup: string): { version: 1 | 2; dirs: Record<string, string> } {
  const membership = parseProcCgroup(procSelfCgroup);
  const pick = (base: string, rel: string | undefined) => {
    const named = rel && rel !== '/' ? path.join(base, rel) : undefined;
    return named && existsSync(named) ? named : base;
  };
  if (existsSync(path.join(root, 'cgroup.controllers'))) return { version: 2, dirs: { '': pick(root, membership.v2) } };
  const dirs: Record<string, string> = {};
  for (const controller of ['cpu', 'cpuacct', 'cpuset', 'memory']) dirs[controller] = pick(path.join(root, controller), membership.v1.get(controller));
  return { version: 1, dirs };
}

async function readCgroup(root: string): Promise<CgroupReading | undefined> {
  const self = await read('/proc/self/cgroup');
  if (self === undefined || !existsSync(root)) return undefined;
  const { version, dirs } = locateCgroup(root, self);
  const files: CgroupFiles['files'] = {};
  await Promise.all(
    CGROUP_FILES[version].map(async (name) => {
      const [controller, file] = version === 2 ? ['', name] : name.split('/');
      files[name] = await read(path.join(dirs[controller], file));
    }),
  );
  return interpretCgroup({ version, files });
}

/** CPU time of the whole machine, when no cgroup counter is readable (nanoseconds, summed over CPUs). */
function machineCpuNs(): number {
  let ms = 0;
  for (const cpu of os.cpus()) ms += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq;
  return ms * 1e6;
}

interface Sample {
  usageNs?: number;
  atNs: number;
}

/**
 * Resource use of the sandbox, as Daytona's `GET /system/metrics` reports it: from the sandbox's own cgroup (v2 or
 * v1) and the file system of the work dir. Byte fields are bytes; `cpuUsedPct` is the share of the CPUs the sandbox
 * may use, measured between this request and the previous one (the first request measures a short window).
 */
export function createMetricsService(ctx: SandboxContext, opts: { cgroupRoot?: string } = {}) {
  const root = opts.cgroupRoot ?? '/sys/fs/cgroup';
  let last: Sample | undefined;
  let lastPct = 0;
  let priming: Promise<void> | undefined;

  async function sample(): Promise<{ reading: CgroupReading | undefined; sample: Sample }> {
    const reading = await readCgroup(root);
    const atNs = Number(process.hrtime.bigint());
    return { reading, sample: { usageNs: reading ? reading.cpuUsageNs : machineCpuNs(), atNs } };
  }

  return {
    async latest(): Promise<SystemMetrics> {
      if (!last) {
        priming ??= (async () => {
          last = (await sample()).sample;
          await new Promise((r) => setTimeout(r, FIRST_WINDOW_MS));
        })();
        await priming;
      }
      const { reading, sample: now } = await sample();
      const machineCpus = os.availableParallelism();
      const cpus = Math.min(reading?.cpuLimit ?? Infinity, reading?.cpusetCount ?? Infinity, machineCpus);
      if (last && (now.atNs - last.atNs) / 1e6 >= MIN_WINDOW_MS) {
        // Without a cgroup counter, the machine's CPU time is measured against all of its CPUs.
        lastPct = cpuPercent(last, now, reading?.cpuUsageNs !== undefined ? cpus : os.cpus().length) ?? lastPct;
        last = now;
      }

      const hostMem = os.totalmem();
      const memTotal = Math.min(reading?.memLimit ?? hostMem, hostMem);
      // Like `docker stats`: charged memory less the inactive page cache, which the kernel reclaims first.
      const memUsed =
        reading?.memCurrent !== undefined ? Math.max(0, reading.memCurrent - (reading.memInactiveFile ?? 0)) : Math.max(0, hostMem - os.freemem());
      const memCache = reading?.memCache ?? 0;

      const fs = await statfs(ctx.workdir);
      const diskTotal = fs.blocks * fs.bsize;
      const diskFree = fs.bavail * fs.bsize;
      const diskUsed = (fs.blocks - fs.bfree) * fs.bsize;

      const at = new Date();
      return {
        cpuCount: Math.max(1, Math.ceil(cpus - 1e-9)),
        cpuUsedPct: Math.round(lastPct * 100) / 100,
        memTotal,
        memUsed: Math.min(memUsed, memTotal),
        memCache,
        diskTotal,
        diskUsed,
        diskFree,
        timestamp: at.toISOString(),
        timestampUnix: Math.floor(at.getTime() / 1000),
      };
    },
  };
}
export type MetricsService = ReturnType<typeof createMetricsService>;
