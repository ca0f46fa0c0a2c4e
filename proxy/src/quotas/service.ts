import { z } from 'zod';
import type { SandboxState } from '../../../wire/sandbox';
import type { Db } from '../store/db';
import { effectiveLimits, LIMIT_NAMES, refusal, sizeRefusal, usageOf, type LimitOverrides, type Limits, type Resources } from './limits';

/** A key's own limits as stored (`api_key_quotas.limits`, JSON): a number, or null for no limit; absent: the default. */
const StoredOverrides = z.object(Object.fromEntries(LIMIT_NAMES.map((n) => [n, z.number().int().min(0).nullable().optional()]))).partial();

/** A change to a key's own limits: a value, null (no limit), or 'default' (back to the server's default). */
export type OverridesPatch = Partial<Record<keyof Limits, number | null | 'default'>>;

/**
 * The per-key limits as stored in the data dir, read and written by `cove keys` and read by the server on every
 * admission: nothing is cached, so a change made while the server runs applies to the next create or start.
 */
export function createKeyLimits(db: Db) {
  const read = db.prepare<[string], { admin: number; limits: string | null }>(
    'SELECT k.admin, q.limits FROM api_keys k LEFT JOIN api_key_quotas q ON q.key_id = k.id WHERE k.id = ?',
  );
  const write = db.prepare<[string, string]>(
    'INSERT INTO api_key_quotas (key_id, limits) VALUES (?, ?) ON CONFLICT (key_id) DO UPDATE SET limits = excluded.limits',
  );
  const parse = (json: string | null): LimitOverrides => {
    if (json === null) return {};
    try {
      const parsed = StoredOverrides.safeParse(JSON.parse(json));
      if (parsed.success) return parsed.data;
    } catch {
      // below
    }
    // Text a hand edit made unreadable counts as no own limits: the defaults apply, never "no limit".
    return {};
  };
  return {
    /** The key's admin flag and own limits; an unknown key is a plain key with none of its own. */
    of(keyId: string): { admin: boolean; own: LimitOverrides } {
      const row = read.get(keyId);
      return { admin: row?.admin === 1, own: row ? parse(row.limits) : {} };
    },
    /** Applies a change to a key's own limits; returns them as they now are. */
    set(keyId: string, patch: OverridesPatch): LimitOverrides {
      return db.transaction(() => {
        const row = read.get(keyId);
        if (!row) throw new Error(`no key with id ${keyId}`);
        const own = parse(row.limits);
        for (const [name, value] of Object.entries(patch) as [keyof Limits, number | null | 'default'][]) {
          if (value === 'default') delete own[name];
          else own[name] = value;
        }
        write.run(keyId, JSON.stringify(own));
        return own;
      })();
    },
  };
}

/**
 * Enforces each API key's limits on its sandboxes. `admit` runs the check and the write that makes a sandbox hold
 * resources (the insert of a new one, the state change of a start) in one SQLite transaction taken with the write
 * lock, so two requests can never both take the last slot.
 */
export function createQuotaService(opts: { db: Db; defaults: Limits }) {
  const { db, defaults } = opts;
  const keyLimits = createKeyLimits(db);
  const owned = db.prepare<[string, string], Resources & { state: SandboxState }>(
    'SELECT state, cpu, memory, disk FROM sandboxes WHERE owner_key_id = ? AND id != ?',
  );
  /** The limits in force for a key now. */
  const limitsOf = (keyId: string): Limits => {
    const { admin, own } = keyLimits.of(keyId);
    return effectiveLimits(defaults, own, admin);
  };
  return {
    /** Refuses (INVALID_REQUEST, naming the field) resources over the key's per-sandbox maximums; a snapshot's, say. */
    checkSize(keyId: string, wanted: Partial<Resources>): void {
      const refused = sizeRefusal(limitsOf(keyId), wanted);
      if (refused) throw refused;
    },

    /**
     * Runs `reserve` (the write that makes `sandbox` hold its resources) if the owner's limits allow one more
     * sandbox of that size beside the others it has (`sandbox.id`, when it exists already, is not counted twice);
     * otherwise throws the refusal and writes nothing. `holdsCompute: false` for a sandbox that stays stopped (its
     * disk grows): only disk limits apply.
     */
    admit<T>(ownerKeyId: string, sandbox: Resources & { id?: string }, reserve: () => T, opts: { holdsCompute?: boolean } = {}): T {
      return db
        .transaction(() => {
          const usage = usageOf(owned.iterate(ownerKeyId, sandbox.id ?? ''));
          const refused = refusal(limitsOf(ownerKeyId), usage, sandbox, opts);
          if (refused) throw refused;
          return reserve();
        })
        .immediate();
    },
  };
}
export type QuotaService = ReturnType<typeof createQuotaService>;
