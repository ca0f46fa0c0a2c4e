import { z } from 'zod';

/** A query-string boolean: `true`/`1` are true, `false`/`0`/absent are false. */
export const queryBool = z
  .enum(['true', 'false', '1', '0', ''])
  .optional()
  .transform((v) => v === 'true' || v === '1');

/** A query-string integer. */
export const queryInt = (min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/** Answer of the info routes. */
export const DirResponse = z.object({ dir: z.string() });
export type DirResponse = z.infer<typeof DirResponse>;

export const VersionResponse = z.object({ version: z.string() });
export type VersionResponse = z.infer<typeof VersionResponse>;
