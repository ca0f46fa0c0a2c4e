import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Db } from '../store/db';
import { now } from '../store/db';

/** What Cove tells about an API key: never the key itself, which is shown once, at creation. */
interface ApiKeyInfo {
  id: string;
  name: string;
  /** The first characters of the key, to recognise it. */
  prefix: string;
  admin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** The caller an API key identifies. */
export interface Principal {
  keyId: string;
  admin: boolean;
}

const KEY_PREFIX = 'cove_';
const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');

interface Row {
  id: string;
  name: string;
  prefix: string;
  admin: number;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}
const toInfo = (r: Row): ApiKeyInfo => ({
  id: r.id,
  name: r.name,
  prefix: r.prefix,
  admin: r.admin === 1,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

/**
 * API keys, stored as SHA-256 hashes. A key is 32 random bytes, so a fast hash is enough, and looking it up by its
 * hash leaks nothing about the key through timing.
 */
export function createKeysService(db: Db) {
  const byHash = db.prepare<[string], Row>('SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL');
  const anyByHash = db.prepare<[string], { id: string }>('SELECT id FROM api_keys WHERE hash = ?');
  const touch = db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?');
  const lastTouched = new Map<string, number>();

  return {
    /** Creates a key and returns it in full: the only time it is ever shown. */
    create(opts: { name: string; admin?: boolean; key?: string }): { key: string; info: ApiKeyInfo } {
      const key = opts.key ?? `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
      const row: Row = {
        id: randomUUID(),
        name: opts.name,
        prefix: key.slice(0, KEY_PREFIX.length + 6),
        admin: opts.admin ? 1 : 0,
        created_at: now(),
        last_used_at: null,
        revoked_at: null,
      };
      db.prepare(
        'INSERT INTO api_keys (id, name, hash, prefix, admin, created_at) VALUES (@id, @name, @hash, @prefix, @admin, @created_at)',
      ).run({ ...row, hash: hashKey(key) });
      return { key, info: toInfo(row) };
    },

    /** Makes sure `key` exists as an admin key (the key given by COVE_API_KEY). Idempotent. */
    ensureAdmin(key: string): ApiKeyInfo {
      const existing = byHash.get(hashKey(key));
      if (existing) return toInfo(existing);
      return this.create({ name: 'admin', admin: true, key }).info;
    },

    /** Whether any usable admin key exists. */
    hasAdmin(): boolean {
      return !!db.prepare('SELECT 1 FROM api_keys WHERE admin = 1 AND revoked_at IS NULL LIMIT 1').get();
    },

    /** The principal a presented key identifies, or undefined. */
    authenticate(key: string): Principal | undefined {
      const row = byHash.get(hashKey(key));
      if (!row) return undefined;
      // Record use at most once a minute per key: authentication is on every request's path.
      const t = Date.now();
      if ((lastTouched.get(row.id) ?? 0) < t - 60_000) {
        lastTouched.set(row.id, t);
        touch.run(now(), row.id);
      }
      return { keyId: row.id, admin: row.admin === 1 };
    },

    /** Whether `key` is or was a key of this server (revoked ones included): such text never reaches a sandbox. */
    isKnown(key: string): boolean {
      return !!anyByHash.get(hashKey(key));
    },

    list(): ApiKeyInfo[] {
      return db.prepare<[], Row>('SELECT * FROM api_keys ORDER BY created_at').all().map(toInfo);
    },

    /** Revokes a key by id or prefix; returns whether one was revoked. */
    revoke(idOrPrefix: string): boolean {
      const result = db
        .prepare('UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR prefix = ?) AND revoked_at IS NULL')
        .run(now(), idOrPrefix, idOrPrefix);
      return result.changes > 0;
    },
  };
}
export type KeysService = ReturnType<typeof createKeysService>;
