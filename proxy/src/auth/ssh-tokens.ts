import { createHash, randomUUID } from 'node:crypto';
import { randomToken } from '../../../lib/token';
import type { Db } from '../store/db';
import { now } from '../store/db';

/** One SSH access token as stored (the token itself is only known at creation). */
interface SshAccessRecord {
  id: string;
  sandboxId: string;
  createdAt: string;
  updatedAt: string;
  expiresAt: string;
}

/** What a valid token opens: one sandbox. */
export interface SshGrant {
  /** The token's id: sessions opened with it are closed when it is revoked. */
  id: string;
  sandboxId: string;
  expiresAt: string;
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');
/** Lowercase letters and digits: the token is an SSH user name, which some tools lowercase or restrict. */
const TOKEN_RE = /^[a-z0-9]{40}$/;
/** 40 characters of 36: about 206 bits. */
const newToken = () => randomToken(40);

interface Row {
  id: string;
  sandbox_id: string;
  created_at: string;
  updated_at: string;
  expires_at: string;
  revoked_at: string | null;
}
const toRecord = (r: Row): SshAccessRecord => ({ id: r.id, sandboxId: r.sandbox_id, createdAt: r.created_at, updatedAt: r.updated_at, expiresAt: r.expires_at });

/**
 * SSH access tokens, stored as SHA-256 hashes and looked up by hash (a token is random, so this leaks nothing through
 * timing). Any number may be live per sandbox. Every check reads the database, so expiry and revocation take effect
 * at once; listeners hear about revocations so the gateway can close the sessions a token opened.
 */
export function createSshAccess(db: Db) {
  const insert = db.prepare('INSERT INTO ssh_access (id, hash, sandbox_id, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)');
  const byHash = db.prepare<[string], Row>('SELECT * FROM ssh_access WHERE hash = ?');
  const revokedListeners = new Set<(ids: string[]) => void>();
  const notify = (ids: string[]) => {
    if (ids.length) for (const l of revokedListeners) l(ids);
  };

  return {
    /** Creates a token valid for `minutes`; the only time the token is returned. */
    create(sandboxId: string, minutes: number): SshAccessRecord & { token: string } {
      const token = newToken();
      const time = now();
      const record: SshAccessRecord = {
        id: randomUUID(),
        sandboxId,
        createdAt: time,
        updatedAt: time,
        expiresAt: new Date(Date.now() + minutes * 60_000).toISOString(),
      };
      insert.run(record.id, hash(token), sandboxId, record.createdAt, record.updatedAt, record.expiresAt);
      return { ...record, token };
    },

    /** The grant of a token that exists, is not revoked and has not expired; otherwise why not. */
    check(token: string): { grant: SshGrant } | { reason: 'unknown' | 'expired' | 'revoked' } {
      if (!TOKEN_RE.test(token)) return { reason: 'unknown' };
      const row = byHash.get(hash(token));
      if (!row) return { reason: 'unknown' };
      if (row.revoked_at) return { reason: 'revoked' };
      if (row.expires_at <= new Date().toISOString()) return { reason: 'expired' };
      return { grant: { id: row.id, sandboxId: row.sandbox_id, expiresAt: row.expires_at } };
    },

    /** Revokes one token of a sandbox, or all of them without `token`; returns how many were live. */
    revoke(sandboxId: string, token?: string): number {
      const time = now();
      const rows =
        token === undefined
          ? db.prepare<[string], Row>('SELECT * FROM ssh_access WHERE sandbox_id = ? AND revoked_at IS NULL').all(sandboxId)
          : [byHash.get(hash(token))].filter((r): r is Row => !!r && r.sandbox_id === sandboxId && !r.revoked_at);
      const update = db.prepare('UPDATE ssh_access SET revoked_at = ?, updated_at = ? WHERE id = ?');
      db.transaction(() => rows.forEach((r) => update.run(time, time, r.id)))();
      notify(rows.map((r) => r.id));
      return rows.length;
    },

    /** Forgets every token of a deleted sandbox (closing its sessions). */
    removeForSandbox(sandboxId: string): void {
      const ids = db.prepare<[string], { id: string }>('SELECT id FROM ssh_access WHERE sandbox_id = ?').all(sandboxId).map((r) => r.id);
      db.prepare('DELETE FROM ssh_access WHERE sandbox_id = ?').run(sandboxId);
      notify(ids);
    },

    /** Calls `listener` with the ids of tokens as they are revoked or removed. Returns the unsubscribe function. */
    onRevoked(listener: (ids: string[]) => void): () => void {
      revokedListeners.add(listener);
      return () => revokedListeners.delete(listener);
    },

    toRecord,
  };
}
export type SshAccess = ReturnType<typeof createSshAccess>;
