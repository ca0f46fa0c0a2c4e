import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { randomToken } from '../../../lib/token';
import type { Db } from '../store/db';
import { now, statementCache } from '../store/db';

/** How a hashed credential is stored: SHA-256 of the secret, lowercase hex, in the table's `hash` column. */
export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** Constant-time equality of two strings of any length (both are hashed first, so lengths leak nothing). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** A row of a credential table as the store hands it out: every column but `hash`, and the record's id. */
export type CredentialRow = Record<string, unknown> & { id: string; created_at: string; revoked_at: string | null };

/** Where a presented secret stands. */
type CredentialState = 'live' | 'revoked' | 'expired';

/** A credential table and the shape of its secrets. */
interface CredentialTable<R> {
  /** Table name. Every such table has `hash` (unique), `created_at` and `revoked_at` columns. */
  table: string;
  /**
   * The column that names a credential: `id` (a UUID the store draws), or `rowid` for a table whose key is the hash
   * itself (the id is then SQLite's row number, as text).
   */
  idColumn: 'id' | 'rowid';
  /** Whether the table has an `expires_at` column (NULL there: never expires). */
  expires: boolean;
  /** Columns set to the revocation time along with `revoked_at`. */
  touchOnRevoke?: string[];
  /** New secrets: `prefix` then `length` characters drawn uniformly from `alphabet` (lib/token.ts's default if absent). */
  secret: { prefix?: string; length: number; alphabet?: string };
  /** The only form a presented secret can take; anything else is not looked up and never verifies. */
  pattern?: RegExp;
  /** Keep up to this many looked-up hashes in memory (found or not); the cache is emptied when full. Default 10 000. */
  cacheLimit?: number;
  /** The record a row stands for. */
  toRecord: (row: CredentialRow) => R;
}

/** Column conditions, all of which must hold (`{ sandbox_id: 'x', port: 3000 }`). */
type Where = Record<string, string | number>;

const isoNow = () => new Date().toISOString();

const DEFAULT_CACHE_LIMIT = 10_000;

const dataVersions = new WeakMap<Db, () => number>();
/** How old a read of `data_version` may be when it is used again. */
const DATA_VERSION_MAX_AGE_MS = 1;

/**
 * A number that changes whenever another process (the CLI's `cove keys …`) has committed to the database: SQLite's
 * `PRAGMA data_version`, which this connection's own commits leave alone. Read again when the last read is a
 * millisecond old: under load, one read (about as costly as a credential lookup) serves every request of that
 * millisecond, so a change made elsewhere is seen within a millisecond of its commit.
 */
function dataVersionOf(db: Db): () => number {
  let read = dataVersions.get(db);
  if (!read) {
    const stmt = db.prepare<[], number>('PRAGMA data_version').pluck();
    let current = 0;
    let readAt = -Infinity;
    read = () => {
      const t = performance.now();
      if (t - readAt >= DATA_VERSION_MAX_AGE_MS) {
        current = stmt.get()!;
        readAt = t;
      }
      return current;
    };
    dataVersions.set(db, read);
  }
  return read;
}

/**
 * One store of hashed credentials over one table: secrets are shown once, at creation, and only their SHA-256 is kept.
 *
 * A presented secret is checked by looking its hash up through the table's unique index, not by comparing secrets:
 * the secrets are random with 190 bits or more, so how long a lookup of a SHA-256 takes tells nothing usable about
 * any stored secret (an attacker cannot choose inputs whose hashes approach a stored one), and this is not a timing
 * oracle. Where a secret is compared with another directly, `sameSecret` compares in constant time.
 *
 * Expiry is compared on every check, so an expired credential never verifies, whether or not it was purged; a revoked
 * one keeps its row (so it is still recognised as ours) but never verifies either.
 */
