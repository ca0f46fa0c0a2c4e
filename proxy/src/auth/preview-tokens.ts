import { createHash } from 'node:crypto';
import { randomToken } from '../../../lib/token';
import type { Db } from '../store/db';
import { now } from '../store/db';

/** What a valid preview token opens: one port of one sandbox. */
interface PreviewGrant {
  sandboxId: string;
  port: number;
  signed: boolean;
  expiresAt: string | null;
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');
/** Lowercase letters and digits only: signed tokens live in a host name, which is case-insensitive. */
const newToken = () => randomToken(32);

/** Verified tokens kept in memory (bounded): preview traffic checks a token on every request. */
const CACHE_LIMIT = 10_000;

/**
 * Preview tokens, stored hashed. Unlike Daytona's, every token opens exactly one port of one sandbox. Checked on every
 * request, so revoking or expiring one takes effect at once: this server is the only writer of preview tokens, so its
 * in-memory cache of grants is dropped by revoke() and removeForSandbox(), and expiry is compared on every check.
 */
export function createPreviewTokens(db: Db) {
  const insert = db.prepare('INSERT INTO preview_tokens (hash, sandbox_id, port, signed, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)');
  const lookup = db.prepare<[string], { sandbox_id: string; port: number; signed: number; expires_at: string | null; revoked_at: string | null }>(
    'SELECT sandbox_id, port, signed, expires_at, revoked_at FROM preview_tokens WHERE hash = ?',
  );
  const known = db.prepare<[string], { sandbox_id: string }>('SELECT sandbox_id FROM preview_tokens WHERE hash = ?');
  /** Token → grant, or null for a token that is unknown (so garbage tokens cost no second lookup either). */
  const cache = new Map<string, (PreviewGrant & { revoked: boolean }) | null>();
  return {
    /** A token for `getPreviewLink(port)`: no expiry, valid until revoked or the sandbox is deleted. */
    issue(sandboxId: string, port: number): string {
      const token = newToken();
      insert.run(hash(token), sandboxId, port, 0, now(), null);
      cache.delete(token);
      return token;
    },
    /** A token for a signed, expiring URL (the token is part of the preview host name). */
    sign(sandboxId: string, port: number, expiresInSeconds: number): { token: string; expiresAt: string } {
      const token = newToken();
      const expiresAt = new Date(Date.now() + expiresInSeconds * 1000).toISOString();
      insert.run(hash(token), sandboxId, port, 1, now(), expiresAt);
      cache.delete(token);
      return { token, expiresAt };
    },
    /** The grant of a token that is neither revoked nor expired, or undefined. */
    verify(token: string): PreviewGrant | undefined {
      if (!/^[a-z0-9]{32}$/.test(token)) return undefined;
      let entry = cache.get(token);
      if (entry === undefined) {
        const row = lookup.get(hash(token));
        entry = row
          ? { sandboxId: row.sandbox_id, port: row.port, signed: row.signed === 1, expiresAt: row.expires_at, revoked: !!row.revoked_at }
          : null;
        if (cache.size >= CACHE_LIMIT) cache.clear();
        cache.set(token, entry);
      }
      if (!entry || entry.revoked || (entry.expiresAt && entry.expiresAt <= new Date().toISOString())) return undefined;
      const { revoked: _, ...grant } = entry;
      return grant;
    },
    /** Whether `token` is or was a preview token (revoked and expired ones included): such text never reaches a sandbox. */
    isKnown(token: string): boolean {
      return /^[a-z0-9]{32}$/.test(token) && !!known.get(hash(token));
    },
    /** Revokes a token of this sandbox and port; returns whether it existed. */
    revoke(sandboxId: string, port: number, token: string): boolean {
      cache.delete(token);
      return (
        db
          .prepare('UPDATE preview_tokens SET revoked_at = ? WHERE hash = ? AND sandbox_id = ? AND port = ? AND revoked_at IS NULL')
          .run(now(), hash(token), sandboxId, port).changes > 0
      );
    },
    /** Forgets every token of a deleted sandbox. */
    removeForSandbox(sandboxId: string): void {
      for (const [token, entry] of cache) if (entry?.sandboxId === sandboxId) cache.delete(token);
      db.prepare('DELETE FROM preview_tokens WHERE sandbox_id = ?').run(sandboxId);
    },
  };
}
export type PreviewTokens = ReturnType<typeof createPreviewTokens>;
