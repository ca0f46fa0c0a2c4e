import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { CoveError } from '../../../lib/errors';
import { IMAGE_REF, type UpdateNetworkSettingsRequest, type CreateSandboxRequest, type ListSandboxesQuery, type ListSandboxesPageQuery, type ListSandboxesPageResponse, type ListSandboxesResponse, type SandboxDto, type SandboxState } from '../../../wire/sandbox';
import type { Principal } from '../auth/api-keys';
import type { PoolClass, WarmPool } from '../pool/service';
import { EgressPolicyError, OPEN, parseAllowList, policyOf, type EgressPolicy } from '../runtime/egress-policy';
import type { QuotaService } from '../quotas/service';
import type { DockerRuntime } from '../runtime/types';
import { now } from '../store/db';
import type { SandboxRecord, SandboxRepo } from './repo';

import { LABEL_POOL, LABEL_SANDBOX } from '../runtime/types';

/**
 * Labels the containers of one Cove server (one data dir), so that servers sharing a Docker engine — a test run
 * beside a running Cove — never adopt or remove each other's containers.
 */
export const LABEL_INSTANCE = 'dev.cove.instance';
const AGENT_READY_TIMEOUT_MS = 60_000;
/** Resources of a sandbox whose create names none (the warm pool's members are made of them). */
export const DEFAULTS = { cpu: 1, memory: 1, disk: 10 };

interface SandboxServiceOptions {
  repo: SandboxRepo;
  runtime: DockerRuntime;
  pool?: WarmPool;
  /** Each API key's limits, checked and reserved atomically with the write that makes a sandbox hold resources. */
  quotas: QuotaService;
  /** Default image, and the user that image runs code as (for the DTO). */
  image: string;
  defaultUser: string;
  /** Base URL the SDK appends `/{id}/…` to for toolbox calls (known once the server listens). */
  toolboxUrl: () => string;
  agentVersion: string;
  /** This server's instance id (see LABEL_INSTANCE). */
  instance: string;
  /** Whether the operator lets sandboxes reach private ranges (allow-lists may then name them). */
  allowPrivateEgress?: boolean;
  /** Called once a sandbox is deleted (its preview tokens go with it). */
  onDeleted?: (id: string) => void;
  /** Set when nothing on this server can enforce `disk` (disk mode off): why; creates that set it are refused. */
  refuseDisk?: string;
  log: Logger;
}

/** Where the proxy reaches a started sandbox's agent. */
export interface AgentTarget {
  sandboxId: string;
  ip: string;
  agentToken: string;
}

/**
 * Sandboxes: create (from the warm pool, or a cold start), get, list, start, stop, delete, and reconciliation with
 * the containers that exist. Knows nothing of HTTP. Operations on one sandbox run one at a time.
 */