export function createCredentialStore<R>(db: Db, spec: CredentialTable<R>) {
  const { table, idColumn } = spec;
  const selectAll = `SELECT ${idColumn} AS cred_id, * FROM ${table}`;
  const statement = statementCache(db);
  const byHash = db.prepare<[string], Record<string, unknown>>(`${selectAll} WHERE hash = ?`);
  /**
   * Hash → row (without its hash), or null for a hash of no credential. This process's own changes go through the
   * store, which forgets the hashes they touch; a commit by another process empties it within a millisecond.
   * Expiry is compared on every check, against the row's `expires_at`.
   */
  const cache = new Map<string, CredentialRow | null>();
  const cacheLimit = spec.cacheLimit ?? DEFAULT_CACHE_LIMIT;
  const dataVersion = dataVersionOf(db);
  let seenVersion = dataVersion();

  const toRow = (raw: Record<string, unknown>): CredentialRow => {
    const { cred_id, hash: _, ...rest } = raw;
    return { ...rest, id: String(cred_id) } as CredentialRow;
  };
  const stateOf = (row: CredentialRow): CredentialState => {
    if (row.revoked_at) return 'revoked';
    const expiresAt = spec.expires ? (row.expires_at as string | null) : null;
    return expiresAt && expiresAt <= isoNow() ? 'expired' : 'live';
  };
  const rowOfSecret = (secret: string): CredentialRow | undefined => {
    if (spec.pattern && !spec.pattern.test(secret)) return undefined;
    const hash = hashSecret(secret);
    const version = dataVersion();
    if (version !== seenVersion) {
      cache.clear();
      seenVersion = version;
    }
    let row = cache.get(hash);
    if (row === undefined) {
      const raw = byHash.get(hash);
      row = raw ? toRow(raw) : null;
      if (cache.size >= cacheLimit) cache.clear();
      cache.set(hash, row);
    }
    return row ?? undefined;
  };
  /** `WHERE` text and parameters for an id or secret plus column conditions; column names come from our own code. */
  const whereOf = (by: { id?: string; secret?: string; where?: Where }, liveOnly: boolean): [string, unknown[]] => {
    const clauses: string[] = [];
    const params: unknown[] = [];
    const add = (clause: string, value: unknown) => {
      clauses.push(clause);
      params.push(value);
    };
    if (by.id !== undefined) add(`${idColumn} = ?`, by.id);
    if (by.secret !== undefined) add('hash = ?', hashSecret(by.secret));
    for (const [column, value] of Object.entries(by.where ?? {})) add(`${column} = ?`, value);
    if (liveOnly) clauses.push('revoked_at IS NULL');
    return [clauses.length ? ` WHERE ${clauses.join(' AND ')}` : '', params];
  };
  const forget = (hashes: string[]) => {
    for (const h of hashes) cache.delete(h);
  };

  return {
    /** A new secret in this table's format (not stored). */
    newSecret(): string {
      return (spec.secret.prefix ?? '') + randomToken(spec.secret.length, spec.secret.alphabet);
    },

    /**
     * Stores a credential: `secret` when given (an operator's own key), else a new one. `columns` are the table's
     * other columns (`created_at` defaults to now); `expiresAt` (ISO 8601) only for tables with expiry. The only time the secret is returned.
     */
    create(opts: { columns?: Where; expiresAt?: string | null; secret?: string } = {}): { id: string; secret: string; record: R } {
      const secret = opts.secret ?? this.newSecret();
      const hash = hashSecret(secret);
      const values: Record<string, unknown> = { created_at: now(), ...opts.columns, hash };
      if (idColumn === 'id') values.id = randomUUID();
      if (spec.expires) values.expires_at = opts.expiresAt ?? null;
      const names = Object.keys(values);
      const raw = statement<unknown[], Record<string, unknown>>(
          `INSERT INTO ${table} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')}) RETURNING ${idColumn} AS cred_id, *`,
        )
        .get(...names.map((n) => values[n]))!;
      forget([hash]);
      const row = toRow(raw);
      return { id: row.id, secret, record: spec.toRecord(row) };
    },

    /** Where a presented secret stands, with its record; undefined for a secret that is not (and never was) ours. */
    find(secret: string): { record: R; state: CredentialState } | undefined {
      const row = rowOfSecret(secret);
      return row && { record: spec.toRecord(row), state: stateOf(row) };
    },

    /** The record of a presented secret that is neither revoked nor expired, else undefined. */
    verify(secret: string): R | undefined {
      const row = rowOfSecret(secret);
      return row && stateOf(row) === 'live' ? spec.toRecord(row) : undefined;
    },

    /** Whether `secret` is or was one of this table's (revoked and expired ones included). */
    isKnown(secret: string): boolean {
      return rowOfSecret(secret) !== undefined;
    },

    /**
     * Revokes the credentials not yet revoked that match every condition given (an id, a secret, column values);
     * expired ones count. Returns the ids revoked.
     */
    revoke(by: { id?: string; secret?: string; where?: Where }): string[] {
      if (by.id === undefined && by.secret === undefined && !by.where) throw new Error('revoke needs an id, a secret or conditions');
      const [where, params] = whereOf(by, true);
      const time = now();
      const columns = ['revoked_at', ...(spec.touchOnRevoke ?? [])];
      const rows = statement<unknown[], { cred_id: string | number; hash: string }>(
          `UPDATE ${table} SET ${columns.map((c) => `${c} = ?`).join(', ')}${where} RETURNING ${idColumn} AS cred_id, hash`,
        )
        .all(...columns.map(() => time), ...params);
      forget(rows.map((r) => r.hash));
      return rows.map((r) => String(r.cred_id));
    },

    /** The records matching `where` (live ones only with `liveOnly`), oldest first. Never a secret nor its hash. */
    list(opts: { where?: Where; liveOnly?: boolean } = {}): R[] {
      const [where, params] = whereOf({ where: opts.where }, !!opts.liveOnly);
      const rows = statement<unknown[], Record<string, unknown>>(`${selectAll}${where} ORDER BY created_at, rowid`).all(...params).map(toRow);
      return (opts.liveOnly ? rows.filter((r) => stateOf(r) === 'live') : rows).map(spec.toRecord);
    },

    /** Deletes the credentials matching `where` (all of a deleted sandbox, say); returns their ids. */
    remove(where: Where): string[] {
      const [clause, params] = whereOf({ where }, false);
      if (!clause) throw new Error('remove needs conditions');
      const rows = statement<unknown[], { cred_id: string | number; hash: string }>(`DELETE FROM ${table}${clause} RETURNING ${idColumn} AS cred_id, hash`).all(...params);
      forget(rows.map((r) => r.hash));
      return rows.map((r) => String(r.cred_id));
    },

    /** Deletes the credentials whose expiry has passed; returns their ids. */
    purgeExpired(): string[] {
      if (!spec.expires) return [];
      const rows = statement<[string], { cred_id: string | number; hash: string }>(
          `DELETE FROM ${table} WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING ${idColumn} AS cred_id, hash`,
        )
        .all(isoNow());
      forget(rows.map((r) => r.hash));
      return rows.map((r) => String(r.cred_id));
    },
  };
}
