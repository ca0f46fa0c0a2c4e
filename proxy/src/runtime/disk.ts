import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { guard, settle } from '../../../lib/guard';
import { engineMessage, engineStatus } from './docker-errors';
import { UsageWalk, type SubtreeMeasure } from './disk-usage';
import { storageSize } from './sandbox-config';
import { LABEL_MANAGED } from './types';
import { upperDirOf } from './layer';

/**
 * How sandboxes' `disk` sizes are enforced on this engine, decided once at start (detectDiskMode):
 * - `storage-opt`: the engine limits each container's file system itself (`HostConfig.StorageOpt.size`); a write past
 *   the size fails (ENOSPC on overlay2 over xfs, EDQUOT on btrfs) and the sandbox keeps running.
 * - `watchdog`: nothing in the engine does; Cove measures each started sandbox's writable layer and stops one that
 *   goes past its size (createDiskWatchdog).
 * - `off`: neither is possible (no writable layer Cove can read); requests that set `disk` are refused.
 */
type DiskMode =
  | {
      kind: 'storage-opt';
      /** What limits sizes, for people: "overlay2 on xfs with project quotas". */
      how: string;
      /**
       * The engine's size covers the image's files as well as the sandbox's writes (btrfs quota groups count what a
       * container's snapshot refers to): the image's size is added, so `disk` is always what a sandbox may write.
       */
      countsImage: boolean;
    }
  | { kind: 'watchdog'; /** Why the engine cannot limit sizes itself. */ why: string }
  | { kind: 'off'; why: string };

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** What a sandbox started over its size may write while it deletes files (see judge). */
const DISK_SLACK_BYTES = 100 * MiB;
/** Entries (one lstat each) the watchdog looks at per tick over all sandboxes: about 0.15 s of one core. */
const ENTRIES_PER_TICK = 50_000;
/** Each sandbox gets at least this many per tick, however many there are. */
const MIN_ENTRIES_PER_SANDBOX = 2_000;
/** Entries looked at between two yields to the event loop (a few milliseconds). */
const SLICE = 500;

/**
 * Whether the engine's storage driver can limit a container's size, from `docker info`: overlay2 over xfs (with the
 * `pquota` mount option, which only a real create shows) and btrfs (quota groups). Pure.
 */
export function storageOptSupport(info: { Driver?: string; DriverStatus?: [string, string][] }): { how: string; countsImage: boolean } | { why: string } {
  const driver = info.Driver ?? 'unknown';
  const backing = info.DriverStatus?.find(([k]) => k === 'Backing Filesystem')?.[1];
  if (driver === 'overlay2' && backing === 'xfs') return { how: 'overlay2 on xfs with project quotas', countsImage: false };
  if (driver === 'btrfs') return { how: 'btrfs with quota groups', countsImage: true };
  const on = backing ? `${driver} on ${backing}` : driver;
  return { why: `the engine's ${on} has no size limits (--storage-opt size needs overlay2 on xfs mounted with pquota, or btrfs)` };
}

/**
 * Finds out how disk sizes can be enforced on this engine, for real: a container is created (never started) with a
 * size option and removed; when the engine refuses it, one without shows whether its writable layer is a directory
 * this process can read (not so for a remote engine, or drivers without one). Run once at start; the answer holds
 * for the life of the server. Probe containers carry `labels` (the server's instance) so a crash mid-probe leaves
 * nothing the reconciler would not remove.
 */
