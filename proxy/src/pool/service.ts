import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { LABEL_POOL, LABEL_RUNTIME, type DockerRuntime } from '../runtime/types';
import type { Db } from '../store/db';
import { now } from '../store/db';

/** A started container whose agent answers, waiting to become a sandbox. */
export interface PoolMember {
  containerId: string;
  ip: string;
  agentToken: string;
  /** The account user code runs as (what the image chose). */
  user: string;
  /**
   * Its image's entrypoint waits for the first request with the token (the pool never made one): the claimer sends it
   * once the sandbox's egress policy is in force (runtime.waitForAgent).
   */
  held: boolean;
}

/** The resource class a pool serves; a create that asks for exactly this is a pool hit. */
export interface PoolClass {
  image: string;
  cpu: number;
  memoryGiB: number;
  /**
   * Set when the engine enforces sizes (disk mode storage-opt): members are created with this size, so only creates
   * of this size are hits. Unset: members serve any size (the disk watchdog enforces each sandbox's own).
   */
  diskGiB?: number;
  /** What members run as their `entrypoint` session instead of the image's (a snapshot's own entrypoint). */
  entrypoint?: string[];
}

/** Whether two classes make identical containers. */
export const sameClass = (a: PoolClass, b: PoolClass): boolean => poolKey(a) === poolKey(b);

const AGENT_READY_TIMEOUT_MS = 60_000;
/** How long after a claim the pool starts its replacement (see refillSoon). */
const REFILL_DELAY_MS = 250;

/** The label value of a class's members (unchanged for the default pool's classes, whose members earlier runs made). */
const poolKey = (c: PoolClass): string =>
  createHash('sha256')
    .update(`${c.image}|${c.cpu}|${c.memoryGiB}${c.diskGiB === undefined ? '' : `|${c.diskGiB}`}${c.entrypoint === undefined ? '' : `|${JSON.stringify(c.entrypoint)}`}`)
    .digest('hex')
    .slice(0, 16);

/**
 * The warm pool: `size` started containers of one class with ready agents. `claim()` hands one out synchronously —
 * Node runs it to completion, so concurrent creates can never get the same member — and the pool refills in the
 * background. Members are recorded in SQLite so a restarted proxy adopts them instead of leaking them.
 */
