import { unexpected } from '../../../lib/guard';
import type { SandboxState } from '../../../wire/sandbox';
import type { Db } from '../store/db';
import { now, statementCache } from '../store/db';

/** A sandbox as Cove stores it. */
export interface SandboxRecord {
  id: string;
  name: string;
  ownerKeyId: string;
  state: SandboxState;
  image: string;
  /** The name of the snapshot (snapshots/catalog.ts) it was made from; null when made from an image. */
  snapshot: string | null;
  /** What runs as its `entrypoint` session instead of its image's ENTRYPOINT and CMD (its snapshot's); null: the image's. */
  entrypoint: string[] | null;
  user: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  public: boolean;
  /** Egress: every outbound connection refused. */
  networkBlockAll: boolean;
  /** Egress: only these IPv4 networks (normalised, comma-separated); null for none. Ignored under networkBlockAll. */
  networkAllowList: string | null;
  /** Egress: host names and `*.` wildcards (normalised, comma-separated) reached through Cove's egress proxy; null for none. */
  domainAllowList: string | null;
  /** Set as HTTP(S)_PROXY in its containers' environment; null for none. */
  outboundProxyUrl: string | null;
  cpu: number;
  memory: number;
  disk: number;
  containerId: string | null;
  agentToken: string;
  ip: string | null;
  errorReason: string | null;
  autoStopInterval: number;
  autoArchiveInterval: number;
  autoDeleteInterval: number;
  /** Minutes without activity before a started sandbox is paused; 0: never. */
  autoPauseInterval: number;
  /** When the sandbox is destroyed whatever its state (a ttl), ISO 8601; null: never. */
  autoDestroyAt: string | null;
  /** When `state` last changed (auto-delete and auto-archive count from a stop); null before the first change. */
  stateChangedAt: string | null;
  createdAt: string;
  updatedAt: string;
  lastActivityAt: string;
}

interface Row {
  id: string;
  name: string;
  owner_key_id: string;
  state: SandboxState;
  image: string;
  snapshot: string | null;
  entrypoint: string | null;
  user: string;
  env: string;
  labels: string;
  public: number;
  network_block_all: number;
  network_allow_list: string | null;
  domain_allow_list: string | null;
  outbound_proxy_url: string | null;
  cpu: number;
  memory: number;
  disk: number;
  container_id: string | null;
  agent_token: string;
  ip: string | null;
  error_reason: string | null;
  auto_stop_interval: number;
  auto_archive_interval: number;
  auto_delete_interval: number;
  auto_pause_interval: number;
  auto_destroy_at: string | null;
  state_changed_at: string | null;
  created_at: string;
  updated_at: string;
  last_activity_at: string;
}

const fromRow = (r: Row): SandboxRecord => ({
  id: r.id,
  name: r.name,
  ownerKeyId: r.owner_key_id,
  state: r.state,
  image: r.image,
  snapshot: r.snapshot ?? null,
  entrypoint: r.entrypoint ? (JSON.parse(r.entrypoint) as string[]) : null,
  user: r.user,
  env: JSON.parse(r.env) as Record<string, string>,
  labels: JSON.parse(r.labels) as Record<string, string>,
  public: r.public === 1,
  networkBlockAll: r.network_block_all === 1,
  networkAllowList: r.network_allow_list,
  domainAllowList: r.domain_allow_list ?? null,
  outboundProxyUrl: r.outbound_proxy_url ?? null,
  cpu: r.cpu,
  memory: r.memory,
  disk: r.disk,
  containerId: r.container_id,
  agentToken: r.agent_token,
  ip: r.ip,
  errorReason: r.error_reason,
  autoStopInterval: r.auto_stop_interval,
  autoArchiveInterval: r.auto_archive_interval,
  autoDeleteInterval: r.auto_delete_interval,
  autoPauseInterval: r.auto_pause_interval,
  autoDestroyAt: r.auto_destroy_at,
  stateChangedAt: r.state_changed_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastActivityAt: r.last_activity_at,
});

