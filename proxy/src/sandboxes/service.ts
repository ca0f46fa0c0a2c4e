import { randomBytes, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { CoveError } from '../../../lib/errors';
import { settle } from '../../../lib/guard';
import { IMAGE_REF, type UpdateSandboxSecretsRequest, type ResizeSandboxRequest, type UpdateNetworkSettingsRequest, type CreateSandboxRequest, type ListSandboxesQuery, type ListSandboxesPageQuery, type ListSandboxesPageResponse, type ListSandboxesResponse, type SandboxDto, type SandboxState } from '../../../wire/sandbox';
import type { Principal } from '../auth/api-keys';
import type { PoolClass } from '../pool/service';
import type { Pools } from '../pool/pools';
import type { CoveMetrics } from '../metrics/registry';
import type { ResolvedSnapshot } from '../snapshots/catalog';
import { createLiveLogs } from '../snapshots/build-logs';
import { EgressPolicyError, OPEN, parseAllowList, policyOf, type EgressPolicy } from '../runtime/egress-policy';
import { HostPatternError, parseHostList } from '../egress/domains';
import type { SecretMount } from '../secrets/service';
import type { EgressLog } from '../egress/log';
import type { EgressSandbox, Substitution } from '../egress/types';
import type { EgressLogResponse } from '../../../wire/egress';
import { parseProxyUrl as parseProxy, ProxyUrlError, proxyEnv } from '../egress/outbound-proxy';
import { upstreamOf } from '../egress/upstream';
import type { ContainerEnd } from '../runtime/events';
import type { QuotaService } from '../quotas/service';
import { RuntimeError, type DockerRuntime } from '../runtime/types';
import type { ArchiveStore } from '../archive/store';
import { now } from '../store/db';
import { exitOutcome } from './exit-reason';
import { searchSandboxes } from './list-query';
import type { SandboxRecord, SandboxRepo } from './repo';
import type { VolumeService } from '../volumes/service';
import { createTombstones } from './tombstones';

import { LABEL_POOL, LABEL_SANDBOX } from '../runtime/types';

/**
 * Labels the containers of one Cove server (one data dir), so that servers sharing a Docker engine — a test run
 * beside a running Cove — never adopt or remove each other's containers.
 */
export const LABEL_INSTANCE = 'dev.cove.instance';
const AGENT_READY_TIMEOUT_MS = 60_000;
/** Resources of a sandbox whose create names none (the warm pool's members are made of them). */
export const DEFAULTS = { cpu: 1, memory: 1, disk: 10 };
/** Minutes. */
const DEFAULT_AUTO_STOP = 15;
/** Minutes a stopped sandbox waits before it is archived: Daytona's default, 7 days. */
const DEFAULT_AUTO_ARCHIVE = 7 * 24 * 60;

/**
 * The image an archived sandbox is restored from: the one its container was made from, kept under this name while
 * it is archived (its own name may point elsewhere by then: an image built again, a snapshot replaced).
 */
const archivedImage = (id: string) => `cove-archived:${id}`;
/** Who acts when a timer does. */
const SYSTEM: Principal = { keyId: 'cove', admin: true };
/** The one target (Daytona's region) a Cove server has. */
const TARGET = 'local';
/** Host names a domain allow-list may hold. */
const MAX_DOMAINS = 100;

/** What the sandbox service needs of the secrets service (secrets/service.ts). */
interface SandboxSecrets {
  resolveMounts(principal: Principal, entries: Record<string, string>): SecretMount[];
  mount(sandboxId: string, mounts: SecretMount[]): void;
  mountsOf(sandboxId: string): SecretMount[];
  substitutions(sandboxId: string): Substitution[];
}

/** Daytona's `secrets` (an array of one-entry records, env name → secret name) as one record; a name twice is a 400. */
function secretEntries(list: Record<string, string>[]): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const item of list) {
    for (const [envName, secretName] of Object.entries(item)) {
      if (envName in entries) throw new CoveError('INVALID_REQUEST', `secrets: the environment variable ${envName.slice(0, 100)} is given twice`);
      entries[envName] = secretName;
    }
  }
  return entries;
}

/** `outboundProxyUrl` checked, or a 400 that says what is wrong with it. */
function parseProxyUrl(text: string): string {
  try {
    return parseProxy(text);
  } catch (err) {
    if (err instanceof ProxyUrlError) throw new CoveError('INVALID_REQUEST', err.message);
    throw err;
  }
}

interface SandboxServiceOptions {
  repo: SandboxRepo;
  runtime: DockerRuntime;
  pool?: Pick<Pools, 'claim'>;
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
  /** The log of Cove's egress proxy and DNS (proxy/src/egress), when they run: without them a domain allow-list is refused. */
  egressLog?: EgressLog;
  /** Secrets mounted in sandboxes (secrets/): their placeholders in the environment, their values for the egress proxy. */
  secrets?: SandboxSecrets;
  /** Milliseconds in a lifecycle minute: 60,000, scaled down only by tests. */
  minuteMs: number;
  /**
   * Called when what a sandbox's timers count from changed (created, started, stopped, a timer set): the lifecycle
   * scheduler looks again at once (auto-delete 0 acts at the stop).
   */
  onTimersChanged?: (id: string) => void;
  /** Where archived sandboxes' files go. */
  archives: ArchiveStore;
  /** Called once a sandbox is deleted (its preview tokens go with it). */
  onDeleted?: (id: string) => void;
  /** Whether a principal may create sandboxes of a local image (another key's snapshot: no). Default: yes. */
  mayUseImage?: (principal: Principal, image: string) => Promise<boolean>;
  /** Volumes: checks a create's `volumes`, records the sandbox's mounts, and says what its containers mount. */
  volumes?: Pick<VolumeService, 'resolve' | 'attach' | 'of' | 'mountsOf'>;
  /** The snapshot (snapshots/catalog.ts) a create names, or undefined when the name is no snapshot's. */
  resolveSnapshot?: (principal: Principal, name: string) => ResolvedSnapshot | undefined;
  /**
   * Checks the Dockerfile of a create (a declarative image) and the key's uploaded contexts of those hashes (a 400 says
   * what is wrong, nothing is made); answers the key's image for it and, when that image is not on this host yet,
   * `build`, which builds it (its output lines to `onLine`).
   */
  prepareBuild?: (principal: Principal, dockerfile: string, contextHashes: string[]) => Promise<{ image: string; build?: (onLine: (line: string) => void) => Promise<void> }>;
  /** Called when a build ended for a sandbox deleted meanwhile: nothing uses its image (it can be collected). */
  onBuildDiscarded?: () => void;
  /** Pulls the image a create names (`image`, or a one-line `FROM`) when it is not on this host, with the key's registry credentials. */
  pullImage?: (principal: Principal, image: string) => Promise<void>;
  /** Set when nothing on this server can enforce `disk` (disk mode off): why; creates that set it are refused. */
  refuseDisk?: string;
  /** Set where a container's disk size is fixed when it is made (storage-opt): `disk` cannot change afterwards. */
  diskFixed?: boolean;
  /** Told of every create's pool hit or miss and its time to a started sandbox, for /metrics (metrics/registry.ts). */
  metrics?: Pick<CoveMetrics, 'poolHit' | 'poolMiss' | 'createDone'>;
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
  /** Toolbox requests under way per sandbox: one that is answering a request (a long command, say) is not idle. */
  const busy = new Map<string, number>();
  /** Sandboxes deleted in the last minutes, answered as `destroyed` by getOrDestroyed. */
  const tombstones = createTombstones();
  /** Build logs of sandboxes whose image is being built and started, and who follows them. */
  const buildLogs = createLiveLogs();

