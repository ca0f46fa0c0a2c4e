import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { CoveError } from '../../../lib/errors';
import type { ListVolumesQuery, SandboxVolume, VolumeDto, VolumeState } from '../../../wire/volumes';
import type { Principal } from '../auth/api-keys';
import { LABEL_MANAGED, RuntimeError, type DockerRuntime, type VolumeMount } from '../runtime/types';
import { now, type Db } from '../store/db';
import { mountsProblem, volumeNameProblem } from './rules';

/** Label naming the volume (its id) a Docker volume holds. */
const LABEL_VOLUME = 'dev.cove.volume';

/** The Docker volume of a Cove volume. */
const dockerVolumeName = (id: string): string => `cove-vol-${id}`;
/** Sandboxes whose mount rows are kept in memory at most (see mountRows). */
const MAX_CACHED = 10_000;

interface VolumeServiceOptions {
  db: Db;
  runtime: DockerRuntime;
  /** Labels every Docker volume (and the container that prepares it) of this server carries: its instance. */
  labels: Record<string, string>;
  /** The image whose `chmod` makes a new volume's root writable (the default sandbox image, always present). */
  image: string;
  /** A sandbox that exists, by id (a volume it mounts cannot be deleted). */
  sandboxOf: (id: string) => { id: string; name: string } | undefined;
  log: Logger;
}

interface Row {
  id: string;
  name: string;
  owner_key_id: string;
  state: VolumeState;
  error_reason: string | null;
  created_at: string;
  updated_at: string;
  last_used_at: string | null;
}

const toDto = (r: Row): VolumeDto => ({
  id: r.id,
  name: r.name,
  organizationId: r.owner_key_id,
  state: r.state,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastUsedAt: r.last_used_at,
  errorReason: r.error_reason,
});

/**
 * Volumes (Daytona's `/volumes`): named Docker volumes owned by API keys (admin keys see all), names unique per key,
 * mounted read-write into sandboxes at create and kept by them through stop, start, archive and restore. A volume
 * that any sandbox mounts, whatever its state, cannot be deleted; its data outlives the sandboxes. Knows nothing of
 * HTTP.
 */
