import { createHmac, randomBytes } from 'node:crypto';
import type { Db } from '../store/db';
import { now } from '../store/db';
import { sameSecret } from './credentials';

const newKey = () => randomBytes(32).toString('base64url');

/**
 * Per-sandbox signing keys of signed file URLs. A sandbox gets its key the first time one is asked for; rotating
 * replaces it, which invalidates every URL signed with the old one at once (URLs are checked against the current key
 * on every request). Keys are kept as they are, not hashed: signing and checking need the key itself.
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

/** The toolbox operations a signed URL can open, and the one method each is signed for. */
export const SIGNED_OPERATIONS: Readonly<Record<string, 'GET' | 'POST'>> = {
  '/files/download': 'GET',
  '/files/upload-v2': 'POST',
};

const PREFIX = 'v1_';
/** Largest `expires` accepted: Unix seconds up to the year 33658, so the number stays exact. */
const MAX_EXPIRES = 10 ** 12;

/**
 * The signature of a file URL, as the Daytona SDK computes it (utils/fileUrlSigning.js): HMAC-SHA256 keyed with the
 * sandbox's signing key over `v1:files:{METHOD}:{path}:{expires}`, base64url, prefixed `v1_`.
 */
export function fileUrlSignature(key: string, method: string, filePath: string, expires: string): string {
  return PREFIX + createHmac('sha256', key).update(`v1:files:${method}:${filePath}:${expires}`).digest('base64url');
}

/** The decoded query of a signed request, by name; several values of one name are kept (and refused). */
export type SignedParams = Map<string, string[]>;

type SignedCheck = { ok: true; path: string } | { ok: false; reason: string };

/**
 * Checks a signed file URL: the operation takes signatures, the method is the one it is signed for, `path`,
 * `expires` and `signature` appear once each, the URL has not expired (`expires` 0 never does, as the SDK documents
 * for a TTL of 0 or less) and the signature is the key's for exactly this method, path and expiry. Pure: the caller
 * gives the key (undefined when the sandbox has none) and the time.
 */
export function checkSignedFileUrl(opts: { key: string | undefined; method: string; operation: string; params: SignedParams; nowSeconds: number }): SignedCheck {
  const signedFor = SIGNED_OPERATIONS[opts.operation];
  if (!signedFor) return { ok: false, reason: `Signed URLs open ${Object.keys(SIGNED_OPERATIONS).join(' and ')} only` };
  if (opts.method !== signedFor) return { ok: false, reason: `A signed ${opts.operation} URL is used with ${signedFor}, not ${opts.method}` };
  const one = (name: string): string | undefined => {
    const values = opts.params.get(name);
    return values?.length === 1 ? values[0] : undefined;
  };
  const filePath = one('path');
  const expires = one('expires');
  const signature = one('signature');
  if (filePath === undefined || expires === undefined || signature === undefined || filePath === '') {
    return { ok: false, reason: 'A signed URL needs path, expires and signature, once each' };
  }
  if (!/^\d{1,13}$/.test(expires) || Number(expires) > MAX_EXPIRES) return { ok: false, reason: 'The expires parameter of the signed URL is not a time' };
  if (Number(expires) !== 0 && Number(expires) <= opts.nowSeconds) {
    return { ok: false, reason: `The signed URL expired at ${new Date(Number(expires) * 1000).toISOString()}` };
  }
  // The same answer for a missing key, a rotated one and a wrong signature: none tells which.
  const invalid = { ok: false as const, reason: 'The signature of this URL is not valid for this sandbox (wrong, altered, or signed with a key since rotated)' };
  if (!opts.key || !signature.startsWith(PREFIX)) return invalid;
  return sameSecret(signature, fileUrlSignature(opts.key, opts.method, filePath, expires)) ? { ok: true, path: filePath } : invalid;
}