export async function detectDiskMode(opts: { docker: Dockerode; image: string; labels: Record<string, string> }): Promise<DiskMode> {
  const { docker } = opts;
  const info = (await docker.info()) as { Driver?: string; DriverStatus?: [string, string][] };
  const support = storageOptSupport(info);
  let why: string;
  if ('how' in support) {
    // As sandboxes will ask: 1 GiB, plus the image where the engine counts it (btrfs refuses a size under it).
    const imageBytes = support.countsImage ? (await docker.getImage(opts.image).inspect()).Size : 0;
    const size = storageSize(1, imageBytes);
    const refused = await withProbe(opts, { StorageOpt: { size } }, () => Promise.resolve(undefined)).catch((err: unknown) => engineMessage(err));
    if (refused === undefined) return { kind: 'storage-opt', ...support };
    why = `the engine refuses size limits: ${refused}`;
  } else {
    why = support.why;
  }
  // The layer exists while its container does: look at it before the probe is removed.
  const layer = await withProbe(opts, {}, async (container) => {
    const dir = upperDirOf(await container.inspect());
    return { dir, here: dir !== undefined && isDirectory(dir) };
  }).catch((err: unknown) => {
    throw new Error(`Could not create a probe container to check how disk sizes can be enforced: ${engineMessage(err)}`);
  });
  if (layer.here) return { kind: 'watchdog', why };
  if (!layer.dir) return { kind: 'off', why: `${why}; and the storage driver ${info.Driver ?? ''} shows no writable layer to measure` };
  return { kind: 'off', why: `${why}; and containers' writable layers (${layer.dir}) are not on this host (a remote engine?)` };
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}


/** Creates a never-started container with `hostConfig`, runs `fn` on it, and removes it. */
async function withProbe<T>(
  opts: { docker: Dockerode; image: string; labels: Record<string, string> },
  hostConfig: Dockerode.HostConfig,
  fn: (c: Dockerode.Container) => Promise<T>,
): Promise<T> {
  const container = await opts.docker.createContainer({
    name: `cove-disk-probe-${randomBytes(4).toString('hex')}`,
    Image: opts.image,
    Entrypoint: ['/nonexistent'],
    Cmd: [],
    NetworkDisabled: true,
    Labels: { ...opts.labels, [LABEL_MANAGED]: '1' },
    HostConfig: hostConfig,
  });
  try {
    return await fn(container);
  } finally {
    await container.remove({ force: true }).catch((err: unknown) => {
      if (engineStatus(err) !== 404) throw err;
    });
  }
}

/** The `disk limits: …` line `cove serve` prints at start. */
export function describeDiskMode(mode: DiskMode, intervalS: number): string {
  if (mode.kind === 'storage-opt') {
    return `storage-opt (${mode.how}${mode.countsImage ? "; each sandbox's size is added to its image's" : ''}): writes past a sandbox's size fail, the sandbox keeps running`;
  }
  if (mode.kind === 'watchdog') return `watchdog (checks every ${intervalS} s, stops a sandbox past its size; ${mode.why})`;
  return `off (${mode.why}); creates that set disk are refused`;
}

/** A size for people: "1 GiB", "1.5 GiB", "300 MiB". */
export function formatBytes(bytes: number): string {
  if (bytes >= GiB) return `${Number((bytes / GiB).toFixed(2))} GiB`;
  return `${Math.round(bytes / MiB)} MiB`;
}

/** Why a sandbox was stopped: the errorReason its owner reads. */
export function diskLimitReason(limitGiB: number, bytes: number, complete: boolean, slack = DISK_SLACK_BYTES): string {
  // Just past the size, GiB would round to the size itself ("1 GiB exceeded (1 GiB written)"): say MiB then.
  const amount = bytes < limitGiB * GiB * 1.05 ? `${Math.floor(bytes / MiB)} MiB` : formatBytes(bytes);
  const written = `${complete ? '' : 'more than '}${amount} written`;
  return (
    `Disk limit of ${limitGiB} GiB exceeded (${written}), so the sandbox was stopped; its files are kept. ` +
    `Start it again and delete files to get back under ${limitGiB} GiB: until then it may write at most ${formatBytes(slack)} more before it is stopped again.`
  );
}

/** What the watchdog remembers of one run of a sandbox between measurements. */
interface Verdict {
  /** Bytes this run may hold: the size, or, for a run started over it, what it held then plus the slack. */
  allowance?: number;
  /** The last measurement was over the allowance (a second one in a row stops the sandbox). */
  overOnce: boolean;
}

/**
 * The watchdog's decision after one measurement of a sandbox's writable layer. Pure.
 * - Under its size: fine, and the allowance is the size again.
 * - A run that was started (by its owner) while over its size — to delete files — may hold what it held at its first
 *   measurement plus `slack`, so starting it again never stops it at once, and it cannot grow either.
 * - Over the allowance: measured again at once (`confirm`: a file renamed during a walk may have been seen twice),
 *   and stopped when the second measurement agrees.
 */
