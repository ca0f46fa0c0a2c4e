import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { CoveError } from '../../../lib/errors';
import type { CreateSandboxSnapshotRequest, ForkSandboxRequest, SandboxDto } from '../../../wire/sandbox';
import type { Principal } from '../auth/api-keys';
import type { QuotaService } from '../quotas/service';
import { LABEL_COMMITTED_BY, LABEL_FORK, LABEL_SNAPSHOT_OWNER, LABEL_USER, type DockerRuntime } from '../runtime/types';
import type { SandboxRecord } from '../sandboxes/repo';
import { DEFAULTS, type SandboxService } from '../sandboxes/service';
import type { SnapshotCatalog } from './catalog';
import { FORK_REPOSITORY, parseSnapshotName } from './names';

interface SnapshotServiceOptions {
  sandboxes: SandboxService;
  runtime: DockerRuntime;
  quotas: QuotaService;
  /** This server's instance id: the images it commits carry it, so servers sharing an engine collect only their own. */
  instance: string;
  /** Daytona's snapshot records: a snapshot made here is listed there, under the name it was given. */
  catalog?: SnapshotCatalog;
  log: Logger;
}

/**
 * Copies of a sandbox's file system, as local images made with the engine's commit: snapshots (an image named as the
 * caller says, which creates accept as `snapshot`) and forks (a new sandbox made from an image of the source's file
 * system, kept while the fork exists). A copy holds what the sandbox wrote and the image it was made from, never
 * Cove's mounts (the agent, its token); see runtime/commit-config.ts for the image's configuration. Each image is
 * labelled with the API key it belongs to, and only that key (or an admin key) creates sandboxes of it.
 */