  /** Runs `fn` after every earlier operation on the same sandbox has finished. */
  function serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = locks.get(id) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(fn);
    locks.set(id, next);
    next.finally(() => locks.get(id) === next && locks.delete(id)).catch(() => {});
    return next;
  }

  /**
   * Records activity at most once a second per sandbox (a sixtieth of a lifecycle minute, which tests shorten):
   * toolbox and preview requests call it on every request, and a database write on each would sit on those measured
   * paths.
   */
  const activityEveryMs = opts.minuteMs / 60;
  function recordActivity(id: string): void {
    const t = Date.now();
    if ((touched.get(id) ?? 0) > t - activityEveryMs) return;
    touched.set(id, t);
    repo.touch(id);
  }

  function toDto(r: SandboxRecord): SandboxDto {
    const dto: SandboxDto = {
      id: r.id,
      organizationId: r.ownerKeyId,
      name: r.name,
      snapshot: r.snapshot ?? r.image,
      user: r.user,
      env: r.env,
      labels: r.labels,
      public: r.public,
      networkBlockAll: r.networkBlockAll,
      ...(r.networkAllowList ? { networkAllowList: r.networkAllowList } : {}),
      ...(r.domainAllowList ? { domainAllowList: r.domainAllowList } : {}),
      ...(r.outboundProxyUrl ? { outboundProxyUrl: r.outboundProxyUrl } : {}),
      target: TARGET,
      cpu: r.cpu,
      gpu: 0,
      memory: r.memory,
      disk: r.disk,
      state: r.state,
      recoverable: r.state === 'error' && !!r.containerId,
      autoStopInterval: r.autoStopInterval,
      autoArchiveInterval: r.autoArchiveInterval,
      autoDeleteInterval: r.autoDeleteInterval,
      autoPauseInterval: r.autoPauseInterval,
      ...(r.autoDestroyAt ? { autoDestroyAt: r.autoDestroyAt } : {}),
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      lastActivityAt: r.lastActivityAt,
      toolboxProxyUrl: opts.toolboxUrl(),
      daemonVersion: opts.agentVersion,
      volumes: opts.volumes?.of(r.id) ?? [],
    };
    if (r.errorReason) dto.errorReason = r.errorReason;
    return dto;
  }

  /** The egress policy a record asks for. */
  const egressOf = (r: Pick<SandboxRecord, 'id' | 'networkBlockAll' | 'networkAllowList' | 'domainAllowList'>): EgressPolicy =>
    policyOf(r.networkBlockAll, r.networkAllowList ? r.networkAllowList.split(',') : [], { domains: !!r.domainAllowList, secrets: hasSecrets(r.id) });
  /** Whether secrets are mounted in a sandbox: its web traffic then goes through the egress proxy. */
  const hasSecrets = (id: string): boolean => !!opts.secrets && opts.secrets.mountsOf(id).length > 0;
  /** The environment a sandbox's secrets give it: each variable holds its secret's placeholder, never the value. */
  const secretEnv = (id: string): Record<string, string> => Object.fromEntries((opts.secrets?.mountsOf(id) ?? []).map((m) => [m.envName, m.placeholder]));

  /** The mounts `secrets` asks for, checked (400 naming what is wrong), or none. */
  function resolveSecrets(principal: Principal, list: Record<string, string>[] | undefined, env: Record<string, string>): SecretMount[] {
    const entries = secretEntries(list ?? []);
    if (!Object.keys(entries).length) return [];
    if (!opts.secrets || !opts.egressLog) throw new CoveError('INVALID_REQUEST', 'secrets need the egress proxy, which this Cove server does not run');
    const clash = Object.keys(entries).find((name) => name in env);
    if (clash) throw new CoveError('INVALID_REQUEST', `secrets: ${clash.slice(0, 100)} is also given in env; give each variable once`);
    return opts.secrets.resolveMounts(principal, entries);
  }

  type NetworkFields = Pick<SandboxRecord, 'networkBlockAll' | 'networkAllowList' | 'domainAllowList'>;

  /**
   * The record fields for `networkBlockAll`, `networkAllowList` and `domainAllowList` as given, over `current` (what
   * the sandbox has: lists not given are kept); undefined when none is given. A sandbox may reach the union of its
   * networks and its domains; block-all refuses everything, so it comes alone. Refuses what cannot be enforced: a
   * malformed or forbidden network or name, a domain list without the egress proxy.
   */
  function networkFields(
    req: { networkBlockAll?: boolean; networkAllowList?: string; domainAllowList?: string },
    current: NetworkFields = { networkBlockAll: false, networkAllowList: null, domainAllowList: null },
  ): NetworkFields | undefined {
    const list = req.networkAllowList?.trim();
    const domains = req.domainAllowList?.trim();
    if (req.networkBlockAll && (list || domains)) {
      throw new CoveError('INVALID_REQUEST', `Give networkBlockAll or ${list ? 'networkAllowList' : 'domainAllowList'}, not both: networkBlockAll refuses every destination`);
    }
    if (req.networkBlockAll) return { networkBlockAll: true, networkAllowList: null, domainAllowList: null };
    if (list === undefined && domains === undefined) {
      return req.networkBlockAll === false ? { networkBlockAll: false, networkAllowList: null, domainAllowList: null } : undefined;
    }
    const next: NetworkFields = { networkBlockAll: false, networkAllowList: current.networkAllowList, domainAllowList: current.domainAllowList };
    if (list !== undefined) {
      try {
        const cidrs = parseAllowList(list, { allowPrivate: opts.allowPrivateEgress ?? false });
        next.networkAllowList = cidrs.length ? cidrs.join(',') : null;
      } catch (err) {
        if (err instanceof EgressPolicyError) throw new CoveError('INVALID_REQUEST', err.message);
        throw err;
      }
    }
    if (domains !== undefined) {
      if (domains && !opts.egressLog) throw new CoveError('INVALID_REQUEST', 'domainAllowList needs the egress proxy, which this Cove server does not run');
      try {
        const names = parseHostList(domains, 'domainAllowList', MAX_DOMAINS);
        next.domainAllowList = names.length ? names.join(',') : null;
      } catch (err) {
        if (err instanceof HostPatternError) throw new CoveError('INVALID_REQUEST', err.message);
        throw err;
      }
    }
    return next;
  }

  /** Every sandbox a principal may list: its own, or all for an admin key. */
  const owned = (principal: Principal): SandboxRecord[] => (principal.admin ? repo.all() : repo.list({ ownerKeyId: principal.keyId, limit: -1 }));

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

  /**
   * The image a create asks for. A Dockerfile of more than one `FROM` line is the key's image built of it (`built`),
   * with `build` when that image is not on this host yet.
   */
  async function imageOf(principal: Principal, req: CreateSandboxRequest): Promise<{ image: string; built?: boolean; build?: (onLine: (line: string) => void) => Promise<void> }> {
    const dockerfile = req.buildInfo?.dockerfileContent?.trim();
    if (dockerfile) {
      const from = /^FROM\s+(\S+)\s*$/i.exec(dockerfile);
      if (!from) {
        if (!opts.prepareBuild) throw new CoveError('INVALID_REQUEST', 'Only a one-line "FROM image" Dockerfile is supported; build the image with docker and pass its name');
        // Read before anything is built: the base image must be a reference Docker can read.
        const first = dockerfile.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#')) ?? '';
        const base = /^FROM\s+(\S+)(?:\s+AS\s+\S+)?$/i.exec(first);
        if (!base || !IMAGE_REF.test(base[1])) throw new CoveError('INVALID_REQUEST', `A Dockerfile must start with FROM and an image reference, not ${JSON.stringify(first.slice(0, 100))}`);
        return { ...(await opts.prepareBuild(principal, dockerfile, req.buildInfo?.contextHashes ?? [])), built: true };
      }
      if (!IMAGE_REF.test(from[1])) throw new CoveError('INVALID_REQUEST', `Invalid image reference in FROM: ${from[1].slice(0, 200)}`);
      return { image: from[1] };
    }
    return { image: req.image ?? req.snapshot ?? opts.image };
  }

  function markError(id: string, reason: string): void {
    repo.update(id, { state: 'error', errorReason: reason });
  }

  /**
   * What a failed operation answers. While the Docker engine cannot be reached the sandbox is not at fault: it goes
   * back to `previous` (when given) and the caller gets a 503 to retry; otherwise it is marked in error (when
   * `previous` is given) and the caller gets the engine's reason.
   */
  function failed(id: string, err: unknown, what: string, previous?: SandboxState): CoveError {
    const message = (err as Error).message;
    if (err instanceof RuntimeError && err.code === 'DOCKER_UNAVAILABLE') {
      if (previous) repo.update(id, { state: previous, ...(previous === 'error' ? { errorReason: message } : {}) });
      return new CoveError('RUNTIME_UNAVAILABLE', `The sandbox could not be ${what} now: the Docker engine does not answer; try again once it is back`, message);
    }
    if (previous) markError(id, message);
    return new CoveError('SANDBOX_ERROR', `The sandbox could not be ${what}: ${message}`, (err as Error).stack);
  }

  /**
   * A container that ended without Cove asking (an engine event, or reconcile() finding it so): its sandbox becomes
   * `stopped` or `error` with the reason (exit-reason.ts) and its address is forgotten. Runs after any operation under
   * way on the sandbox, and only while the sandbox is `started` on that container (or `stopped`/`error` and the container
   * is gone) and the container does not run again: Cove's own stop, delete and start hold the sandbox in `stopping`,
   * `destroying` or `starting` and settle their containers' events themselves; a late event of an earlier run finds
   * the container running.
   */
  function containerGone(id: string, containerId: string, end?: ContainerEnd): Promise<void> {
    const settled = (r: SandboxRecord | undefined): r is SandboxRecord =>
      r?.containerId === containerId && (r.state === 'started' || r.state === 'stopped' || r.state === 'error');
    return serialized(id, async () => {
      if (!settled(repo.get(id))) return;
      // undefined: the container is gone; null: the engine could not say (the event's evidence stands alone).
      const info = await runtime.inspect(containerId).catch(() => null);
      if (info && (info.state === 'running' || info.state === 'paused' || info.state === 'restarting')) return;
      // Found by reconcile() with an engine that then could not say more: the next reconciliation will know.
      if (!end && info === null) return;
      const record = repo.get(id);
      const removed = end?.kind === 'removed' || info === undefined;
      // A stopped sandbox stays stopped when its container merely exited; it becomes an error once the container is gone.
      if (!settled(record) || (record.state !== 'started' && !removed)) return;
      const exitCode = end?.exitCode ?? info?.exitCode;
      const { state, reason } = exitOutcome(
        { removed, exitCode, oom: !!end?.oom || (!!info?.oomKilled && exitCode === 137), signals: end?.signals ?? [] },
        record.memory,
      );
      // A removed container is forgotten: nothing can start it again (recover refuses such a sandbox).
      repo.update(id, { state, errorReason: reason, ip: null, ...(removed ? { containerId: null } : {}) });
      if (record.ip) {
        await runtime.releaseAddress(containerId, record.ip).catch((err: Error) => log.error({ sandboxId: id, err: err.message }, 'could not empty the egress rules of a dead sandbox'));
      }
      log.warn({ sandboxId: id, state, reason, exitCode }, 'the sandbox\'s container ended without Cove stopping it');
    });
  }

  /** The account a sandbox's container is made with: unset when the image decides (its own, or Cove's default one). */
  const containerUser = (r: Pick<SandboxRecord, 'user' | 'image'>): string | undefined =>
    (r.user === opts.defaultUser && r.image === opts.image) || !r.user ? undefined : r.user;

  /** Makes and starts a container for the sandbox (with `layer`: the files of its archive in place first). */
  async function coldStart(record: SandboxRecord, layer?: () => Readable): Promise<{ containerId: string; ip: string }> {
    const created = await runtime.createSandbox({
      name: `cove-${record.id}`,
      image: layer ? archivedImage(record.id) : record.image,
      labels: { [LABEL_SANDBOX]: record.id, [LABEL_INSTANCE]: opts.instance },
      // With a domain list, the egress proxy chains to the outbound proxy itself: the variables would only send clients to
      // an address the firewall refuses.
      env: { ...record.env, ...(record.domainAllowList ? {} : proxyEnv(record.outboundProxyUrl)), ...secretEnv(record.id) },
      agentToken: record.agentToken,
      // Empty: the image decides (its USER, else Cove's non-root account); the runtime says whom it chose.
      user: containerUser(record),
      cpu: record.cpu,
      memoryGiB: record.memory,
      diskGiB: record.disk,
      egress: egressOf(record),
      layer,
      volumes: opts.volumes?.mountsOf(record.id),
      ...(record.entrypoint ? { entrypoint: record.entrypoint } : {}),
    });
    repo.update(record.id, { containerId: created.containerId, ip: created.ip, user: created.user });
    await runtime.waitForAgent(created.ip, record.agentToken, AGENT_READY_TIMEOUT_MS);
    return created;
  }

  /** Starts the container of a stopped (or failed) sandbox, within its owner's quotas. */
  async function startStopped(record: SandboxRecord): Promise<SandboxDto> {
    const { id } = record;
    opts.quotas.admit(record.ownerKeyId, record, () => repo.update(id, { state: 'starting', errorReason: null }));
    try {
      if (record.containerId) {
        const { ip } = await runtime.start(record.containerId, record.agentToken, egressOf(record));
        repo.update(id, { ip });
        await runtime.waitForAgent(ip, record.agentToken, AGENT_READY_TIMEOUT_MS);
      } else {
        await coldStart(record);
      }
    } catch (err) {
      throw failed(id, err, 'started', record.state === 'error' ? 'error' : 'stopped');
    }
    repo.touch(id);
    touched.set(id, Date.now());
    const started = toDto(repo.update(id, { state: 'started' })!);
    opts.onTimersChanged?.(id);
    return started;
  }

  /**
   * Brings an archived sandbox back: a new container of its image with the archived files in its writable layer, then
   * started. The archive is deleted only once the sandbox runs; a restore that fails leaves it archived.
   */
  async function restore(record: SandboxRecord): Promise<SandboxDto> {
    const { id } = record;
    opts.quotas.admit(record.ownerKeyId, record, () => repo.update(id, { state: 'restoring', errorReason: null }));
    try {
      await coldStart(record, () => opts.archives.get(id));
    } catch (err) {
      const made = repo.get(id);
      if (made?.containerId) await runtime.remove(made.containerId).catch(() => {});
      repo.update(id, { state: 'archived', containerId: null, ip: null });
      throw failed(id, err, 'restored');
    }
    repo.touch(id);
    touched.set(id, Date.now());
    const started = toDto(repo.update(id, { state: 'started' })!);
    await opts.archives.delete(id);
    await runtime.untagImage(archivedImage(id)).catch(() => {});
    opts.onTimersChanged?.(id);
    return started;
  }

  /**
   * After a restart, a sandbox the server left `archiving` or `restoring` goes back to where it was before: an
   * archive under way is dropped and the sandbox is stopped with its container (nothing was removed yet); a restore
   * under way loses its new container and the sandbox is archived (its archive is deleted only once it runs).
   */
  async function settleArchiving(record: SandboxRecord, container: { id: string } | undefined): Promise<string | undefined> {
    const { id } = record;
    let kept: string | undefined;
    if (record.state === 'archiving' && container) {
      await opts.archives.delete(id);
      await runtime.untagImage(archivedImage(id)).catch(() => {});
      repo.update(id, { state: 'stopped', ip: null, stateChangedAt: record.stateChangedAt });
      kept = container.id;
    } else if (opts.archives.has(id)) {
      if (container) await runtime.remove(container.id).catch(() => {});
      repo.update(id, { state: 'archived', containerId: null, ip: null, stateChangedAt: record.stateChangedAt });
    } else {
      markError(id, 'Cove stopped while the sandbox was being archived or restored, and neither its container nor its archive is left');
    }
    log.warn({ sandboxId: id, was: record.state, now: repo.get(id)?.state }, 'settled an archive or restore that a restart cut short');
    return kept;
  }

  /** The cold start of a new sandbox: `started`, or `error` with the reason and no container left. */
  async function firstStart(record: SandboxRecord): Promise<SandboxDto> {
    const { id } = record;
    try {
      await coldStart(record);
      log.debug({ sandboxId: id, pool: false }, 'sandbox created (cold start)');
      // Idle time counts from when it runs, not from when its create began.
      repo.touch(id);
      touched.set(id, Date.now());
      return toDto(repo.update(id, { state: 'started' })!);
    } catch (err) {
      const made = repo.get(id);
      if (made?.containerId) await runtime.remove(made.containerId).catch(() => {});
      repo.update(id, { containerId: null, ip: null });
      throw failed(id, err, 'started', 'error');
    }
  }

  /**
   * The background part of a create whose image must be built: `building_snapshot` while it builds (its output lines
   * the sandbox's build logs), then started as any create (`creating` → `started`, or `error`); a failed build ends
   * `build_failed` with the build's message. Not under the sandbox's lock while it builds, so a delete can go on: the
   * build's outcome is then discarded (nothing started; its image is collected as unused).
   */
  async function buildThenStart(id: string, build: (onLine: (line: string) => void) => Promise<void>): Promise<void> {
    const gone = () => {
      buildLogs.end(id);
      opts.onBuildDiscarded?.();
    };
    const keep = () =>
      buildLogs.end(id, (logs) => {
        if (repo.get(id)) repo.setBuildLogs(id, logs);
      });
    if (repo.get(id)?.state !== 'pending_build') return gone();
    repo.update(id, { state: 'building_snapshot' });
    try {
      await build((line) => buildLogs.append(id, line));
    } catch (err) {
      const reason = (err as Error).message;
      buildLogs.append(id, reason);
      if (repo.get(id)?.state !== 'building_snapshot') return gone();
      repo.update(id, { state: 'build_failed', errorReason: reason });
      log.info({ sandboxId: id, reason }, 'the image of a sandbox could not be built');
      return keep();
    }
    try {
      await serialized(id, async () => {
        const record = repo.get(id);
        if (record?.state !== 'building_snapshot') return gone();
        buildLogs.append(id, `Built ${record.image}; starting the sandbox`);
        await firstStart(repo.update(id, { state: 'creating' })!);
        buildLogs.append(id, 'Sandbox started');
      });
    } catch (err) {
      buildLogs.append(id, (err as Error).message);
    } finally {
      keep();
    }
  }

  /** Refuses what cannot be done to a sandbox whose image is being built or could not be built. */
  function refuseBuilding(record: SandboxRecord, what: string): void {
    if (record.state === 'pending_build' || record.state === 'building_snapshot') {
      throw new CoveError('SANDBOX_NOT_STARTED', `Sandbox ${record.id} is ${record.state}: its image is being built; it cannot be ${what} until it is started`);
    }
    if (record.state === 'build_failed') {
      throw new CoveError('INVALID_REQUEST', `Sandbox ${record.id} is build_failed (${record.errorReason ?? 'no reason recorded'}): it has no container to be ${what}; delete it and create it again`);
    }
  }

  const service = {
    toDto,

    async create(principal: Principal, req: CreateSandboxRequest): Promise<SandboxDto> {
      const began = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - began) / 1e9;
      if (req.gpu || req.gpuType?.length) throw new CoveError('INVALID_REQUEST', 'GPUs are not available on this Cove server (gpu, gpuType)');
      if (req.target !== undefined && req.target !== TARGET) throw new CoveError('INVALID_REQUEST', `target ${req.target.slice(0, 40)}: this Cove server has one target, ${TARGET}`);
      for (const [field, set] of [
        ['spot', req.spot === true],
        ['kvm', req.kvm === true],
        ['linkedSandbox', !!req.linkedSandbox],
        ['otelEndpointOverride', !!req.otelEndpointOverride],
      ] as const) {
        if (set) throw new CoveError('INVALID_REQUEST', `${field} is not supported by this Cove server`);
      }
      const outboundProxyUrl = req.outboundProxyUrl?.trim() ? parseProxyUrl(req.outboundProxyUrl.trim()) : null;
      if (req.disk !== undefined && opts.refuseDisk) throw new CoveError('INVALID_REQUEST', `disk cannot be enforced by this Cove server (${opts.refuseDisk}); leave it out`);
      const network = networkFields(req) ?? { networkBlockAll: false, networkAllowList: null, domainAllowList: null };
      const secretMounts = resolveSecrets(principal, req.secrets, req.env ?? {});
      // A snapshot of the catalog gives its image, resources and entrypoint; any other name is a local image's.
      const snapshot = req.snapshot && !req.image && !req.buildInfo ? opts.resolveSnapshot?.(principal, req.snapshot) : undefined;
      if (snapshot?.resources) {
        // As Daytona: a snapshot's sandboxes get its resources; a create chooses its own from an image.
        const given = (['cpu', 'memory', 'disk'] as const).filter((f) => req[f] !== undefined);
        if (given.length) {
          throw new CoveError(
            'INVALID_REQUEST',
            `Cannot specify sandbox resources (${given.join(', ')}) when creating from snapshot ${snapshot.name}: its sandboxes get its own (cpu ${snapshot.resources.cpu}, memory ${snapshot.resources.memory} GiB, disk ${snapshot.resources.disk} GiB); create from an image to choose them`,
          );
        }
      }
      const { image, built, build } = snapshot ? { image: snapshot.image } : await imageOf(principal, req);
      // An image to build is the key's own, its Dockerfile and contexts checked: it is made after the answer.
      if (!build) {
        // An image reference (not a snapshot's name) that is not on this host is pulled first, when this server can.
        if (opts.pullImage && (req.image || req.buildInfo) && image !== opts.image && !(await runtime.imageExists(image))) await opts.pullImage(principal, image);
        // Another key's snapshot is as absent as a missing image: its files are that key's.
        if (image !== opts.image && !((await runtime.imageExists(image)) && (await opts.mayUseImage?.(principal, image)) !== false)) {
          throw new CoveError('IMAGE_NOT_FOUND', `Image ${image} does not exist on this host; build it (docker build) or run "cove images build" for the default`);
        }
      }
      // Checked after the last wait: nothing can delete a volume between this and the insert below.
      if (req.volumes?.length && !opts.volumes) throw new CoveError('INVALID_REQUEST', 'volumes are not supported by this Cove server');
      const mounts = req.volumes?.length && opts.volumes ? opts.volumes.resolve(principal, req.volumes) : [];
      const id = randomUUID();
      const name = req.name ?? id;
      // Names are unique per API key: only the caller's own sandboxes can make a name taken.
      if (req.name && repo.nameTaken(principal.keyId, req.name)) throw new CoveError('SANDBOX_EXISTS', `A sandbox named ${req.name} already exists`);
      const time = now();
      const record: SandboxRecord = {
        id,
        name,
        ownerKeyId: principal.keyId,
        state: build ? 'pending_build' : 'creating',
        image,
        snapshot: snapshot && snapshot.name !== image ? snapshot.name : null,
        entrypoint: snapshot?.entrypoint ?? null,
        user: req.user ?? (image === opts.image ? opts.defaultUser : ''),
        env: req.env ?? {},
        labels: req.labels ?? {},
        public: req.public ?? false,
        ...network,
        outboundProxyUrl,
        cpu: snapshot?.resources?.cpu ?? req.cpu ?? DEFAULTS.cpu,
        memory: snapshot?.resources?.memory ?? req.memory ?? DEFAULTS.memory,
        disk: snapshot?.resources?.disk ?? req.disk ?? DEFAULTS.disk,
        containerId: null,
        agentToken: randomBytes(32).toString('hex'),
        ip: null,
        errorReason: null,
        // Daytona's defaults: stopped after 15 idle minutes, archived 7 days after that, never paused.
        autoStopInterval: req.autoStopInterval ?? DEFAULT_AUTO_STOP,
        autoArchiveInterval: req.autoArchiveInterval ?? DEFAULT_AUTO_ARCHIVE,
        autoDeleteInterval: req.autoDeleteInterval ?? -1,
        autoPauseInterval: req.autoPauseInterval ?? 0,
        autoDestroyAt: req.ttlMinutes ? new Date(Date.now() + req.ttlMinutes * opts.minuteMs).toISOString() : null,
        stateChangedAt: null,
        createdAt: time,
        updatedAt: time,
        lastActivityAt: time,
      };
      try {
        opts.quotas.admit(principal.keyId, record, () => {
          repo.insert(record);
          if (mounts.length) opts.volumes?.attach(id, mounts);
          if (secretMounts.length) opts.secrets?.mount(id, secretMounts);
          if (built) repo.setBuildLogs(id, build ? '' : `${image} is on this host: nothing to build`);
        });
      } catch (err) {
        if (/UNIQUE/.test((err as Error).message)) throw new CoveError('SANDBOX_EXISTS', `A sandbox named ${name} already exists`);
        throw err;
      }
      if (build) {
        // Answered now (pending_build): the SDK follows the build logs, then waits for started.
        buildLogs.begin(id);
        settle('sandbox image build', buildThenStart(id, build));
        return toDto(record);
      }

      // A pool member fits when the sandbox asks for nothing the member was not started with: same class (image,
      // resources, entrypoint), no environment, the account the image decides, no volumes (members mount none).
      const poolClass: PoolClass = { image, cpu: record.cpu, memoryGiB: record.memory, diskGiB: record.disk, ...(record.entrypoint ? { entrypoint: record.entrypoint } : {}) };
      const member = Object.keys(record.env).length === 0 && !record.outboundProxyUrl && !secretMounts.length && containerUser(record) === undefined && !mounts.length ? opts.pool?.claim(poolClass) : undefined;
      if (member) {
        opts.metrics?.poolHit();
        const policy = egressOf(record);
        // Members run open; nothing of the user's has run in this one yet (a held entrypoint waits for the request below).
        try {
          if (policy !== OPEN) await runtime.setEgress(member.containerId, member.ip, policy);
          if (member.held) await runtime.waitForAgent(member.ip, member.agentToken, AGENT_READY_TIMEOUT_MS, member.containerId);
        } catch (err) {
          await runtime.remove(member.containerId).catch(() => {});
          markError(id, (err as Error).message);
          throw new CoveError('SANDBOX_ERROR', `The sandbox could not be started: ${(err as Error).message}`, (err as Error).stack);
        }
        const started = repo.update(id, { state: 'started', containerId: member.containerId, ip: member.ip, agentToken: member.agentToken, user: member.user })!;
        log.debug({ sandboxId: id, pool: true }, 'sandbox created from the warm pool');
        opts.metrics?.createDone('pool', seconds());
        return toDto(started);
      }
      opts.metrics?.poolMiss();
      const dto = await serialized(id, () => firstStart(record));
      opts.metrics?.createDone('cold', seconds());
      return dto;
    },

    get(principal: Principal, idOrName: string): SandboxDto {
      return toDto(visible(principal, idOrName));
    },

    /** `GET /sandbox/{id}`: as get, and a sandbox deleted in the last minutes, by id, as `destroyed` (tombstones.ts). */
    getOrDestroyed(principal: Principal, idOrName: string): SandboxDto {
      try {
        return service.get(principal, idOrName);
      } catch (err) {
        const buried = err instanceof CoveError && err.code === 'SANDBOX_NOT_FOUND' ? tombstones.find(principal, idOrName) : undefined;
        if (buried) return buried;
        throw err;
      }
    },

    list(principal: Principal, query: ListSandboxesQuery): ListSandboxesResponse {
      // Errored sandboxes are always listed; deleted ones are not kept in a form lists can page through.
      if (query.includeErroredDeleted) throw new CoveError('INVALID_REQUEST', 'includeErroredDeleted is not supported by this Cove server: sandboxes in error are always listed, deleted ones never');
      const { items, nextCursor } = searchSandboxes(owned(principal), { ...query, target: TARGET });
      return { items: items.map(toDto), nextCursor };
    },

    /** The same filters by numbered pages with a total, newest first (SDKs before 0.2). */
    listPage(principal: Principal, query: ListSandboxesPageQuery): ListSandboxesPageResponse {
      const { page = 1, limit = 100, ...filters } = query;
      const { items: matching } = searchSandboxes(owned(principal), { ...filters, sort: 'createdAt', order: 'desc', limit: Number.MAX_SAFE_INTEGER, target: TARGET });
      return {
        items: matching.slice((page - 1) * limit, page * limit).map(toDto),
        total: matching.length,
        page,
        totalPages: Math.ceil(matching.length / limit),
      };
    },

    start(principal: Principal, idOrName: string): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id)!;
        if (record.state === 'started') return toDto(record);
        refuseBuilding(record, 'started');
        if (record.state === 'paused' && record.containerId) {
          // Resumed where it was: its processes thaw with their memory; its address and rules never changed.
          repo.update(id, { state: 'resuming' });
          try {
            await runtime.unpause(record.containerId);
          } catch (err) {
            throw failed(id, err, 'resumed', 'paused');
          }
          repo.touch(id);
          touched.set(id, Date.now());
          const resumed = toDto(repo.update(id, { state: 'started' })!);
          opts.onTimersChanged?.(id);
          return resumed;
        }
        if (record.state === 'archived') return restore(record);
        return startStopped(record);
      });
    },

    stop(principal: Principal, idOrName: string, force = false): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id)!;
        if (record.state === 'stopped') return toDto(record);
        refuseBuilding(record, 'stopped');
        repo.update(id, { state: 'stopping' });
        try {
          // Frozen processes cannot take the SIGTERM that lets them stop cleanly: thaw them first.
          if (record.containerId && record.state === 'paused') await runtime.unpause(record.containerId);
          if (record.containerId) await runtime.stop(record.containerId, force ? 0 : 10);
        } catch (err) {
          throw failed(id, err, 'stopped', record.state);
        }
        const stopped = toDto(repo.update(id, { state: 'stopped', ip: null })!);
        opts.onTimersChanged?.(id);
        return stopped;
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
            throw failed(id, err, 'deleted', record.state);
          }
        }
        await opts.archives.delete(id);
        if (record.state === 'archived') await runtime.untagImage(archivedImage(id)).catch(() => {});
        repo.remove(id);
        // A build under way goes on; its outcome is discarded (buildThenStart). Its followers are told the end now.
        buildLogs.end(id);
        tombstones.bury(toDto(record), record.ownerKeyId);
        touched.delete(id);
        opts.onDeleted?.(id);
        return { ...toDto(record), state: 'destroying' as SandboxState };
      });
    },

    /**
     * Pauses a started sandbox: every process frozen where it is, memory kept (Docker's cgroup freezer); `start`
     * resumes it in milliseconds. Toolbox, preview and SSH calls are refused while it is paused.
     */
    pause(principal: Principal, idOrName: string): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id)!;
        if (record.state === 'paused') return toDto(record);
        if (record.state !== 'started' || !record.containerId) {
          throw new CoveError('SANDBOX_NOT_STARTED', `Sandbox ${record.id} is ${record.state}; only a started sandbox can be paused`);
        }
        repo.update(id, { state: 'pausing' });
        try {
          await runtime.pause(record.containerId);
        } catch (err) {
          repo.update(id, { state: 'started' });
          throw failed(id, err, 'paused');
        }
        const paused = toDto(repo.update(id, { state: 'paused' })!);
        opts.onTimersChanged?.(id);
        return paused;
      });
    },

    /**
     * Changes a sandbox's resources within the key's quotas: cpu and memory at once (running or not, as Docker updates
     * a container's cgroups in place), disk only while stopped and only upward (files already written must fit).
     */
    resize(principal: Principal, idOrName: string, req: ResizeSandboxRequest): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      if (req.cpu === undefined && req.memory === undefined && req.disk === undefined) throw new CoveError('INVALID_REQUEST', 'Give cpu, memory or disk to resize');
      return serialized(id, async () => {
        const record = repo.get(id)!;
        const next = { cpu: req.cpu ?? record.cpu, memory: req.memory ?? record.memory, disk: req.disk ?? record.disk };
        if (next.disk !== record.disk) {
          if (opts.refuseDisk || opts.diskFixed) {
            throw new CoveError('INVALID_REQUEST', `disk cannot be changed on this Cove server (${opts.refuseDisk ?? 'its engine fixes a sandbox\'s disk size when its container is made'})`);
          }
          if (record.state !== 'stopped') throw new CoveError('SANDBOX_NOT_STARTED', `disk can only be changed while the sandbox is stopped; sandbox ${record.id} is ${record.state}`);
          if (next.disk < record.disk) throw new CoveError('INVALID_REQUEST', `disk can only grow: ${record.disk} GiB to ${next.disk} GiB would shrink it`);
        }
        if (!['started', 'paused', 'stopped'].includes(record.state)) {
          throw new CoveError('SANDBOX_NOT_STARTED', `Sandbox ${record.id} is ${record.state}; resize it once it is started or stopped`);
        }
        // The record changes first, inside the quota check; the container follows, and a refusal from the engine
        // (memory below what is in use) puts the record back.
        opts.quotas.admit(record.ownerKeyId, { id, ...next }, () => repo.update(id, next), { holdsCompute: record.state !== 'stopped' });
        if (record.containerId && (next.cpu !== record.cpu || next.memory !== record.memory)) {
          try {
            await runtime.resize(record.containerId, { cpu: next.cpu, memoryGiB: next.memory });
          } catch (err) {
            repo.update(id, { cpu: record.cpu, memory: record.memory, disk: record.disk });
            throw new CoveError('INVALID_REQUEST', `The sandbox could not be resized: ${(err as Error).message}`);
          }
        }
        return toDto(repo.get(id)!);
      });
    },

    /**
     * Archives a stopped sandbox: its own files (what it changed in its image) go compressed to the archive store and
     * its container is removed; `start` restores it with every file. Done when this returns (state `archived`).
     */
    archive(principal: Principal, idOrName: string): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id)!;
        if (record.state === 'archived') return toDto(record);
        if (record.state !== 'stopped') throw new CoveError('SANDBOX_NOT_STARTED', `Sandbox ${record.id} is ${record.state}; only a stopped sandbox can be archived`);
        if (!record.containerId) throw new CoveError('SANDBOX_ERROR', `Sandbox ${record.id} has no container to archive`);
        const containerId = record.containerId;
        let layer: Readable;
        try {
          await runtime.holdImage(containerId, archivedImage(id));
          layer = await runtime.exportLayer(containerId);
        } catch (err) {
          if (err instanceof RuntimeError && err.code === 'UNSUPPORTED') throw new CoveError('INVALID_REQUEST', `This Cove server cannot archive sandboxes: ${err.message}`);
          throw failed(id, err, 'archived');
        }
        // From here until the record says archived, a server that dies finds `archiving` and a container: it rolls
        // back to stopped (reconcile), and the store never shows a half-written archive.
        // The auto-delete timer keeps counting from the stop.
        const stoppedAt = { stateChangedAt: record.stateChangedAt };
        repo.update(id, { state: 'archiving', ...stoppedAt });
        try {
          const { bytes } = await opts.archives.put(id, layer);
          log.info({ sandboxId: id, bytes }, 'sandbox archived');
        } catch (err) {
          repo.update(id, { state: 'stopped', ...stoppedAt });
          await runtime.untagImage(archivedImage(id)).catch(() => {});
          throw failed(id, err, 'archived');
        }
        const archived = toDto(repo.update(id, { state: 'archived', containerId: null, ip: null, ...stoppedAt })!);
        // A container no record owns is removed by the next reconciliation if this fails.
        await runtime.remove(containerId).catch((err: Error) => log.warn({ sandboxId: id, err: err.message }, 'could not remove the container of an archived sandbox'));
        opts.onTimersChanged?.(id);
        return archived;
      });
    },

    /** Archives a sandbox because a timer said so. */
    archiveByTimer: (id: string): Promise<SandboxDto> => service.archive(SYSTEM, id),

    /**
     * Starts again a sandbox in `error` whose container still exists (it died, ran out of memory, went past its disk
     * size): files kept, processes anew (`skipStart`: left stopped). One whose container is gone cannot be recovered:
     * delete it.
     */
    recover(principal: Principal, idOrName: string, skipStart = false): Promise<SandboxDto> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id)!;
        if (record.state !== 'error') throw new CoveError('INVALID_REQUEST', `Sandbox ${record.id} is ${record.state}, not in error: there is nothing to recover`);
        const info = record.containerId ? await runtime.inspect(record.containerId).catch(() => null) : undefined;
        if (info === undefined) {
          if (record.containerId) repo.update(id, { containerId: null });
          throw new CoveError('INVALID_REQUEST', `Sandbox ${record.id} cannot be recovered: its container is gone (${record.errorReason ?? 'no reason recorded'}); delete it`);
        }
        if (skipStart) {
          const stopped = toDto(repo.update(id, { state: 'stopped', errorReason: null, ip: null })!);
          opts.onTimersChanged?.(id);
          return stopped;
        }
        return startStopped(repo.get(id)!);
      });
    },

    /**
     * Runs `copy` on a sandbox's container while the sandbox shows `state` (a fork or a snapshot is being made of its
     * file system), in turn with every other operation on it; the sandbox then has the state it had before again, its
     * timers unchanged. Only a started, paused or stopped sandbox can be copied.
     */
    copying<T>(principal: Principal, idOrName: string, state: 'forking' | 'snapshotting', copy: (record: SandboxRecord & { containerId: string }) => Promise<T>): Promise<T> {
      const { id } = visible(principal, idOrName);
      return serialized(id, async () => {
        const record = repo.get(id);
        if (!record) throw new CoveError('SANDBOX_NOT_FOUND', `Sandbox ${idOrName} not found`);
        const what = state === 'forking' ? 'forked' : 'snapshotted';
        if (!['started', 'paused', 'stopped'].includes(record.state)) {
          throw new CoveError('SANDBOX_NOT_STARTED', `Sandbox ${record.id} is ${record.state}; only a started, paused or stopped sandbox can be ${what}`);
        }
        if (!record.containerId) throw new CoveError('SANDBOX_NOT_STARTED', `Sandbox ${record.id} has no file system yet; start it before it is ${what}`);
        repo.update(id, { state });
        try {
          return await copy({ ...record, containerId: record.containerId });
        } finally {
          if (repo.get(id)?.state === state) {
            repo.update(id, { state: record.state });
            repo.update(id, { stateChangedAt: record.stateChangedAt });
          }
        }
      });
    },

    /** Pauses a sandbox because a timer said so. */
    pauseByTimer: (id: string): Promise<SandboxDto> => service.pause(SYSTEM, id),

    /** Replaces a sandbox's labels (SDK `setLabels`). */
    setLabels(principal: Principal, idOrName: string, labels: Record<string, string>): SandboxDto {
      const { id } = visible(principal, idOrName);
      return toDto(repo.update(id, { labels })!);
    },

    /** Sets one lifecycle timer, in minutes (`/autostop/{interval}` and friends). */
    setInterval(principal: Principal, idOrName: string, timer: 'autoStop' | 'autoArchive' | 'autoDelete' | 'autoPause', minutes: number): SandboxDto {
      const record = visible(principal, idOrName);
      const min = timer === 'autoDelete' ? -1 : 0;
      if (minutes < min) throw new CoveError('INVALID_REQUEST', `${timer}Interval must be ${min} or more minutes, not ${minutes}`);
      const fields: Partial<SandboxRecord> = { [`${timer}Interval`]: minutes };
      const updated = toDto(repo.update(record.id, fields)!);
      opts.onTimersChanged?.(record.id);
      return updated;
    },

    /** Destroys the sandbox `minutes` from now whatever its state (0: no ttl). */
    setTtl(principal: Principal, idOrName: string, minutes: number): SandboxDto {
      const { id } = visible(principal, idOrName);
      if (minutes < 0) throw new CoveError('INVALID_REQUEST', `ttlMinutes must be 0 or more, not ${minutes}`);
      const updated = toDto(repo.update(id, { autoDestroyAt: minutes ? new Date(Date.now() + minutes * opts.minuteMs).toISOString() : null })!);
      opts.onTimersChanged?.(id);
      return updated;
    },

    /**
     * The build logs of a sandbox created from a Dockerfile (`create({ image: Image… })`) as text: the build's output
     * lines (the last 2,000, in memory while it builds, stored with the sandbox once it settled), then how its start
     * went. `follow`: streamed until the build and the start settle. A sandbox of no Dockerfile has none (a 400, as
     * Daytona answers a sandbox without build info).
     */
    buildLogs(principal: Principal, idOrName: string, follow: boolean): ReadableStream<Uint8Array> {
      const { id } = visible(principal, idOrName);
      const stored = repo.buildLogs(id);
      if (stored === undefined && !buildLogs.has(id)) throw new CoveError('INVALID_REQUEST', `Sandbox ${id} was not created from a Dockerfile: it has no build logs`);
      return buildLogs.stream(id, stored ?? '', follow);
    },

    /** Counts as activity now (SDK `refreshActivity`): the auto-stop and auto-pause timers start again. */
    refreshActivity(principal: Principal, idOrName: string): void {
      const { id } = visible(principal, idOrName);
      touched.set(id, Date.now());
      repo.touch(id);
    },

    /** Every sandbox record (the lifecycle scheduler reads them); one answering a request counts as active now. */
    records: (): SandboxRecord[] => {
      const now = new Date().toISOString();
      return repo.all().map((r) => (busy.has(r.id) ? { ...r, lastActivityAt: now } : r));
    },

    /**
     * Marks a sandbox busy for the length of one toolbox request; the function returned ends it (once), which
     * counts as activity too.
     */
    busyWith(id: string): () => void {
      busy.set(id, (busy.get(id) ?? 0) + 1);
      let done = false;
      return () => {
        if (done) return;
        done = true;
        const left = (busy.get(id) ?? 1) - 1;
        if (left > 0) busy.set(id, left);
        else busy.delete(id);
        recordActivity(id);
      };
    },

    /** Stops a sandbox because a timer said so. */
    stopByTimer: (id: string): Promise<SandboxDto> => service.stop(SYSTEM, id),
    /** Deletes a sandbox because a timer said so. */
    deleteByTimer: (id: string): Promise<SandboxDto> => service.delete(SYSTEM, id),

    /**
     * Changes what a sandbox may reach. A started sandbox gets the new rules before this returns (connections the
     * new policy refuses stop passing at once); a stopped one gets them at its next start.
     */
    updateNetworkSettings(principal: Principal, idOrName: string, req: UpdateNetworkSettingsRequest): Promise<SandboxDto> {
      const current = visible(principal, idOrName);
      const { id } = current;
      if (!networkFields(req, current)) throw new CoveError('INVALID_REQUEST', 'Give networkBlockAll, networkAllowList or domainAllowList');
      return serialized(id, async () => {
        const record = repo.get(id)!;
        const fields = networkFields(req, record)!;
        if (record.state === 'started' && record.ip && record.containerId) {
          try {
            await runtime.setEgress(record.containerId, record.ip, egressOf({ id, ...fields }));
            // The proxy variables name the outbound proxy only while no domain list chains to it transparently.
            if (record.outboundProxyUrl && !!record.domainAllowList !== !!fields.domainAllowList) {
              const vars = proxyEnv(record.outboundProxyUrl);
              await runtime.updateAgentEnv(record.ip, record.agentToken, fields.domainAllowList ? { unset: Object.keys(vars) } : { set: vars });
            }
          } catch (err) {
            throw new CoveError('SANDBOX_ERROR', `The network settings could not be applied: ${(err as Error).message}`);
          }
        }
        return toDto(repo.update(id, fields)!);
      });
    },

    /**
     * `PUT /sandbox/{id}/secrets` (SDK 0.218 `updateSecrets`): replaces the secrets mounted in a sandbox. A started one
     * gets the change at once: the egress proxy substitutes the new set, and processes started from now on see the new
     * variables (running ones keep their environment); removed variables are unset.
     */
    updateSecrets(principal: Principal, idOrName: string, req: UpdateSandboxSecretsRequest): Promise<SandboxDto> {
      const current = visible(principal, idOrName);
      const mounts = resolveSecrets(principal, req.secrets, current.env);
      if (!opts.secrets) {
        if (!mounts.length) return Promise.resolve(toDto(current));
        throw new CoveError('INVALID_REQUEST', 'secrets need the egress proxy, which this Cove server does not run');
      }
      const secrets = opts.secrets;
      return serialized(current.id, async () => {
        const record = repo.get(current.id)!;
        const before = secrets.mountsOf(record.id);
        secrets.mount(record.id, mounts);
        if (record.state === 'started' && record.ip && record.containerId) {
          try {
            await runtime.setEgress(record.containerId, record.ip, egressOf(record));
            const gone = before.map((m) => m.envName).filter((name) => !mounts.some((m) => m.envName === name));
            await runtime.updateAgentEnv(record.ip, record.agentToken, { set: secretEnv(record.id), ...(gone.length ? { unset: gone } : {}) });
          } catch (err) {
            throw new CoveError('SANDBOX_ERROR', `The secrets could not be applied: ${(err as Error).message}`);
          }
        }
        return toDto(repo.update(record.id, {})!);
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

    /**
     * What the egress services (egress/) know of the sandbox at a bridge address: its domains and networks, or
     * undefined when no sandbox of ours runs there (their answers to it are refusals).
     */
    egressAt(ip: string): EgressSandbox | undefined {
      const r = repo.findByIp(ip);
      if (!r) return undefined;
      if (r.networkBlockAll) return { id: r.id, domains: [], cidrs: [], secrets: [] };
      const domains = r.domainAllowList ? r.domainAllowList.split(',') : null;
      const cidrs = r.networkAllowList ? r.networkAllowList.split(',') : domains ? [] : null;
      return { id: r.id, domains, cidrs, secrets: opts.secrets?.substitutions(r.id) ?? [], ...(r.outboundProxyUrl ? { upstream: upstreamOf(r.outboundProxyUrl) } : {}) };
    },

    /** `GET /sandbox/{id}/egress-log`: what the sandbox connected to through the egress services, newest last. */
    egressLog(principal: Principal, idOrName: string, limit?: number): EgressLogResponse {
      const { id } = visible(principal, idOrName);
      if (!opts.egressLog) throw new CoveError('INVALID_REQUEST', 'This Cove server runs no egress proxy, so it keeps no egress log');
      return opts.egressLog.list(id, limit);
    },

    /** The sandbox a container belongs to, if any. */
    ofContainer: (containerId: string): SandboxRecord | undefined => repo.findByContainer(containerId),

    /** A container ended (an engine event): see containerGone. Containers of no sandbox are ignored. */
    async containerEnded(end: ContainerEnd): Promise<void> {
      const record = repo.findByContainer(end.containerId);
      if (record) await containerGone(record.id, end.containerId, end);
    },

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
     * a sandbox whose container vanished becomes an error, and states follow what the containers really do; no
     * sandbox whose container is not running keeps an address. Returns the containers that belong to the pool, for
     * it to adopt. `live`: while the server runs (after the engine's events were missed), only sandboxes found dead
     * change; operations under way and containers being started for them or the pool are left alone.
     */
    async reconcile(mode: { live?: boolean } = {}): Promise<{ poolContainers: Awaited<ReturnType<DockerRuntime['listManaged']>>; removed: string[] }> {
      const containers = (await runtime.listManaged()).filter((c) => c.labels[LABEL_INSTANCE] === opts.instance);
      const byId = new Map(containers.map((c) => [c.id, c]));
      const owned = new Set<string>();
      const gone: Promise<void>[] = [];
      for (const record of repo.all()) {
        if (!mode.live && (record.state === 'archiving' || record.state === 'restoring')) {
          const kept = await settleArchiving(record, record.containerId ? byId.get(record.containerId) : undefined);
          if (kept) owned.add(kept);
          continue;
        }
        // A delete cut short is finished: the caller asked for it, and the container may be half removed.
        if (!mode.live && record.state === 'destroying') {
          if (record.containerId) await runtime.remove(record.containerId).catch((err: Error) => log.error({ sandboxId: record.id, err: err.message }, 'could not remove the container of a deleted sandbox'));
          await opts.archives.delete(record.id);
          repo.remove(record.id);
          opts.onDeleted?.(record.id);
          continue;
        }
        // A restore that had finished but for deleting its archive.
        if (!mode.live && record.state !== 'archived' && opts.archives.has(record.id)) await opts.archives.delete(record.id);
        if (!record.containerId) {
          if (!mode.live && (record.state === 'creating' || record.state === 'starting')) markError(record.id, 'Cove stopped while the sandbox was starting');
          if (!mode.live && (record.state === 'pending_build' || record.state === 'building_snapshot')) {
            repo.update(record.id, { state: 'build_failed', errorReason: 'Cove restarted while the image was being built' });
          }
          continue;
        }
        owned.add(record.containerId);
        const container = byId.get(record.containerId);
        if (container?.state === 'paused' && (record.state === 'paused' || record.state === 'pausing')) {
          if (!mode.live) repo.update(record.id, { state: 'paused', ip: container.ip || record.ip });
        } else if (container?.state === 'running') {
          if (!mode.live) {
            repo.update(record.id, { state: 'started', ip: container.ip });
            // The kernel kept the rules while the server was down; say them again, in case the host lost them.
            await runtime.setEgress(container.id, container.ip, egressOf(record)).catch((err: Error) =>
              log.error({ sandboxId: record.id, err: err.message }, 'could not apply the egress policy of a running sandbox'),
            );
          }
        } else if (record.state === 'started' || ((record.state === 'stopped' || record.state === 'error') && !container)) {
          gone.push(containerGone(record.id, record.containerId));
        } else if (!mode.live) {
          // The server stopped in the middle of an operation: the container says how far it got.
          if (!container) markError(record.id, 'Its container was removed outside Cove');
          repo.update(record.id, { ...(container && record.state !== 'error' ? { state: 'stopped' as const } : {}), ip: null });
        }
      }
      await Promise.all(gone);
      const poolContainers = containers.filter((c) => !owned.has(c.id) && c.labels[LABEL_POOL]);
      const removed: string[] = [];
      if (mode.live) return { poolContainers, removed };
      for (const c of containers) {
        if (owned.has(c.id) || c.labels[LABEL_POOL]) continue;
        await runtime.remove(c.id).catch(() => {});
        removed.push(c.id);
      }
      return { poolContainers, removed };
    },
  };
  return service;
}
export type SandboxService = ReturnType<typeof createSandboxService>;