export function createVolumeService(opts: VolumeServiceOptions) {
  const { db, runtime, log } = opts;
  const q = {
    get: db.prepare<[string], Row>('SELECT * FROM volumes WHERE id = ?'),
    byName: db.prepare<[string, string], Row>('SELECT * FROM volumes WHERE owner_key_id = ? AND name = ?'),
    withName: db.prepare<[string], Row>('SELECT * FROM volumes WHERE name = ? LIMIT 2'),
    all: db.prepare<[], Row>('SELECT * FROM volumes ORDER BY created_at, id'),
    owned: db.prepare<[string], Row>('SELECT * FROM volumes WHERE owner_key_id = ? ORDER BY created_at, id'),
    insert: db.prepare(
      'INSERT INTO volumes (id, name, owner_key_id, state, error_reason, created_at, updated_at, last_used_at) VALUES (@id, @name, @owner_key_id, @state, NULL, @created_at, @created_at, NULL)',
    ),
    setState: db.prepare<[VolumeState, string, string]>('UPDATE volumes SET state = ?, updated_at = ? WHERE id = ?'),
    used: db.prepare<[string, string]>('UPDATE volumes SET last_used_at = ? WHERE id = ?'),
    remove: db.prepare<[string]>('DELETE FROM volumes WHERE id = ?'),
    mountsOf: db.prepare<[string], { volume_id: string; mount_path: string }>('SELECT volume_id, mount_path FROM sandbox_volumes WHERE sandbox_id = ? ORDER BY position'),
    mount: db.prepare<[string, number, string, string]>('INSERT INTO sandbox_volumes (sandbox_id, position, volume_id, mount_path) VALUES (?, ?, ?, ?)'),
    mountersOf: db.prepare<[string], { sandbox_id: string }>('SELECT DISTINCT sandbox_id FROM sandbox_volumes WHERE volume_id = ?'),
    mounters: db.prepare<[], { sandbox_id: string }>('SELECT DISTINCT sandbox_id FROM sandbox_volumes'),
    forget: db.prepare<[string]>('DELETE FROM sandbox_volumes WHERE sandbox_id = ?'),
    forgetVolume: db.prepare<[string]>('DELETE FROM sandbox_volumes WHERE volume_id = ?'),
  };

  /**
   * Each sandbox's mount rows as last read: every DTO shows them, and this service is the only writer of the table,
   * so any write empties the map. Bounded: emptied too when it holds MAX_CACHED sandboxes.
   */
  const mountRows = new Map<string, { volume_id: string; mount_path: string }[]>();
  const rowsOf = (sandboxId: string) => {
    let rows = mountRows.get(sandboxId);
    if (!rows) {
      rows = q.mountsOf.all(sandboxId);
      if (mountRows.size >= MAX_CACHED) mountRows.clear();
      mountRows.set(sandboxId, rows);
    }
    return rows;
  };
  const changed = <A extends unknown[]>(stmt: { run(...args: A): unknown }) => (...args: A) => {
    stmt.run(...args);
    mountRows.clear();
  };
  const addMount = changed(q.mount);
  const forgetMounts = changed(q.forget);
  const forgetVolumeMounts = changed(q.forgetVolume);

  const mayUse = (principal: Principal, r: Row): boolean => principal.admin || r.owner_key_id === principal.keyId;

  /** The volume a principal may see by id or name, or undefined (others' volumes are as absent as missing ones). */
  function find(principal: Principal, idOrName: string): Row | undefined {
    const byId = q.get.get(idOrName);
    if (byId && mayUse(principal, byId)) return byId;
    const own = q.byName.get(principal.keyId, idOrName);
    if (own) return own;
    if (principal.admin) {
      const named = q.withName.all(idOrName);
      if (named.length > 1) throw new CoveError('CONFLICT', `Several volumes of different API keys are named ${idOrName}; ask for the one you mean by its id`);
      return named[0];
    }
    return undefined;
  }

  function visible(principal: Principal, idOrName: string): Row {
    const row = find(principal, idOrName);
    if (!row) throw new CoveError('NOT_FOUND', `Volume ${idOrName.slice(0, 200)} not found`);
    return row;
  }

  /** The sandboxes that mount a volume now (rows of sandboxes that are gone are dropped on the way). */
  function mountersOf(volumeId: string): { id: string; name: string }[] {
    const out: { id: string; name: string }[] = [];
    for (const { sandbox_id } of q.mountersOf.all(volumeId)) {
      const sandbox = opts.sandboxOf(sandbox_id);
      if (sandbox) out.push(sandbox);
      else forgetMounts(sandbox_id);
    }
    return out;
  }

  /** A runtime failure as the caller sees it: 503 while the engine is away, else the engine's reason. */
  function failed(err: unknown, what: string): CoveError {
    const message = (err as Error).message;
    if (err instanceof RuntimeError && err.code === 'DOCKER_UNAVAILABLE') {
      return new CoveError('RUNTIME_UNAVAILABLE', `The volume could not be ${what} now: the Docker engine does not answer; try again once it is back`, message);
    }
    if (err instanceof RuntimeError && err.code === 'CONFLICT') return new CoveError('CONFLICT', `The volume could not be ${what}: ${message}`);
    return new CoveError('INTERNAL_ERROR', `The volume could not be ${what}: ${message}`, (err as Error).stack);
  }

  return {
    /** Creates a volume; answers once its Docker volume exists and is writable (`ready`). */
    async create(principal: Principal, name: string): Promise<VolumeDto> {
      const problem = volumeNameProblem(name);
      if (problem) throw new CoveError('INVALID_REQUEST', `Invalid volume name ${JSON.stringify(name.slice(0, 100))}: ${problem}`);
      const id = randomUUID();
      try {
        q.insert.run({ id, name, owner_key_id: principal.keyId, state: 'creating', created_at: now() });
      } catch (err) {
        if (/UNIQUE/.test((err as Error).message)) throw new CoveError('CONFLICT', `A volume named ${name} already exists`);
        throw err;
      }
      try {
        await runtime.createVolume(dockerVolumeName(id), { ...opts.labels, [LABEL_VOLUME]: id }, opts.image);
      } catch (err) {
        q.remove.run(id);
        throw failed(err, 'created');
      }
      q.setState.run('ready', now(), id);
      log.info({ volumeId: id }, 'volume created');
      return toDto(q.get.get(id)!);
    },

    /** The volumes a principal may see: its own, or every one for an admin key. */
    list(principal: Principal, query: ListVolumesQuery): VolumeDto[] {
      if (query.includeDeleted) throw new CoveError('INVALID_REQUEST', 'includeDeleted=true is not supported: Cove forgets a volume once it is deleted');
      return (principal.admin ? q.all.all() : q.owned.all(principal.keyId)).map(toDto);
    },

    get: (principal: Principal, idOrName: string): VolumeDto => toDto(visible(principal, idOrName)),

    /** Deletes a volume no sandbox mounts (stopped and archived ones count): its Docker volume and data go. */
    async delete(principal: Principal, idOrName: string): Promise<void> {
      const row = visible(principal, idOrName);
      if (row.state !== 'ready' && row.state !== 'error') throw new CoveError('CONFLICT', `Volume ${row.name} is ${row.state}; try again once it is ready`);
      const users = mountersOf(row.id);
      if (users.length) {
        const named = users.map((s) => (s.name === s.id ? s.id : `${s.name} (${s.id})`)).join(', ');
        throw new CoveError('CONFLICT', `Volume ${row.name} is in use by ${users.length === 1 ? 'sandbox' : 'sandboxes'} ${named}: delete ${users.length === 1 ? 'it' : 'them'} first (stopped and archived sandboxes keep their volumes)`);
      }
      q.setState.run('deleting', now(), row.id);
      try {
        await runtime.removeVolume(dockerVolumeName(row.id));
      } catch (err) {
        q.setState.run(row.state, now(), row.id);
        throw failed(err, 'deleted');
      }
      q.remove.run(row.id);
      forgetVolumeMounts(row.id);
      log.info({ volumeId: row.id }, 'volume deleted');
    },

    /**
     * The `volumes` of a create, checked (see rules.ts) and resolved (a name becomes its id): each one a `ready` volume
     * the principal may use. Synchronous, so that the create inserts the sandbox and its mounts (attach) in the same
     * turn: no delete can come between.
     */
    resolve(principal: Principal, requested: SandboxVolume[]): SandboxVolume[] {
      const problem = mountsProblem(requested);
      if (problem) throw new CoveError('INVALID_REQUEST', problem);
      return requested.map((m, i) => {
        const row = find(principal, m.volumeId);
        if (!row) throw new CoveError('INVALID_REQUEST', `volumes[${i}].volumeId: volume ${m.volumeId.slice(0, 200)} not found`);
        if (row.state !== 'ready') throw new CoveError('INVALID_REQUEST', `volumes[${i}]: volume ${row.name} is ${row.state}, not ready`);
        return { volumeId: row.id, mountPath: m.mountPath };
      });
    },

    /** Records a new sandbox's mounts (from resolve). */
    attach(sandboxId: string, mounts: SandboxVolume[]): void {
      const time = now();
      db.transaction(() => {
        for (const [i, m] of mounts.entries()) {
          addMount(sandboxId, i, m.volumeId, m.mountPath);
          q.used.run(time, m.volumeId);
        }
      })();
    },

    /** A sandbox's volumes as its DTO shows them. */
    of: (sandboxId: string): SandboxVolume[] => rowsOf(sandboxId).map((r) => ({ volumeId: r.volume_id, mountPath: r.mount_path })),

    /** A sandbox's volumes as its container mounts them. */
    mountsOf: (sandboxId: string): VolumeMount[] => rowsOf(sandboxId).map((r) => ({ volume: dockerVolumeName(r.volume_id), target: r.mount_path })),

    /** A sandbox is deleted: its volumes are free of it. */
    forget(sandboxId: string): void {
      forgetMounts(sandboxId);
    },

    /**
     * After a restart: a create or delete the server was in the middle of is finished (a volume being created is
     * dropped, one being deleted goes), Docker volumes of this server that no volume owns are removed, and mounts of
     * sandboxes that are gone are forgotten.
     */
    async settle(): Promise<void> {
      for (const row of q.all.all()) {
        if (row.state !== 'creating' && row.state !== 'deleting') continue;
        try {
          await runtime.removeVolume(dockerVolumeName(row.id));
          q.remove.run(row.id);
          forgetVolumeMounts(row.id);
        } catch (err) {
          q.setState.run('ready', now(), row.id);
          log.error({ volumeId: row.id, err: (err as Error).message }, 'could not remove a volume whose create or delete a restart cut short');
        }
      }
      for (const name of await runtime.volumesLabelled({ ...opts.labels, [LABEL_MANAGED]: '1' })) {
        const id = /^cove-vol-(.+)$/.exec(name)?.[1];
        if (id && !q.get.get(id)) await runtime.removeVolume(name).catch((err: Error) => log.error({ volume: name, err: err.message }, 'could not remove a volume no record owns'));
      }
      for (const { sandbox_id } of q.mounters.all()) if (!opts.sandboxOf(sandbox_id)) forgetMounts(sandbox_id);
    },
  };
}
export type VolumeService = ReturnType<typeof createVolumeService>;