const COLUMNS: Record<keyof SandboxRecord, string> = {
  id: 'id',
  name: 'name',
  ownerKeyId: 'owner_key_id',
  state: 'state',
  image: 'image',
  snapshot: 'snapshot',
  entrypoint: 'entrypoint',
  user: 'user',
  env: 'env',
  labels: 'labels',
  public: 'public',
  networkBlockAll: 'network_block_all',
  networkAllowList: 'network_allow_list',
  domainAllowList: 'domain_allow_list',
  outboundProxyUrl: 'outbound_proxy_url',
  cpu: 'cpu',
  memory: 'memory',
  disk: 'disk',
  containerId: 'container_id',
  agentToken: 'agent_token',
  ip: 'ip',
  errorReason: 'error_reason',
  autoStopInterval: 'auto_stop_interval',
  autoArchiveInterval: 'auto_archive_interval',
  autoDeleteInterval: 'auto_delete_interval',
  autoPauseInterval: 'auto_pause_interval',
  autoDestroyAt: 'auto_destroy_at',
  stateChangedAt: 'state_changed_at',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  lastActivityAt: 'last_activity_at',
};

/**
 * A change of a sandbox's life as the repo wrote it: inserted, its state changed (`previousState` before the write), or
 * removed (`record` as it was last). Updates that leave the state as it was are not changes here.
 */
export type SandboxChange =
  | { kind: 'inserted'; record: SandboxRecord }
  | { kind: 'state'; record: SandboxRecord; previousState: SandboxState }
  | { kind: 'removed'; record: SandboxRecord };

const toColumn = (key: keyof SandboxRecord, value: unknown): unknown =>
  key === 'env' || key === 'labels' || (key === 'entrypoint' && value !== null) ? JSON.stringify(value) : key === 'public' || key === 'networkBlockAll' ? (value ? 1 : 0) : value;

/**
 * Sandboxes in SQLite. Every write is one statement, so each is atomic. Records read by id are kept in memory:
 * this repo is the only writer of the table, so it keeps them current, and the toolbox and preview paths look a
 * sandbox up on every request. Callers must not mutate returned records.
 */
