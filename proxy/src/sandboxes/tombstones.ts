import type { Principal } from '../auth/api-keys';
import type { SandboxDto } from '../../../wire/sandbox';

/** How long a deleted sandbox still answers `GET /sandbox/{id}`, as `destroyed`. */
const TOMBSTONE_MS = 5 * 60_000;
/** Most tombstones kept at once; past it the oldest go first (each one needed a sandbox deleted in the last minutes). */
const MAX_TOMBSTONES = 10_000;

interface Tombstone {
  dto: SandboxDto;
  ownerKeyId: string;
  expiresAt: number;
}

/**
 * Deleted sandboxes, kept visible for a few minutes in state `destroyed`, as Daytona keeps them: SDKs refresh a
 * sandbox right after deleting it (0.108's `delete()` does, and fails on a 404) or wait for `destroyed` (0.218's
 * `delete(timeout, wait)`, and `waitUntilStopped` of an ephemeral sandbox). Only `GET /sandbox/{id}` by id sees them:
 * they are never listed (Daytona lists no destroyed sandbox by default), their names are free at once, and every other
 * operation answers 404. In memory only: a restart forgets them, and a sandbox deleted just before it is then a 404,
 * as it always was.
 */
export function createTombstones(now: () => number = Date.now) {
  const buried = new Map<string, Tombstone>();

  function prune(): void {
    const t = now();
    // Insertion order is expiry order: every tombstone lives as long.
    for (const [id, stone] of buried) {
      if (stone.expiresAt > t && buried.size <= MAX_TOMBSTONES) break;
      buried.delete(id);
    }
  }

  return {
    /** Keeps a deleted sandbox's last DTO, as `destroyed`. */
    bury(dto: SandboxDto, ownerKeyId: string): void {
      buried.delete(dto.id);
      buried.set(dto.id, { dto: { ...dto, state: 'destroyed', updatedAt: new Date(now()).toISOString() }, ownerKeyId, expiresAt: now() + TOMBSTONE_MS });
      prune();
    },

    /** The `destroyed` DTO of a sandbox deleted in the last minutes, by id, for its owner or an admin key. */
    find(principal: Principal, id: string): SandboxDto | undefined {
      prune();
      const stone = buried.get(id);
      return stone && (principal.admin || stone.ownerKeyId === principal.keyId) ? stone.dto : undefined;
    },
  };
}