export function createSnapshotService(opts: SnapshotServiceOptions) {
  const { sandboxes, runtime, log } = opts;
  /** Fork images committed whose sandbox is not recorded yet: only that fork may use one, and none is collected. */
  const pendingForks = new Set<string>();
  /** Snapshots being made, by image name: one at a time per name, so two keys cannot both take a free one. */
  const making = new Map<string, Promise<unknown>>();
  /** Commits under way, and how many were ever started: an image is nameless for a moment between commit and tag. */
  const commits = { running: 0, started: 0 };

  function oneAtATime<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const next = (making.get(name) ?? Promise.resolve()).catch(() => {}).then(fn);
    making.set(name, next);
    next.finally(() => making.get(name) === next && making.delete(name)).catch(() => {});
    return next;
  }

  async function commit(record: SandboxRecord & { containerId: string }, repo: string, tag: string, labels: Record<string, string>): Promise<string> {
    commits.running++;
    commits.started++;
    try {
      const all = { ...labels, [LABEL_COMMITTED_BY]: opts.instance, ...(record.user ? { [LABEL_USER]: record.user } : {}) };
      const { imageId } = await runtime.commit(record.containerId, { repo, tag, labels: all });
      return imageId;
    } catch (err) {
      throw new CoveError('SANDBOX_ERROR', `The file system of sandbox ${record.id} could not be copied: ${(err as Error).message}`);
    } finally {
      commits.running--;
    }
  }

  async function removeImage(image: string): Promise<void> {
    const removed = await runtime.removeImage(image).catch((err: Error) => {
      log.error({ image, err: err.message }, 'could not remove an image Cove committed');
      return true;
    });
    // Kept by the engine: a container runs from it, or an image was committed on top of it (a snapshot of a fork).
    if (!removed) log.debug({ image }, 'an image Cove committed stays while it is in use');
  }

  return {
    /**
     * Forks a sandbox: a new started sandbox, owned by the caller and within its quotas, made from a copy of the
     * source's file system as it is now (started, paused or stopped; a started one is paused for the copy), with its
     * user, resources, environment, labels, network settings and timers (what Daytona copies); independent from then
     * on. The source keeps its state.
     */
    async fork(principal: Principal, idOrName: string, req: ForkSandboxRequest): Promise<SandboxDto> {
      const source = sandboxes.get(principal, idOrName);
      // Refused before anything is copied; create checks both again when it records the fork.
      if (req.name && sandboxes.records().some((r) => r.ownerKeyId === principal.keyId && r.name === req.name)) {
        throw new CoveError('SANDBOX_EXISTS', `A sandbox named ${req.name} already exists`);
      }
      opts.quotas.admit(principal.keyId, { cpu: source.cpu, memory: source.memory, disk: source.disk }, () => undefined);
      const tag = randomUUID();
      const image = `${FORK_REPOSITORY}:${tag}`;
      pendingForks.add(image);
      try {
        const from = await sandboxes.copying(principal, source.id, 'forking', async (record) => {
          await commit(record, FORK_REPOSITORY, tag, { [LABEL_FORK]: '1', [LABEL_SNAPSHOT_OWNER]: principal.keyId });
          return record;
        });
        try {
          return await sandboxes.create(principal, {
            name: req.name,
            image,
            user: from.user || undefined,
            env: from.env,
            labels: from.labels,
            cpu: from.cpu,
            memory: from.memory,
            // Left out when it is the default: a server that cannot enforce disk refuses creates that name one.
            disk: from.disk === DEFAULTS.disk ? undefined : from.disk,
            ...(from.networkBlockAll ? { networkBlockAll: true } : from.networkAllowList ? { networkAllowList: from.networkAllowList } : {}),
            autoStopInterval: from.autoStopInterval,
            autoArchiveInterval: from.autoArchiveInterval,
            autoDeleteInterval: from.autoDeleteInterval,
          });
        } catch (err) {
          await removeImage(image);
          throw err;
        }
      } finally {
        pendingForks.delete(image);
      }
    },

    /**
     * Makes a sandbox's file system (started, paused or stopped; a started one is paused for the copy) the snapshot
     * `req.name`: a local image that creates accept as `snapshot`, labelled with the caller's key. A name that is not
     * an image name, or names an image that is not a snapshot of the caller's, is refused; a snapshot of the caller's
     * of that name is replaced (the old image goes once no sandbox runs from it). The sandbox keeps its state.
     */
    async create(principal: Principal, idOrName: string, req: CreateSandboxSnapshotRequest): Promise<SandboxDto> {
      const source = sandboxes.get(principal, idOrName);
      if (req.includeMemory) {
        throw new CoveError('INVALID_REQUEST', "includeMemory is not supported: Cove's sandboxes are containers, whose snapshots hold their file system only");
      }
      const { repository, tag } = parseSnapshotName(req.name);
      const name = `${repository}:${tag}`;
      opts.catalog?.checkCopyName(principal, req.name);
      return oneAtATime(name, async () => {
        const existing = await runtime.imageInfo(name);
        if (existing && existing.labels[LABEL_SNAPSHOT_OWNER] !== principal.keyId) {
          throw new CoveError('INVALID_REQUEST', `An image named ${name} already exists on this host and is not a snapshot of this API key; choose another name`);
        }
        const imageId = await sandboxes.copying(principal, source.id, 'snapshotting', (record) =>
          commit(record, repository, tag, { [LABEL_SNAPSHOT_OWNER]: principal.keyId }),
        );
        if (existing && existing.id !== imageId) await removeImage(existing.id);
        opts.catalog?.recordCopy(principal, req.name, name, source.id, (await runtime.imageInfo(imageId).catch(() => undefined))?.size);
        log.info({ sandboxId: source.id, snapshot: name }, 'snapshot created');
        return sandboxes.get(principal, source.id);
      });
    },

    /**
     * Whether a principal may create sandboxes of a local image: any image that is no key's, a snapshot of its own
     * (any, for an admin key), a fork image only while its fork is being made.
     */
    async mayUse(principal: Principal, image: string): Promise<boolean> {
      const labels = (await runtime.imageInfo(image))?.labels ?? {};
      if (labels[LABEL_FORK]) return pendingForks.has(image);
      const owner = labels[LABEL_SNAPSHOT_OWNER] ?? opts.catalog?.builtFor(image);
      return !owner || principal.admin || owner === principal.keyId;
    },

    /**
     * Removes what this server committed and nothing uses any more: the images of deleted forks, and replaced
     * snapshots (nameless) that sandboxes no longer run from. An image a container or another image needs stays.
     */
    async collectImages(): Promise<void> {
      const started = commits.started;
      const [forks, nameless] = await Promise.all([
        runtime.imagesLabelled({ [LABEL_COMMITTED_BY]: opts.instance, [LABEL_FORK]: '1' }),
        runtime.imagesLabelled({ [LABEL_COMMITTED_BY]: opts.instance }, { dangling: true }),
      ]);
      // Decided at one moment: a fork recorded after it was pending then.
      const used = new Set(sandboxes.records().map((r) => r.image));
      const unused = forks.flatMap((i) => i.tags).filter((t) => !used.has(t) && !pendingForks.has(t));
      // A commit under way while the list was made may have been listed before its tag.
      if (commits.running === 0 && commits.started === started) unused.push(...nameless.map((i) => i.id));
      for (const image of unused) await removeImage(image);
    },
  };
}
export type SnapshotService = ReturnType<typeof createSnapshotService>;