export function createSandboxRepo(db: Db) {
  const statement = statementCache(db);
  const byId = db.prepare<[string], Row>('SELECT * FROM sandboxes WHERE id = ?');
  const cache = new Map<string, SandboxRecord>();
  const load = (id: string): SandboxRecord | undefined => {
    const row = byId.get(id);
    const record = row && fromRow(row);
    if (record) cache.set(id, record);
    else cache.delete(id);
    return record;
  };
  const byOwnerAndName = db.prepare<[string, string], Row>('SELECT * FROM sandboxes WHERE owner_key_id = ? AND name = ?');
  const byName = db.prepare<[string, number], Row>('SELECT * FROM sandboxes WHERE name = ? ORDER BY created_at, id LIMIT ?');
  const byContainer = db.prepare<[string], { id: string }>('SELECT id FROM sandboxes WHERE container_id = ?');
  const byIp = db.prepare<[string], Row>("SELECT * FROM sandboxes WHERE ip = ? AND state IN ('started', 'paused', 'resuming', 'stopping')");
  const listeners = new Set<(change: SandboxChange) => void>();
  /** Told after the write; a listener that throws is reported and never fails the write that was made. */
  const notify = (change: SandboxChange): void => {
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (err) {
        unexpected(err, 'sandbox change listener');
      }
    }
  };
  return {
    insert(record: SandboxRecord): void {
      const keys = Object.keys(COLUMNS) as (keyof SandboxRecord)[];
      statement(`INSERT INTO sandboxes (${keys.map((k) => COLUMNS[k]).join(', ')}) VALUES (${keys.map(() => '?').join(', ')})`).run(
        ...keys.map((k) => toColumn(k, record[k])),
      );
      notify({ kind: 'inserted', record });
    },
    /** Calls `listener` after every insert, state change and removal (state events to SDKs); returns its removal. */
    onChange(listener: (change: SandboxChange) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get: (id: string): SandboxRecord | undefined => cache.get(id) ?? load(id),
    /** The sandbox of one owner with this name (names are unique per owner). */
    findByName(ownerKeyId: string, name: string): SandboxRecord | undefined {
      const row = byOwnerAndName.get(ownerKeyId, name);
      return row && (cache.get(row.id) ?? load(row.id));
    },
    /** Sandboxes of any owner with this name, oldest first, at most `limit`. */
    withName: (name: string, limit: number): SandboxRecord[] => byName.all(name, limit).map((row) => cache.get(row.id) ?? load(row.id)!),
    nameTaken: (ownerKeyId: string, name: string): boolean => !!byOwnerAndName.get(ownerKeyId, name),
    /** The sandbox whose container this is (a container belongs to one sandbox at most). */
    findByContainer(containerId: string): SandboxRecord | undefined {
      const row = byContainer.get(containerId);
      return row && (cache.get(row.id) ?? load(row.id));
    },
    /** The sandbox running (or paused) at this address on Cove's bridge: the egress services' lookup. */
    findByIp(ip: string): SandboxRecord | undefined {
      const row = byIp.get(ip);
      return row && (cache.get(row.id) ?? load(row.id));
    },
    /** Updates the given fields (and updatedAt; stateChangedAt when the state changes, unless given); returns the new record. */
    update(id: string, fields: Partial<SandboxRecord>): SandboxRecord | undefined {
      const time = now();
      const previousState = fields.state === undefined ? undefined : (cache.get(id) ?? load(id))?.state;
      const changed = fields.state !== undefined && fields.state !== previousState ? { stateChangedAt: time } : {};
      const entries = Object.entries({ ...changed, ...fields, updatedAt: time }) as [keyof SandboxRecord, unknown][];
      statement(`UPDATE sandboxes SET ${entries.map(([k]) => `${COLUMNS[k]} = ?`).join(', ')} WHERE id = ?`).run(
        ...entries.map(([k, v]) => toColumn(k, v)),
        id,
      );
      const record = load(id);
      if (record && previousState !== undefined && record.state !== previousState) notify({ kind: 'state', record, previousState });
      return record;
    },
    touch(id: string): void {
      const time = now();
      statement('UPDATE sandboxes SET last_activity_at = ? WHERE id = ?').run(time, id);
      const cached = cache.get(id);
      if (cached) cache.set(id, { ...cached, lastActivityAt: time });
    },
    /** Records the build logs of a sandbox created from a Dockerfile (`''` while it builds). */
    setBuildLogs(id: string, logs: string): void {
      statement('INSERT INTO sandbox_build_logs (sandbox_id, logs) VALUES (?, ?) ON CONFLICT (sandbox_id) DO UPDATE SET logs = excluded.logs').run(id, logs);
    },
    /** The stored build logs of a sandbox; undefined for one not created from a Dockerfile. */
    buildLogs: (id: string): string | undefined => statement<[string], { logs: string }>('SELECT logs FROM sandbox_build_logs WHERE sandbox_id = ?').get(id)?.logs,
    remove(id: string): void {
      const record = cache.get(id) ?? load(id);
      statement('DELETE FROM sandbox_build_logs WHERE sandbox_id = ?').run(id);
      statement('DELETE FROM sandboxes WHERE id = ?').run(id);
      cache.delete(id);
      if (record) notify({ kind: 'removed', record });
    },
    /** Sandboxes ordered by creation, after `cursor` (an id), optionally of one owner. */
    list(opts: { ownerKeyId?: string; after?: string; limit: number }): SandboxRecord[] {
      const where: string[] = [];
      const args: unknown[] = [];
      if (opts.ownerKeyId) {
        where.push('owner_key_id = ?');
        args.push(opts.ownerKeyId);
      }
      if (opts.after) {
        where.push('(created_at, id) > (SELECT created_at, id FROM sandboxes WHERE id = ?)');
        args.push(opts.after);
      }
      const sql = `SELECT * FROM sandboxes ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id LIMIT ?`;
      return statement<unknown[], Row>(sql).all(...args, opts.limit).map(fromRow);
    },
    all: (): SandboxRecord[] => statement<[], Row>('SELECT * FROM sandboxes').all().map(fromRow),
  };
}
export type SandboxRepo = ReturnType<typeof createSandboxRepo>;