export function createWarmPool(opts: {
  runtime: DockerRuntime;
  db: Db;
  size: number;
  poolClass: PoolClass;
  /** Labels every member carries besides the pool's (the server's instance label). */
  labels: Record<string, string>;
  log: Logger;
  concurrency?: number;
  /**
   * Leave the image's entrypoint held in members (snapshot pools): it then starts when a create claims the member,
   * under that sandbox's egress policy, as in a cold start. The default image has none.
   */
  hold?: boolean;
}) {
  const key = poolKey(opts.poolClass);
  const hold = opts.hold ?? false;
  /** Set by retire(): members still starting are removed when they are ready, not kept. */
  let retired = false;
  const ready: PoolMember[] = [];
  let inFlight = 0;
  let closed = false;
  let failures = 0;
  const insert = opts.db.prepare('INSERT INTO pool_members (container_id, pool_key, agent_token, ip, created_at, user) VALUES (?, ?, ?, ?, ?, ?)');
  const remove = opts.db.prepare('DELETE FROM pool_members WHERE container_id = ?');
  const concurrency = opts.concurrency ?? 2;
  let idle: (() => void)[] = [];

  async function addOne(): Promise<void> {
    const agentToken = randomBytes(32).toString('hex');
    const name = `cove-pool-${randomBytes(5).toString('hex')}`;
    let containerId: string | undefined;
    try {
      const created = await opts.runtime.createSandbox({
        name,
        image: opts.poolClass.image,
        labels: { ...opts.labels, [LABEL_POOL]: key },
        env: {},
        agentToken,
        cpu: opts.poolClass.cpu,
        memoryGiB: opts.poolClass.memoryGiB,
        diskGiB: opts.poolClass.diskGiB,
        entrypoint: opts.poolClass.entrypoint,
      });
      containerId = created.containerId;
      await opts.runtime.waitForAgent(created.ip, agentToken, AGENT_READY_TIMEOUT_MS, created.containerId, { hold });
      if (retired) {
        await opts.runtime.remove(created.containerId).catch(() => {});
        return;
      }
      if (closed) return;
      insert.run(created.containerId, key, agentToken, created.ip, now(), created.user);
      ready.push({ containerId: created.containerId, ip: created.ip, agentToken, user: created.user, held: hold });
      failures = 0;
    } catch (err) {
      failures++;
      opts.log.warn({ err: (err as Error).message }, 'warm pool: could not start a container');
      if (containerId) await opts.runtime.remove(containerId).catch(() => {});
      // Back off while the runtime keeps failing (e.g. the image is missing) instead of spinning.
      await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** failures)).unref());
    }
  }

  /**
   * Refills after a claim, REFILL_DELAY_MS later: starting a container (the engine's work and the agent's boot) takes
   * both cores of a small host for a moment, which the claimed sandbox's first commands would otherwise share. An
   * empty pool refills at once: the next creates would miss it anyway.
   */
  let refillTimer: NodeJS.Timeout | undefined;
  function refillSoon(): void {
    if (ready.length === 0) {
      clearTimeout(refillTimer);
      refillTimer = undefined;
      refill();
      return;
    }
    refillTimer ??= setTimeout(() => {
      refillTimer = undefined;
      refill();
      if (inFlight === 0) wakeIdle();
    }, REFILL_DELAY_MS);
  }

  function wakeIdle(): void {
    const waiting = idle;
    idle = [];
    waiting.forEach((resolve) => resolve());
  }

  function refill(): void {
    while (!closed && ready.length + inFlight < opts.size && inFlight < concurrency) {
      inFlight++;
      void addOne().finally(() => {
        inFlight--;
        refill();
        if (inFlight === 0 && !refillTimer) wakeIdle();
      });
    }
  }

  /**
   * Drops a ready member whose container ended (an engine event) and removes what is left of it; the refill
   * replaces it. False when the container is not a ready member (claimed ones belong to their sandboxes).
   */
  function forget(containerId: string): boolean {
    const i = ready.findIndex((m) => m.containerId === containerId);
    if (i < 0) return false;
    ready.splice(i, 1);
    remove.run(containerId);
    opts.log.warn({ container: containerId.slice(0, 12) }, 'warm pool: a ready container ended; replacing it');
    void opts.runtime.remove(containerId).catch(() => {});
    refill();
    return true;
  }

  return {
    poolClass: opts.poolClass,
    key,
    status: () => ({ target: opts.size, ready: ready.length, image: opts.poolClass.image, cpu: opts.poolClass.cpu, memory: opts.poolClass.memoryGiB }),
    /** The ready members' containers (for operators and tests: which container a create will get). */
    members: (): string[] => ready.map((m) => m.containerId),

    /**
     * Adopts the members an earlier run recorded whose containers still run, and removes every other pool container
     * it is given (members of another class or OCI runtime, or started by a run that stopped before recording them).
     * Then refills.
     */
    async start(containers: { id: string; state: string; ip: string; labels: Record<string, string> }[]): Promise<string[]> {
      const rows = opts.db.prepare('SELECT container_id, agent_token, ip, user FROM pool_members WHERE pool_key = ?').all(key) as {
        container_id: string;
        agent_token: string;
        ip: string;
        user: string | null;
      }[];
      const recorded = new Map(rows.map((r) => [r.container_id, r]));
      const adopted: string[] = [];
      for (const container of containers) {
        const row = recorded.get(container.id);
        // Containers from before runtimes were labelled ran under runc.
        const sameRuntime = (container.labels[LABEL_RUNTIME] || 'runc') === opts.runtime.ociRuntime;
        // Members recorded before users were (no user) are replaced: a claim must know whom its code runs as.
        if (row?.user && sameRuntime && container.state === 'running' && ready.length < opts.size) {
          ready.push({ containerId: container.id, ip: container.ip || row.ip, agentToken: row.agent_token, user: row.user, held: hold });
          adopted.push(container.id);
          recorded.delete(container.id);
        } else {
          await opts.runtime.remove(container.id).catch(() => {});
        }
      }
      for (const id of recorded.keys()) remove.run(id);
      refill();
      return adopted;
    },

    /** Takes a ready member for a sandbox of this class, or undefined (a miss: the caller cold-starts). */
    claim(c: PoolClass): PoolMember | undefined {
      const { image, cpu, memoryGiB, diskGiB, entrypoint } = opts.poolClass;
      if (c.image !== image || c.cpu !== cpu || c.memoryGiB !== memoryGiB || (diskGiB !== undefined && c.diskGiB !== diskGiB)) return undefined;
      if (JSON.stringify(c.entrypoint ?? null) !== JSON.stringify(entrypoint ?? null)) return undefined;
      const member = ready.shift();
      if (member) remove.run(member.containerId);
      refillSoon();
      return member;
    },

    forget,

    /** Drops the ready members whose containers no longer run (after the engine's events were missed). */
    async verify(): Promise<string[]> {
      const dropped: string[] = [];
      for (const { containerId } of [...ready]) {
        const info = await opts.runtime.inspect(containerId).catch(() => null);
        if (info === null || info?.state === 'running') continue;
        if (forget(containerId)) dropped.push(containerId);
      }
      return dropped;
    },

    /** Resolves when no container is being started (tests and benchmarks wait for a full pool with this). */
    async settled(): Promise<void> {
      if (inFlight === 0 && !refillTimer) return;
      await new Promise<void>((resolve) => idle.push(resolve));
    },

    /** Stops refilling. Ready members keep running, to be adopted by the next start. */
    close(): void {
      closed = true;
      if (refillTimer) {
        clearTimeout(refillTimer);
        refillTimer = undefined;
        if (inFlight === 0) wakeIdle();
      }
    },

    /** Stops refilling for good and removes every member, ready or still starting (its snapshot is gone). */
    async retire(): Promise<void> {
      this.close();
      retired = true;
      await this.drain();
    },

    /** Removes every ready member (used when the pool is resized down to nothing). */
    async drain(): Promise<void> {
      const members = ready.splice(0);
      await Promise.all(members.map((m) => opts.runtime.remove(m.containerId).catch(() => {})));
      for (const m of members) remove.run(m.containerId);
    },
  };
}
export type WarmPool = ReturnType<typeof createWarmPool>;
