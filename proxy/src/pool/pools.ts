import type { Logger } from 'pino';
import { unexpected } from '../../../lib/guard';
import type { PoolStatus } from '../../../wire/sandbox';
import { LABEL_POOL, type DockerRuntime } from '../runtime/types';
import type { Db } from '../store/db';
import { createWarmPool, sameClass, type PoolClass, type PoolMember, type WarmPool } from './service';

/** A warm pool the operator asked for by snapshot (`--pool NAME[@KEY]=N`). */
export interface SnapshotPoolSpec {
  /** The snapshot's name. */
  snapshot: string;
  /** The API key (id or name) whose snapshot it is; unset: the one key that has a snapshot of that name. */
  key?: string;
  size: number;
}

/** What a snapshot pool's spec resolves to now: the class of its members, or why it waits. */
export type SnapshotPoolTarget = { poolClass: PoolClass } | { waiting: string };

interface Entry {
  spec?: SnapshotPoolSpec;
  pool?: WarmPool;
  waiting?: string;
}

const label = (spec: SnapshotPoolSpec) => (spec.key ? `${spec.snapshot}@${spec.key}` : spec.snapshot);

/**
 * Every warm pool of the server: the default image's (its class fixed at start) and one per configured snapshot,
 * whose class is the snapshot's image, resources and entrypoint. A snapshot pool waits (no members, a log line) while
 * its snapshot does not exist, is not active or cannot be told from another key's; it fills once the snapshot is
 * active and is drained (its containers removed) when the snapshot is deleted, deactivated or made anew from another
 * image. `check()` looks again; it runs every `checkMs` and may be called after any change of the snapshots.
 */
export function createPools(opts: {
  runtime: DockerRuntime;
  db: Db;
  labels: Record<string, string>;
  log: Logger;
  /** The default image's pool, when its size is above 0. */
  defaultPool?: { size: number; poolClass: PoolClass; /** see createWarmPool's `hold` */ hold?: boolean };
  snapshotPools: SnapshotPoolSpec[];
  /** The class a snapshot pool's members have now, or why it waits. */
  resolve: (spec: SnapshotPoolSpec) => SnapshotPoolTarget;
  /** Called once a pool's members were removed (their snapshot's image may now be removable). */
  onDrained?: () => void;
  checkMs?: number;
}) {
  const { log } = opts;
  const make = (size: number, poolClass: PoolClass, hold: boolean) =>
    createWarmPool({ runtime: opts.runtime, db: opts.db, size, poolClass, labels: opts.labels, log, hold });
  const entries: Entry[] = [];
  if (opts.defaultPool) entries.push({ pool: make(opts.defaultPool.size, opts.defaultPool.poolClass, opts.defaultPool.hold ?? false) });
  for (const spec of opts.snapshotPools) entries.push({ spec });
  let timer: NodeJS.Timeout | undefined;
  let checking: Promise<void> | undefined;
  let closed = false;

  /** Sets a snapshot pool's class as resolved now: unchanged, a new pool, or waiting (its old pool drained). */
  async function apply(entry: Entry & { spec: SnapshotPoolSpec }, adopt?: (key: string) => Parameters<WarmPool['start']>[0]): Promise<void> {
    let target: SnapshotPoolTarget;
    try {
      target = opts.resolve(entry.spec);
    } catch (err) {
      target = { waiting: (err as Error).message };
    }
    const current = entry.pool;
    if ('poolClass' in target && current && sameClass(current.poolClass, target.poolClass)) return;
    if (current) {
      entry.pool = undefined;
      await current.retire();
      log.info({ pool: label(entry.spec) }, 'warm pool drained: its snapshot changed or is no longer active');
      opts.onDrained?.();
    }
    if ('waiting' in target) {
      if (entry.waiting !== target.waiting) log.warn({ pool: label(entry.spec), reason: target.waiting }, 'warm pool waits for its snapshot');
      entry.waiting = target.waiting;
      return;
    }
    entry.waiting = undefined;
    if (closed) return;
    entry.pool = make(entry.spec.size, target.poolClass, true);
    log.info({ pool: label(entry.spec), image: target.poolClass.image, size: entry.spec.size }, 'warm pool of a snapshot filling');
    await entry.pool.start(adopt?.(entry.pool.key) ?? []);
  }

  async function check(): Promise<void> {
    // One look at a time: a drain under way must finish before the next decides anything.
    checking ??= (async () => {
      for (const entry of entries) if (entry.spec) await apply(entry as Entry & { spec: SnapshotPoolSpec });
    })().finally(() => (checking = undefined));
    return checking;
  }

  const pools = (): WarmPool[] => entries.flatMap((e) => (e.pool ? [e.pool] : []));

  return {
    /**
     * Adopts the members earlier runs recorded for the pools configured now (each pool takes the containers of its
     * class), removes every other pool container and the records of pools no longer configured, fills, and starts
     * looking at the snapshots every `checkMs`.
     */
    async start(containers: Parameters<WarmPool['start']>[0]): Promise<void> {
      const byKey = new Map<string, typeof containers>();
      for (const c of containers) byKey.set(c.labels[LABEL_POOL], [...(byKey.get(c.labels[LABEL_POOL]) ?? []), c]);
      const taken = (key: string) => {
        const mine = byKey.get(key) ?? [];
        byKey.delete(key);
        return mine;
      };
      for (const entry of entries) {
        if (entry.spec) await apply(entry as Entry & { spec: SnapshotPoolSpec }, taken);
        else await entry.pool!.start(taken(entry.pool!.key));
      }
      for (const rest of byKey.values()) for (const c of rest) await opts.runtime.remove(c.id).catch(() => {});
      const keys = pools().map((p) => p.key);
      opts.db.prepare(`DELETE FROM pool_members WHERE pool_key NOT IN (${keys.map(() => '?').join(', ')})`).run(...keys);
      if (entries.some((e) => e.spec)) {
        timer = setInterval(() => {
          check().catch((err) => unexpected(err, 'warm pools: look at the snapshots'));
        }, opts.checkMs ?? 1000);
        timer.unref();
      }
    },

    check,

    /** A ready member of a pool of exactly this class, or undefined (a miss: the caller cold-starts). */
    claim(c: PoolClass): PoolMember | undefined {
      for (const pool of pools()) {
        const member = pool.claim(c);
        if (member) return member;
      }
      return undefined;
    },

    /** Drops a ready member whose container ended; false when it is no pool's. */
    forget: (containerId: string): boolean => pools().some((p) => p.forget(containerId)),

    /** Drops the ready members whose containers no longer run. */
    async verify(): Promise<void> {
      for (const pool of pools()) await pool.verify();
    },

    /** Every configured pool, the default image's first. */
    status(): PoolStatus['pools'] {
      return entries.map((e) => {
        const s = e.pool?.status();
        return {
          ...(e.spec ? { snapshot: label(e.spec) } : {}),
          target: e.spec?.size ?? s?.target ?? 0,
          ready: s?.ready ?? 0,
          members: e.pool?.members() ?? [],
          image: s?.image ?? '',
          cpu: s?.cpu ?? 0,
          memory: s?.memory ?? 0,
          ...(e.waiting ? { waiting: e.waiting } : {}),
        };
      });
    },

    /** Resolves when no pool is starting a container. */
    async settled(): Promise<void> {
      await Promise.all(pools().map((p) => p.settled()));
    },

    /** Stops refilling and looking. Ready members keep running, to be adopted by the next start. */
    close(): void {
      closed = true;
      if (timer) clearInterval(timer);
      for (const pool of pools()) pool.close();
    },
  };
}
export type Pools = ReturnType<typeof createPools>;
