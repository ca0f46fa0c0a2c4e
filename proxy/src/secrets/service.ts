import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { CoveError } from '../../../lib/errors';
import { isEnvName, NAME_RULE } from '../../../wire/env';
import type { CreateSecretRequest, ListSecretsPageQuery, ListSecretsPageResponse, SecretDto, UpdateSecretRequest } from '../../../wire/secrets';
import type { Principal } from '../auth/api-keys';
import { HostPatternError, parseHostPattern } from '../egress/domains';
import type { Substitution } from '../egress/types';
import { now, type Db } from '../store/db';
import { open, seal } from './crypto';

interface Row {
  id: string;
  name: string;
  owner_key_id: string;
  description: string | null;
  hosts: string;
  value: string;
  created_at: string;
  updated_at: string;
}

/** A secret mounted in a sandbox: the variable that holds its placeholder there. */
export interface SecretMount {
  envName: string;
  secretId: string;
  name: string;
  placeholder: string;
}

/** Secrets one API key may hold. */
const MAX_PER_KEY = 500;
/** Host patterns one secret may name. */
const MAX_HOSTS = 100;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

/** What a sandbox sees in place of the value: opaque, and the same length for every secret (none is a prefix of another). */
const placeholderOf = (id: string): string => `dtn_secret_${id.replace(/-/g, '')}`;

const hostsOf = (r: Row): string[] => JSON.parse(r.hosts) as string[];

