import type { Db } from '../store/db';
import { createCredentialStore, type CredentialRow } from './credentials';

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

const toRecord = (r: CredentialRow): SshAccessRecord => ({
  id: r.id,
  sandboxId: r.sandbox_id as string,
  createdAt: r.created_at,
  updatedAt: r.updated_at as string,
  expiresAt: r.expires_at as string,
});

/**
 * SSH access tokens (table `ssh_access`), in the hashed-credential store. Any number may be live per sandbox. Expiry
 * and revocation take effect at once (the store's cache, see credentials.ts); listeners hear about revocations so the
 * gateway can close the sessions a token opened.
 */
export function createSshAccess(db: Db) {
  const store = createCredentialStore(db, {
    table: 'ssh_access',
    idColumn: 'id',
    expires: true,
    touchOnRevoke: ['updated_at'],
    // Lowercase letters and digits: the token is an SSH user name, which some tools lowercase or restrict.
    // 40 characters of 36: about 206 bits.
    secret: { length: 40 },
    pattern: /^[a-z0-9]{40}$/,
    toRecord,
  });
  const revokedListeners = new Set<(ids: string[]) => void>();
  const notify = (ids: string[]) => {
    if (ids.length) for (const l of revokedListeners) l(ids);
  };

  return {
    /** Creates a token valid for `minutes`; the only time the token is returned. */
    create(sandboxId: string, minutes: number): SshAccessRecord & { token: string } {
      const expiresAt = new Date(Date.now() + minutes * 60_000).toISOString();
      const time = new Date().toISOString();
      const { secret, record } = store.create({ columns: { sandbox_id: sandboxId, created_at: time, updated_at: time }, expiresAt });
      return { ...record, token: secret };
    },

    /** The grant of a token that exists, is not revoked and has not expired; otherwise why not. */
    check(token: string): { grant: SshGrant } | { reason: 'unknown' | 'expired' | 'revoked' } {
      const found = store.find(token);
      if (!found) return { reason: 'unknown' };
      if (found.state !== 'live') return { reason: found.state };
      const { id, sandboxId, expiresAt } = found.record;
      return { grant: { id, sandboxId, expiresAt } };
    },

    /** Revokes one token of a sandbox, or all of them without `token`; returns how many were live. */
    revoke(sandboxId: string, token?: string): number {
      const ids = store.revoke({ secret: token, where: { sandbox_id: sandboxId } });
      notify(ids);
      return ids.length;
    },

    /** Forgets every token of a deleted sandbox (closing its sessions). */
    removeForSandbox(sandboxId: string): void {
      notify(store.remove({ sandbox_id: sandboxId }));
    },

    /** Calls `listener` with the ids of tokens as they are revoked or removed. Returns the unsubscribe function. */
    onRevoked(listener: (ids: string[]) => void): () => void {
      revokedListeners.add(listener);
      return () => revokedListeners.delete(listener);
    },
  };
}
export type SshAccess = ReturnType<typeof createSshAccess>;
