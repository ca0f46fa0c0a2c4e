import type { Db } from '../store/db';
import { createCredentialStore, type CredentialRow } from './credentials';

/** What a valid preview token opens: one port of one sandbox. */
interface PreviewGrant {
  sandboxId: string;
  port: number;
  signed: boolean;
  expiresAt: string | null;
}

const toGrant = (r: CredentialRow): PreviewGrant => ({
  sandboxId: r.sandbox_id as string,
  port: r.port as number,
  signed: r.signed === 1,
  expiresAt: r.expires_at as string | null,
});

/**
 * Preview tokens (table `preview_tokens`, keyed by the hash), in the hashed-credential store. Unlike Daytona's, every
 * token opens exactly one port of one sandbox. Checked on every request (through the store's cache, see
 * credentials.ts), so revoking or expiring one takes effect at once.
 */
export function createPreviewTokens(db: Db) {
  const store = createCredentialStore(db, {
    table: 'preview_tokens',
    idColumn: 'rowid',
    expires: true,
    // Lowercase letters and digits only: signed tokens live in a host name, which is case-insensitive.
    secret: { length: 32 },
    pattern: /^[a-z0-9]{32}$/,
    toRecord: toGrant,
  });
  return {
    /** A token for `getPreviewLink(port)`: no expiry, valid until revoked or the sandbox is deleted. */
    issue(sandboxId: string, port: number): string {
      return store.create({ columns: { sandbox_id: sandboxId, port, signed: 0 } }).secret;
    },
    /** A token for a signed, expiring URL (the token is part of the preview host name). */
    sign(sandboxId: string, port: number, expiresInSeconds: number): { token: string; expiresAt: string } {
      const expiresAt = new Date(Date.now() + expiresInSeconds * 1000).toISOString();
      return { token: store.create({ columns: { sandbox_id: sandboxId, port, signed: 1 }, expiresAt }).secret, expiresAt };
    },
    /** The grant of a token that is neither revoked nor expired, or undefined. */
    verify: (token: string): PreviewGrant | undefined => store.verify(token),
    /** Whether `token` is or was a preview token (revoked and expired ones included): such text never reaches a sandbox. */
    isKnown: (token: string): boolean => store.isKnown(token),
    /** Revokes a token of this sandbox and port; returns whether it existed. */
    revoke(sandboxId: string, port: number, token: string): boolean {
      return store.revoke({ secret: token, where: { sandbox_id: sandboxId, port } }).length > 0;
    },
    /** Forgets every token of a deleted sandbox. */
    removeForSandbox(sandboxId: string): void {
      store.remove({ sandbox_id: sandboxId });
    },
  };
}
export type PreviewTokens = ReturnType<typeof createPreviewTokens>;