const toDto = (r: Row): SecretDto => ({
  id: r.id,
  name: r.name,
  ...(r.description ? { description: r.description } : {}),
  placeholder: placeholderOf(r.id),
  hosts: hostsOf(r),
  organizationId: r.owner_key_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

function checkedHosts(hosts: string[]): string[] {
  const out: string[] = [];
  try {
    for (const [i, host] of hosts.entries()) {
      const pattern = parseHostPattern(host, `hosts[${i}]`);
      if (!out.includes(pattern)) out.push(pattern);
    }
  } catch (err) {
    if (err instanceof HostPatternError) throw new CoveError('INVALID_REQUEST', err.message);
    throw err;
  }
  if (out.length > MAX_HOSTS) throw new CoveError('INVALID_REQUEST', `hosts: at most ${MAX_HOSTS} host names per secret`);
  return out;
}

function checkedValue(value: string): string {
  if (!value) throw new CoveError('INVALID_REQUEST', 'value: a secret needs a value');
  if (value.includes('\0')) throw new CoveError('INVALID_REQUEST', 'value: a secret cannot contain a NUL byte');
  return value;
}

/** Fields `GET /secret/paginated` sorts by, read from a row. */
const SORT_KEYS = { name: (r: Row) => r.name.toLowerCase(), createdAt: (r: Row) => r.created_at, updatedAt: (r: Row) => r.updated_at } as const;

interface Cursor {
  s: string;
  v: string;
  id: string;
}

function decodeCursor(text: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Cursor;
    if (c && typeof c.s === 'string' && typeof c.v === 'string' && typeof c.id === 'string') return c;
  } catch {
    /* below */
  }
  throw new CoveError('INVALID_REQUEST', 'Invalid cursor: pass the nextCursor of the previous page unchanged');
}

interface SecretServiceOptions {
  db: Db;
  /** The key values are sealed with (crypto.ts). */
  key: Buffer;
  log: Logger;
}

/**
 * Secrets (Daytona's `/secret`): values per API key (admin keys see every key's), sealed at rest, never answered nor
 * logged. A sandbox mounts secrets as variables holding their placeholders; the egress proxy gets the values of a
 * sandbox's mounts (substitutions) and puts them in place of the placeholders on the way to the secrets' hosts only.
 * Every stored value is opened at start: a server given another key refuses to start rather than lose them.
 * Knows nothing of HTTP.
 */
export function createSecretService(opts: SecretServiceOptions) {
  const { db, key, log } = opts;
  const q = {
    get: db.prepare<[string], Row>('SELECT * FROM secrets WHERE id = ?'),
    all: db.prepare<[], Row>('SELECT * FROM secrets'),
    owned: db.prepare<[string], Row>('SELECT * FROM secrets WHERE owner_key_id = ?'),
    byName: db.prepare<[string, string], Row>('SELECT * FROM secrets WHERE owner_key_id = ? AND name = ?'),
    count: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM secrets WHERE owner_key_id = ?'),
    insert: db.prepare(
      `INSERT INTO secrets (id, name, owner_key_id, description, hosts, value, created_at, updated_at)
       VALUES (@id, @name, @owner_key_id, @description, @hosts, @value, @created_at, @created_at)`,
    ),
    update: db.prepare('UPDATE secrets SET description = @description, hosts = @hosts, value = @value, updated_at = @updated_at WHERE id = @id'),
    remove: db.prepare<[string]>('DELETE FROM secrets WHERE id = ?'),
    mounts: db.prepare<[string], { env_name: string; secret_id: string; name: string }>(
      'SELECT m.env_name, m.secret_id, s.name FROM sandbox_secrets m JOIN secrets s ON s.id = m.secret_id WHERE m.sandbox_id = ? ORDER BY m.env_name',
    ),
    mount: db.prepare<[string, string, string]>('INSERT INTO sandbox_secrets (sandbox_id, env_name, secret_id) VALUES (?, ?, ?)'),
    unmountAll: db.prepare<[string]>('DELETE FROM sandbox_secrets WHERE sandbox_id = ?'),
    usedBy: db.prepare<[string], { sandbox_id: string }>('SELECT DISTINCT sandbox_id FROM sandbox_secrets WHERE secret_id = ? ORDER BY sandbox_id LIMIT 5'),
  };

  // Opened once: the egress proxy asks for a sandbox's values on every connection it intercepts.
  const values = new Map<string, string>();
  for (const row of q.all.all()) {
    try {
      values.set(row.id, open(key, row.id, row.value));
    } catch {
      throw new Error(`the secrets key (COVE_SECRET_KEY, or secrets.key in the data dir) does not open secret ${row.id}: start with the key the secrets were stored with`);
    }
  }

  /** The caller's secret of that id (any key's for an admin key), or a 404 that reveals no other key's. */
  function visible(principal: Principal, id: string): Row {
    const row = q.get.get(id);
    if (!row || !(principal.admin || row.owner_key_id === principal.keyId)) throw new CoveError('NOT_FOUND', `Secret ${id.slice(0, 200)} not found`);
    return row;
  }

  const mountsOf = (sandboxId: string): SecretMount[] =>
    q.mounts.all(sandboxId).map((m) => ({ envName: m.env_name, secretId: m.secret_id, name: m.name, placeholder: placeholderOf(m.secret_id) }));

  return {
    create(principal: Principal, req: CreateSecretRequest): SecretDto {
      const name = req.name.trim();
      if (!NAME.test(name)) throw new CoveError('INVALID_REQUEST', `name: ${JSON.stringify(name.slice(0, 80))} is not a secret name (letters, digits, '.', '_' and '-', starting with a letter or digit; at most 255)`);
      const value = checkedValue(req.value);
      const hosts = checkedHosts(req.hosts ?? []);
      if (q.byName.get(principal.keyId, name)) throw new CoveError('CONFLICT', `A secret named ${name} already exists`);
      if (q.count.get(principal.keyId)!.n >= MAX_PER_KEY) throw new CoveError('FORBIDDEN', `An API key may have at most ${MAX_PER_KEY} secrets; delete one first`);
      const id = randomUUID();
      q.insert.run({ id, name, owner_key_id: principal.keyId, description: req.description ?? null, hosts: JSON.stringify(hosts), value: seal(key, id, value), created_at: now() });
      values.set(id, value);
      log.info({ secretId: id, name, hosts }, 'secret created');
      return toDto(q.get.get(id)!);
    },

    /** Every secret a principal may see (its own, or every key's for an admin key), newest first. */
    listAll: (principal: Principal): SecretDto[] =>
      (principal.admin ? q.all.all() : q.owned.all(principal.keyId)).sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? -1 : 1)).map(toDto),

    /** One page: names containing `name` (case-insensitive), sorted by `sort` (default createdAt) in `order` (default desc). */
    list(principal: Principal, query: ListSecretsPageQuery): ListSecretsPageResponse {
      const part = query.name?.toLowerCase();
      const rows = (principal.admin ? q.all.all() : q.owned.all(principal.keyId)).filter((r) => !part || r.name.toLowerCase().includes(part));
      const field = query.sort ?? 'createdAt';
      const desc = (query.order ?? 'desc') === 'desc';
      const sortKey = SORT_KEYS[field];
      const sorting = `${field} ${desc ? 'desc' : 'asc'}`;
      const compare = (av: string, aid: string, bv: string, bid: string) => {
        const c = av < bv ? -1 : av > bv ? 1 : aid < bid ? -1 : aid > bid ? 1 : 0;
        return desc ? -c : c;
      };
      rows.sort((a, b) => compare(sortKey(a), a.id, sortKey(b), b.id));
      let start = 0;
      if (query.cursor) {
        const cursor = decodeCursor(query.cursor);
        if (cursor.s !== sorting) throw new CoveError('INVALID_REQUEST', `Invalid cursor: it belongs to a listing sorted by ${cursor.s.slice(0, 40)}, not ${sorting}`);
        start = rows.findIndex((r) => compare(sortKey(r), r.id, cursor.v, cursor.id) > 0);
        if (start < 0) start = rows.length;
      }
      const limit = query.limit ?? 100;
      const items = rows.slice(start, start + limit);
      const last = items.at(-1);
      const nextCursor = start + limit < rows.length && last ? Buffer.from(JSON.stringify({ s: sorting, v: sortKey(last), id: last.id })).toString('base64url') : null;
      return { items: items.map(toDto), total: rows.length, nextCursor };
    },

    get: (principal: Principal, id: string): SecretDto => toDto(visible(principal, id)),

    /** Changes what is given; a new value or new hosts apply to the next request a sandbox sends. */
    update(principal: Principal, id: string, req: UpdateSecretRequest): SecretDto {
      const row = visible(principal, id);
      const value = req.value === undefined ? undefined : checkedValue(req.value);
      const hosts = req.hosts === undefined ? hostsOf(row) : checkedHosts(req.hosts);
      q.update.run({
        id: row.id,
        description: req.description === undefined ? row.description : req.description || null,
        hosts: JSON.stringify(hosts),
        value: value === undefined ? row.value : seal(key, row.id, value),
        updated_at: now(),
      });
      if (value !== undefined) values.set(row.id, value);
      log.info({ secretId: row.id, hosts, valueChanged: value !== undefined }, 'secret updated');
      return toDto(q.get.get(row.id)!);
    },

    /** Deletes a secret no sandbox mounts (a 409 names the sandboxes that do: detach it with updateSecrets first). */
    remove(principal: Principal, id: string): void {
      const row = visible(principal, id);
      const users = q.usedBy.all(row.id).map((u) => u.sandbox_id);
      if (users.length) throw new CoveError('CONFLICT', `Secret ${row.name} is mounted in sandbox ${users.join(', ')}: detach it (updateSecrets) or delete the sandbox first`);
      q.remove.run(row.id);
      values.delete(row.id);
      log.info({ secretId: row.id }, 'secret deleted');
    },

    /** The mounts `entries` (variable → secret name) asks for, of the caller's own secrets; a 400 names what is wrong. */
    resolveMounts(principal: Principal, entries: Record<string, string>): SecretMount[] {
      return Object.entries(entries).map(([envName, secretName]) => {
        if (!isEnvName(envName)) throw new CoveError('INVALID_REQUEST', `secrets: ${JSON.stringify(envName.slice(0, 100))} is ${NAME_RULE}`);
        const row = q.byName.get(principal.keyId, secretName);
        if (!row) throw new CoveError('INVALID_REQUEST', `secrets: this API key has no secret named ${JSON.stringify(secretName.slice(0, 255))}`);
        return { envName, secretId: row.id, name: row.name, placeholder: placeholderOf(row.id) };
      });
    },

    /** Replaces the secrets mounted in a sandbox. */
    mount(sandboxId: string, mounts: SecretMount[]): void {
      db.transaction(() => {
        q.unmountAll.run(sandboxId);
        for (const m of mounts) q.mount.run(sandboxId, m.envName, m.secretId);
      })();
    },

    mountsOf,

    /** Detaches every secret of a deleted sandbox. */
    unmountAll: (sandboxId: string): void => void q.unmountAll.run(sandboxId),

    /** What the egress proxy replaces for a sandbox: each mounted secret's placeholder, value and hosts. */
    substitutions(sandboxId: string): Substitution[] {
      return mountsOf(sandboxId).map((m) => ({ secretId: m.secretId, name: m.name, placeholder: m.placeholder, value: values.get(m.secretId)!, hosts: hostsOf(q.get.get(m.secretId)!) }));
    },
  };
}
export type SecretService = ReturnType<typeof createSecretService>;