export function judge(
  prev: Verdict,
  m: { bytes: number; limit: number; /** first measurement of a run started while this server runs */ firstOfFreshRun: boolean; slack: number },
): { next: Verdict; action: 'ok' | 'confirm' | 'stop' } {
  const allowance = prev.allowance ?? (m.firstOfFreshRun && m.bytes > m.limit ? m.bytes + m.slack : m.limit);
  if (m.bytes <= m.limit) return { next: { allowance: m.limit, overOnce: false }, action: 'ok' };
  if (m.bytes <= allowance) return { next: { allowance, overOnce: false }, action: 'ok' };
  return { next: { allowance, overOnce: true }, action: prev.overOnce ? 'stop' : 'confirm' };
}

/** A started sandbox, as the watchdog needs it. */
export interface WatchedSandbox {
  id: string;
  containerId: string;
  diskGiB: number;
  /** Changes with every state change of the record: the watchdog then looks at the container again. */
  updatedAt: string;
}

interface Watched {
  id: string;
  containerId: string;
  limitGiB: number;
  updatedAt?: string;
  /** The container's State.StartedAt: a new value is a new run. */
  startedAt?: string;
  /** The writable layer's directory; null when the container has none (or is gone). */
  layer?: string | null;
  /** The run started after this watchdog did (so its owner started it, possibly to delete files). */
  fresh: boolean;
  measuredOnce: boolean;
  verdict: Verdict;
  walk?: UsageWalk;
  stopping: boolean;
}

/**
 * The disk watchdog: every `intervalMs`, measures the writable layer (overlay2's UpperDir) of each started sandbox
 * and has `stop` called for one that holds more than its `disk` size (see judge for the rules).
 *
 * Bounded work: a tick looks at no more than ENTRIES_PER_TICK directory entries over all sandboxes (each gets an equal
 * share, at least MIN_ENTRIES_PER_SANDBOX), in slices of SLICE entries between which the event loop runs; a sandbox
 * whose walk does not finish in its share continues at the next tick. A walk already past the allowance ends early.
 * Ticks never overlap (the next is scheduled when one ends). Bounded memory: see UsageWalk; one walk per sandbox.
 */
