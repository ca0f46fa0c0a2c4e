import { randomBytes } from 'node:crypto';
import type { Db } from '../store/db';
import { now } from '../store/db';

const newKey = () => randomBytes(32).toString('base64url');

/**
 * Per-sandbox signing keys of signed file URLs. A sandbox gets its key the first time one is asked for; rotating
 * replaces it, which invalidates every URL signed with the old one at once (URLs are checked against the current key
 * on every request). Keys are kept as they are: signing and checking need the key itself.
 */
export function createSigningKeys(db: Db) {
  const select = db.prepare<[string], { key: string }>('SELECT key FROM signing_keys WHERE sandbox_id = ?');
  const insert = db.prepare('INSERT OR IGNORE INTO signing_keys (sandbox_id, key, created_at) VALUES (?, ?, ?)');
  const replace = db.prepare('INSERT OR REPLACE INTO signing_keys (sandbox_id, key, created_at) VALUES (?, ?, ?)');
  const remove = db.prepare('DELETE FROM signing_keys WHERE sandbox_id = ?');
  return {
    /** The sandbox's key, created on first use. */
    keyOf(sandboxId: string): string {
      insert.run(sandboxId, newKey(), now());
      return select.get(sandboxId)!.key;
    },
    /** The current key, or undefined when none was ever asked for (no URL can have been signed then). */
    current(sandboxId: string): string | undefined {
      return select.get(sandboxId)?.key;
    },
    /** A new key; URLs signed with the old one stop working now. */
    rotate(sandboxId: string): string {
      const key = newKey();
      replace.run(sandboxId, key, now());
      return key;
    },
    /** Forgets the key of a deleted sandbox. */
    removeForSandbox(sandboxId: string): void {
      remove.run(sandboxId);
    },
  };
}
export type SigningKeys = ReturnType<typeof createSigningKeys>;
