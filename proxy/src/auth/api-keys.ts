import type { Db } from '../store/db';
import { now } from '../store/db';
import { createCredentialStore, type CredentialRow } from './credentials';

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
/** The base64url alphabet: a key is `cove_` and 43 of these, the length of 32 bytes in base64url. */
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const toInfo = (r: CredentialRow): ApiKeyInfo => ({
  id: r.id,
  name: r.name as string,
  prefix: r.prefix as string,
  admin: r.admin === 1,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at as string | null,
  revokedAt: r.revoked_at,
});

/** API keys (table `api_keys`), in the hashed-credential store: 258 random bits each, never expiring, revocable. */
export function createKeysService(db: Db) {
  const store = createCredentialStore(db, {
    table: 'api_keys',
    idColumn: 'id',
    expires: false,
    secret: { prefix: KEY_PREFIX, length: 43, alphabet: BASE64URL },
    toRecord: toInfo,
  });
  const touch = db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?');
  const lastTouched = new Map<string, number>();

  return {
    /** Creates a key and returns it in full: the only time it is ever shown. */
    create(opts: { name: string; admin?: boolean; key?: string }): { key: string; info: ApiKeyInfo } {
      const key = opts.key ?? store.newSecret();
      const { record } = store.create({
        secret: key,
        columns: { name: opts.name, prefix: key.slice(0, KEY_PREFIX.length + 6), admin: opts.admin ? 1 : 0 },
      });
      return { key, info: record };
    },

    /** Makes sure `key` exists as an admin key (the key given by COVE_API_KEY). Idempotent. */
    ensureAdmin(key: string): ApiKeyInfo {
      return store.verify(key) ?? this.create({ name: 'admin', admin: true, key }).info;
    },

    /** Whether any usable admin key exists. */
    hasAdmin(): boolean {
      return store.list({ where: { admin: 1 }, liveOnly: true }).length > 0;
    },

    /** The principal a presented key identifies, or undefined. */
    authenticate(key: string): Principal | undefined {
      const info = store.verify(key);
      if (!info) return undefined;
      // Record use at most once a minute per key: authentication is on every request's path.
      const t = Date.now();
      if ((lastTouched.get(info.id) ?? 0) < t - 60_000) {
        lastTouched.set(info.id, t);
        touch.run(now(), info.id);
      }
      return { keyId: info.id, admin: info.admin };
    },

    /** Whether `key` is or was a key of this server (revoked ones included): such text never reaches a sandbox. */
    isKnown: (key: string): boolean => store.isKnown(key),

    list: (): ApiKeyInfo[] => store.list(),

    /** Revokes a key by id or prefix; returns whether one was revoked. */
    revoke(idOrPrefix: string): boolean {
      return db.transaction(() => store.revoke({ id: idOrPrefix }).length + store.revoke({ where: { prefix: idOrPrefix } }).length > 0)();
    },
  };
}
export type KeysService = ReturnType<typeof createKeysService>;