export function createDiskWatchdog(opts: {
  docker: Dockerode;
  intervalMs: number;
  /** The sandboxes that are started now, each time the watchdog asks. */
  sandboxes: () => WatchedSandbox[];
  /** Stops a sandbox for `reason` (nothing when it is no longer started on that container). */
  stop: (id: string, containerId: string, reason: string) => Promise<unknown>;
  log: Logger;
  entriesPerTick?: number;
  /** What a run started over its size may write (default DISK_SLACK_BYTES). */
  slackBytes?: number;
  measureSubtree?: SubtreeMeasure;
}) {
  const slack = opts.slackBytes ?? DISK_SLACK_BYTES;
  const watched = new Map<string, Watched>();
  const since = Date.now();
  const perTick = opts.entriesPerTick ?? ENTRIES_PER_TICK;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  async function look(w: Watched): Promise<void> {
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await opts.docker.getContainer(w.containerId).inspect();
    } catch (err) {
      if (engineStatus(err) !== 404) throw err;
      w.layer = null; // gone: whoever notices deaths deals with it
      return;
    }
    if (info.State.StartedAt !== w.startedAt) {
      w.walk?.close();
      w.walk = undefined;
      w.startedAt = info.State.StartedAt;
      w.fresh = Date.parse(info.State.StartedAt) >= since;
      w.measuredOnce = false;
      w.verdict = { overOnce: false };
    }
    w.layer = upperDirOf(info) ?? null;
  }

  /** Measures one sandbox with up to `share` entries; at most one complete measurement (plus its confirmation). */
  async function measure(w: Watched, share: number): Promise<number> {
    let used = 0;
    while (used < share && !closed) {
      const walk = (w.walk ??= new UsageWalk(w.layer!, opts.measureSubtree));
      const limit = w.limitGiB * GiB;
      // Early end only against a known allowance (the first walk of a fresh run sets it, so it must finish).
      const threshold = w.verdict.allowance ?? (w.fresh && !w.measuredOnce ? Infinity : limit);
      used += await walk.step(Math.min(SLICE, share - used));
      const over = walk.bytes > threshold;
      if (!walk.done && !over) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      const complete = walk.done;
      const gone = walk.failed;
      w.walk = undefined;
      walk.close();
      if (gone && !over) return used; // the layer is gone (the container was removed): nothing to judge
      if (walk.unmeasured.length) opts.log.warn({ sandboxId: w.id, unmeasured: walk.unmeasured.slice(0, 5) }, 'disk watchdog: parts of a sandbox could not be measured');
      const { next, action } = judge(w.verdict, { bytes: walk.bytes, limit, firstOfFreshRun: w.fresh && !w.measuredOnce, slack });
      if (w.fresh && !w.measuredOnce && next.allowance! > limit) {
        opts.log.info({ sandboxId: w.id, bytes: walk.bytes, limitGiB: w.limitGiB }, 'disk watchdog: a sandbox over its size was started; it may delete files but not grow');
      }
      w.measuredOnce = true;
      w.verdict = next;
      if (action === 'confirm') continue;
      if (action === 'stop') {
        w.stopping = true;
        opts.log.warn({ sandboxId: w.id, bytes: walk.bytes, limitGiB: w.limitGiB }, 'disk watchdog: disk limit exceeded, stopping the sandbox');
        settle(
          'disk watchdog: stopping a sandbox',
          opts.stop(w.id, w.containerId, diskLimitReason(w.limitGiB, walk.bytes, complete, slack)).catch((err: unknown) => {
            w.stopping = false; // tried again at the next tick
            throw err;
          }),
        );
      }
      return used;
    }
    return used;
  }

  async function tick(): Promise<void> {
    const started = performance.now();
    const current = opts.sandboxes();
    const seen = new Set<string>();
    for (const s of current) {
      seen.add(s.id);
      let w = watched.get(s.id);
      if (!w || w.containerId !== s.containerId) {
        w?.walk?.close();
        w = { id: s.id, containerId: s.containerId, limitGiB: s.diskGiB, fresh: false, measuredOnce: false, verdict: { overOnce: false }, stopping: false };
        watched.set(s.id, w);
      }
      w.limitGiB = s.diskGiB;
      if (w.updatedAt !== s.updatedAt || w.layer === undefined) {
        try {
          await look(w);
          w.updatedAt = s.updatedAt;
        } catch (err) {
          // The engine did not answer: this sandbox is measured once it does.
          opts.log.warn({ sandboxId: s.id, err: engineMessage(err) }, 'disk watchdog: could not inspect a sandbox container');
        }
      }
    }
    for (const [id, w] of watched) {
      if (seen.has(id)) continue;
      w.walk?.close();
      watched.delete(id);
    }
    const active = [...watched.values()].filter((w) => w.layer && !w.stopping);
    const share = Math.max(MIN_ENTRIES_PER_SANDBOX, Math.floor(perTick / Math.max(1, active.length)));
    let entries = 0;
    for (const w of active) {
      if (closed) break;
      entries += await measure(w, share);
    }
    opts.log.debug({ sandboxes: active.length, entries, ms: Math.round((performance.now() - started) * 10) / 10 }, 'disk watchdog tick');
  }

  const run = guard(
    'disk watchdog tick',
    () =>
      settle(
        'disk watchdog tick',
        tick().finally(() => {
          if (!closed) timer = setTimeout(run, opts.intervalMs).unref();
        }),
      ),
    () => {},
  );

  return {
    /** Starts ticking (the first tick after one interval). */
    start(): void {
      if (!closed && !timer) timer = setTimeout(run, opts.intervalMs).unref();
    },
    close(): void {
      closed = true;
      clearTimeout(timer);
      for (const w of watched.values()) w.walk?.close();
      watched.clear();
    },
  };
}