export function createSandboxService(opts: SandboxServiceOptions) {
  const { repo, runtime, log } = opts;
  const locks = new Map<string, Promise<unknown>>();
  const touched = new Map<string, number>();

  /** Runs `fn` after every earlier operation on the same sandbox has finished. */
  function serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = locks.get(id) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(fn);
    locks.set(id, next);
    next.finally(() => locks.get(id) === next && locks.delete(id)).catch(() => {});
    return next;
  }

  /**
   * Records activity at most once a second per sandbox: toolbox and preview requests call it on every request, and
   * a database write on each would sit on those measured paths.
   */
  function recordActivity(id: string): void {
    const t = Date.now();
    if ((touched.get(id) ?? 0) > t - 1000) return;
    touched.set(id, t);
    repo.touch(id);
  }

  function toDto(r: SandboxRecord): SandboxDto {
    const dto: SandboxDto = {
      id: r.id,
      organizationId: r.ownerKeyId,
      name: r.name,
      snapshot: r.image,
      user: r.user,
      env: r.env,
      labels: r.labels,
      public: r.public,
      networkBlockAll: r.networkBlockAll,
      ...(r.networkAllowList ? { networkAllowList: r.networkAllowList } : {}),
      target: 'local',
      cpu: r.cpu,
      gpu: 0,
      memory: r.memory,
      disk: r.disk,
      state: r.state,
      recoverable: false,
      autoStopInterval: r.autoStopInterval,
      autoArchiveInterval: r.autoArchiveInterval,
      autoDeleteInterval: r.autoDeleteInterval,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      lastActivityAt: r.lastActivityAt,
      toolboxProxyUrl: opts.toolboxUrl(),
      daemonVersion: opts.agentVersion,
    };
    if (r.errorReason) dto.errorReason = r.errorReason;
    return dto;
  }

  /** The egress policy a record asks for. */
  const egressOf = (r: Pick<SandboxRecord, 'networkBlockAll' | 'networkAllowList'>): EgressPolicy =>
    policyOf(r.networkBlockAll, r.networkAllowList ? r.networkAllowList.split(',') : []);

  /**
   * The record fields for `networkBlockAll`/`networkAllowList` as given (undefined: not given). Refuses what cannot be
   * enforced: a domain allow-list, both at once, a malformed or forbidden network.
   */
  function networkFields(req: { networkBlockAll?: boolean; networkAllowList?: string; domainAllowList?: string }): Pick<SandboxRecord, 'networkBlockAll' | 'networkAllowList'> | undefined {
    if (req.domainAllowList?.trim()) {
      throw new CoveError('INVALID_REQUEST', 'domainAllowList is not supported by this Cove server: allow IPv4 networks with networkAllowList instead');
    }
    const list = req.networkAllowList?.trim();
    if (req.networkBlockAll && list) {
      throw new CoveError('INVALID_REQUEST', 'Give networkBlockAll or networkAllowList, not both: networkBlockAll refuses every destination');
    }
    if (req.networkBlockAll) return { networkBlockAll: true, networkAllowList: null };
    if (list !== undefined) {
      let cidrs: string[];
      try {
        cidrs = parseAllowList(list, { allowPrivate: opts.allowPrivateEgress ?? false });
      } catch (err) {
        if (err instanceof EgressPolicyError) throw new CoveError('INVALID_REQUEST', err.message);
        throw err;
      }
      return { networkBlockAll: false, networkAllowList: cidrs.length ? cidrs.join(',') : null };
    }
    if (req.networkBlockAll === false) return { networkBlockAll: false, networkAllowList: null };
    return undefined;
  }

  const mayUse = (principal: Principal, record: SandboxRecord): boolean => principal.admin || record.ownerKeyId === principal.keyId;

  /**
   * The sandbox a principal may see, by id or name, or a 404 that does not tell others' sandboxes from missing ones.
   * Ids are global; names are unique per owner, so a name means the caller's own sandbox of that name. An admin key
   * falls back to the one sandbox of any owner with that name, and is asked for the id when several have it.
   */
  function visible(principal: Principal, idOrName: string): SandboxRecord {
    const byId = repo.get(idOrName);
    if (byId && mayUse(principal, byId)) return byId;
    const own = repo.findByName(principal.keyId, idOrName);
    if (own) return own;
    if (principal.admin) {
      const named = repo.withName(idOrName, 2);
      if (named.length > 1) {
        throw new CoveError('CONFLICT', `Several sandboxes of different API keys are named ${idOrName}; ask for the one you mean by its id`);
      }
      if (named.length === 1) return named[0];
    }
    throw new CoveError('SANDBOX_NOT_FOUND', `Sandbox ${idOrName} not found`);
  }

  function imageOf(req: CreateSandboxRequest): string {
    if (req.buildInfo?.contextHashes?.length) {
      throw new CoveError('INVALID_REQUEST', 'Building images from a context is not supported; build the image with docker and pass its name');
    }
    const dockerfile = req.buildInfo?.dockerfileContent?.trim();
    if (dockerfile) {
      const from = /^FROM\s+(\S+)\s*$/i.exec(dockerfile);
      if (!from) throw new CoveError('INVALID_REQUEST', 'Only a one-line "FROM image" Dockerfile is supported; build the image with docker and pass its name');
      if (!IMAGE_REF.test(from[1])) throw new CoveError('INVALID_REQUEST', `Invalid image reference in FROM: ${from[1].slice(0, 200)}`);
      return from[1];
    }
    return req.image ?? req.snapshot ?? opts.image;
  }

  function markError(id: string, reason: string): void {
    repo.update(id, { state: 'error', errorReason: reason });
  }

  async function coldStart(record: SandboxRecord): Promise<{ containerId: string; ip: string }> {
    const created = await runtime.createSandbox({
      name: `cove-${record.id}`,
      image: record.image,
      labels: { [LABEL_SANDBOX]: record.id, [LABEL_INSTANCE]: opts.instance },
      env: record.env,
      agentToken: record.agentToken,
      user: record.user === opts.defaultUser && record.image === opts.image ? undefined : record.user,
      cpu: record.cpu,
      memoryGiB: record.memory,
      diskGiB: record.disk,
      egress: egressOf(record),
    });
    repo.update(record.id, { containerId: created.containerId, ip: created.ip });
    await runtime.waitForAgent(created.ip, record.agentToken, AGENT_READY_TIMEOUT_MS);
    return created;
  }

  return {
    toDto,

    async create(principal: Principal, req: CreateSandboxRequest): Promise<SandboxDto> {
      if (req.gpu) throw new CoveError('INVALID_REQUEST', 'GPUs are not available on this Cove server');
      if (req.volumes?.length) throw new CoveError('INVALID_REQUEST', 'Volumes are not supported yet');
      if (req.outboundProxyUrl?.trim()) throw new CoveError('INVALID_REQUEST', 'outboundProxyUrl is not supported by this Cove server');
      if (req.disk !== undefined && opts.refuseDisk) throw new CoveError('INVALID_REQUEST', `disk cannot be enforced by this Cove server (${opts.refuseDisk}); leave it out`);
      const network = networkFields(req) ?? { networkBlockAll: false, networkAllowList: null };
      const image = imageOf(req);
      if (image !== opts.image && !(await runtime.imageExists(image))) {
        throw new CoveError('IMAGE_NOT_FOUND', `Image ${image} does not exist on this host; build it (docker build) or run "cove images build" for the default`);
      }
      const id = randomUUID();
      const name = req.name ?? id;
      // Names are unique per API key: only the caller's own sandboxes can make a name taken.
      if (req.name && repo.nameTaken(principal.keyId, req.name)) throw new CoveError('SANDBOX_EXISTS', `A sandbox named ${req.name} already exists`);
      const time = now();
      const record: SandboxRecord = {
        id,
        name,
        ownerKeyId: principal.keyId,
        state: 'creating',
        image,
        user: req.user ?? (image === opts.image ? opts.defaultUser : 'root'),
        env: req.env ?? {},
        labels: req.labels ?? {},
        public: req.public ?? false,
        ...network,
        cpu: req.cpu ?? DEFAULTS.cpu,
        memory: req.memory ?? DEFAULTS.memory,
        disk: req.disk ?? DEFAULTS.disk,
        containerId: null,
        agentToken: randomBytes(32).toString('hex'),
        ip: null,
        errorReason: null,
        autoStopInterval: req.autoStopInterval ?? 0,
        autoArchiveInterval: req.autoArchiveInterval ?? 0,
        autoDeleteInterval: req.autoDeleteInterval ?? -1,
        createdAt: time,
        updatedAt: time,
        lastActivityAt: time,
      };
      try {
        opts.quotas.admit(principal.keyId, record, () => repo.insert(record));
      } catch (err) {
        if (/UNIQUE/.test((err as Error).message)) throw new CoveError('SANDBOX_EXISTS', `A sandbox named ${name} already exists`);
        throw err;
      }

      // A pool member fits when the sandbox asks for nothing the member was not started with.
      const poolClass: PoolClass = { image, cpu: record.cpu, memoryGiB: record.memory, diskGiB: record.disk };
      const member = Object.keys(record.env).length === 0 && record.user === opts.defaultUser ? opts.pool?.claim(poolClass) : undefined;
      if (member) {
        const policy = egressOf(record);
        if (policy !== OPEN) {
          // Members run open; nothing of the user's has run in this one yet.
          try {
            await runtime.setEgress(member.containerId, member.ip, policy);
          } catch (err) {
            await runtime.remove(member.containerId).catch(() => {});
            markError(id, (err as Error).message);
            throw new CoveError('SANDBOX_ERROR', `The sandbox could not be started: ${(err as Error).message}`, (err as Error).stack);
          }
        }
        const started = repo.update(id, { state: 'started', containerId: member.containerId, ip: member.ip, agentToken: member.agentToken })!;
        log.debug({ sandboxId: id, pool: true }, 'sandbox created from the warm pool');
        return toDto(started);
      }
      return serialized(id, async () => {
        try {
          await coldStart(record);
          log.debug({ sandboxId: id, pool: false }, 'sandbox created (cold start)');
          return toDto(repo.update(id, { state: 'started' })!);
        } catch (err) {
          markError(id, (err as Error).message);
          const failed = repo.get(id);
          if (failed?.containerId) await runtime.remove(failed.containerId).catch(() => {});
          repo.update(id, { containerId: null, ip: null });
          throw new CoveError('SANDBOX_ERROR', `The sandbox could not be started: ${(err as Error).message}`, (err as Error).stack);
        }
      });
    },

    get(principal: Principal, idOrName: string): SandboxDto {
      return toDto(visible(principal, idOrName));
    },

    list(principal: Principal, query: ListSandboxesQuery): ListSandboxesResponse {
      const limit = query.limit ?? 100;
      let wanted: Record<string, string> = {};
      if (query.labels) {
        try {
          wanted = JSON.parse(query.labels) as Record<string, string>;
        } catch {
          throw new CoveError('INVALID_REQUEST', 'labels must be a JSON object of label names to values');
        }
      }
      const states = query.states === undefined ? undefined : ([] as string[]).concat(query.states).flatMap((s) => s.split(','));
      const items: SandboxDto[] = [];
      let after = query.cursor;
      // Filter in pages until the page is full or the table is exhausted.
      for (;;) {
        const batch = repo.list({ ownerKeyId: principal.admin ? undefined : principal.keyId, after, limit });
        for (const r of batch) {
          after = r.id;
          if (query.id && r.id !== query.id) continue;
          if (query.name && r.name !== query.name) continue;
          if (states && !states.includes(r.state)) continue;
          if (!Object.entries(wanted).every(([k, v]) => r.labels[k] === v)) continue;
          items.push(toDto(r));
          if (items.length === limit) return { items, nextCursor: r.id };
        }
        if (batch.length < limit) return { items, nextCursor: null };
      }
    },

    /** The same filters as list(), by numbered pages with a total (older SDKs). */
    listPage(principal: Principal, query: ListSandboxesPageQuery): ListSandboxesPageResponse {
      const { page = 1, limit = 100, ...filters } = query;
      const matching: SandboxDto[] = [];
      let cursor: string | undefined;
      do {
        const batch = this.list(principal, { ...filters, cursor, limit: 1000 });
        matching.push(...batch.items);
        cursor = batch.nextCursor ?? undefined;
      } while (cursor);
      return { items: matching.slice((page - 1) * limit, page * limit), total: matching.length, page, totalPages: Math.ceil(matching.length / limit) };
    },

    start(principal: Principal, idOrName: string): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id)!;
        if (record.state === 'started') return toDto(record);
        opts.quotas.admit(record.ownerKeyId, record, () => repo.update(id, { state: 'starting', errorReason: null }));
        if (!record.containerId) {
          try {
            await coldStart(record);
          } catch (err) {
            markError(id, (err as Error).message);
            throw new CoveError('SANDBOX_ERROR', `The sandbox could not be started: ${(err as Error).message}`);
          }
          return toDto(repo.update(id, { state: 'started' })!);
        }
        try {
          const { ip } = await runtime.start(record.containerId, egressOf(record));
          repo.update(id, { ip });
          await runtime.waitForAgent(ip, record.agentToken, AGENT_READY_TIMEOUT_MS);
        } catch (err) {
          markError(id, (err as Error).message);
          throw new CoveError('SANDBOX_ERROR', `The sandbox could not be started: ${(err as Error).message}`);
        }
        repo.touch(id);
        return toDto(repo.update(id, { state: 'started' })!);
      });
    },

    stop(principal: Principal, idOrName: string, force = false): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id)!;
        if (record.state === 'stopped') return toDto(record);
        repo.update(id, { state: 'stopping' });
        try {
          if (record.containerId) await runtime.stop(record.containerId, force ? 0 : 10);
        } catch (err) {
          markError(id, (err as Error).message);
          throw new CoveError('SANDBOX_ERROR', `The sandbox could not be stopped: ${(err as Error).message}`);
        }
        return toDto(repo.update(id, { state: 'stopped', ip: null })!);
      });
    },

    delete(principal: Principal, idOrName: string): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id);
        if (!record) throw new CoveError('SANDBOX_NOT_FOUND', `Sandbox ${idOrName} not found`);
        repo.update(id, { state: 'destroying' });
        if (record.containerId) {
          try {
            await runtime.remove(record.containerId);
          } catch (err) {
            markError(id, (err as Error).message);
            throw new CoveError('SANDBOX_ERROR', `The sandbox could not be deleted: ${(err as Error).message}`);
          }
        }
        repo.remove(id);
        touched.delete(id);
        opts.onDeleted?.(id);
        return { ...toDto(record), state: 'destroying' as SandboxState };
      });
    },

    /**
     * Changes what a sandbox may reach. A started sandbox gets the new rules before this returns (connections the
     * new policy refuses stop passing at once); a stopped one gets them at its next start.
     */
    updateNetworkSettings(principal: Principal, idOrName: string, req: UpdateNetworkSettingsRequest): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      const fields = networkFields(req);
      if (!fields) throw new CoveError('INVALID_REQUEST', 'Give networkBlockAll or networkAllowList');
      return serialized(id, async () => {
        const record = repo.get(id)!;
        if (record.state === 'started' && record.ip && record.containerId) {
          try {
            await runtime.setEgress(record.containerId, record.ip, egressOf(fields));
          } catch (err) {
            throw new CoveError('SANDBOX_ERROR', `The network settings could not be applied: ${(err as Error).message}`);
          }
        }
        return toDto(repo.update(id, fields)!);
      });
    },

    /**
     * Stops a started sandbox for a reason of the server's own (the disk watchdog: past its size). Its container is
     * killed at once — what it keeps writing is what the limit is about — and the sandbox becomes `stopped` with
     * `errorReason`, its files kept; starting it again clears the reason. Nothing happens when it is no longer started
     * on `containerId`.
     */
    stopBecause(id: string, containerId: string, reason: string): Promise<void> {
      return serialized(id, async () => {
        const record = repo.get(id);
        if (record?.state !== 'started' || record.containerId !== containerId) return;
        repo.update(id, { state: 'stopping' });
        try {
          await runtime.stop(containerId, 0);
        } catch (err) {
          markError(id, `${reason} Stopping it failed: ${(err as Error).message}`);
          throw err;
        }
        repo.update(id, { state: 'stopped', ip: null, errorReason: reason });
      });
    },

    /** A sandbox by id, without an ownership check: the preview layer decides who may open it. */
    find: (id: string): SandboxRecord | undefined => repo.get(id),

    /** Whether a principal may use a sandbox. */
    mayUse,

    /** Records activity (preview traffic). */
    touch: recordActivity,

    /** The agent of a started sandbox the principal may use; 409 when it is not started. Counts as activity. */
    agentFor(principal: Principal, idOrName: string): AgentTarget {
      const record = visible(principal, idOrName);
      if (record.state !== 'started' || !record.ip) {
        throw new CoveError('SANDBOX_NOT_STARTED', `Sandbox ${record.id} is ${record.state}${record.errorReason ? ` (${record.errorReason})` : ''}; start it first`);
      }
      recordActivity(record.id);
      return { sandboxId: record.id, ip: record.ip, agentToken: record.agentToken };
    },

    /**
     * Brings state and containers back in line after a restart: a container no sandbox or pool owns is removed,
     * a sandbox whose container vanished becomes an error, and states follow what the containers really do.
     * Returns the containers that belong to the pool, for it to adopt.
     */
    async reconcile(): Promise<{ poolContainers: Awaited<ReturnType<DockerRuntime['listManaged']>>; removed: string[] }> {
      const containers = (await runtime.listManaged()).filter((c) => c.labels[LABEL_INSTANCE] === opts.instance);
      const byId = new Map(containers.map((c) => [c.id, c]));
      const owned = new Set<string>();
      for (const record of repo.all()) {
        if (!record.containerId) {
          if (record.state === 'creating' || record.state === 'starting') markError(record.id, 'Cove stopped while the sandbox was starting');
          continue;
        }
        owned.add(record.containerId);
        const container = byId.get(record.containerId);
        if (!container) {
          markError(record.id, 'Its container no longer exists');
          continue;
        }
        if (container.state === 'running') {
          repo.update(record.id, { state: 'started', ip: container.ip });
          // The kernel kept the rules while the server was down; say them again, in case the host lost them.
          await runtime.setEgress(container.id, container.ip, egressOf(record)).catch((err: Error) =>
            log.error({ sandboxId: record.id, err: err.message }, 'could not apply the egress policy of a running sandbox'),
          );
        } else if (record.state !== 'error') {
          repo.update(record.id, { state: 'stopped', ip: null });
        }
      }
      const poolContainers = containers.filter((c) => !owned.has(c.id) && c.labels[LABEL_POOL]);
      const removed: string[] = [];
      for (const c of containers) {
        if (owned.has(c.id) || c.labels[LABEL_POOL]) continue;
        await runtime.remove(c.id).catch(() => {});
        removed.push(c.id);
      }
      return { poolContainers, removed };
    },
  };
}
export type SandboxService = ReturnType<typeof createSandboxService>;
