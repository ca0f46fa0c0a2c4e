import { z } from 'zod';

/** A POSIX environment variable name: a letter or underscore, then letters, digits and underscores. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const NAME_RULE = 'not a valid environment variable name (letters, digits and _, not starting with a digit)';
export const isEnvName = (name: string): boolean => ENV_NAME.test(name) && name !== '__proto__';
/** Variables per request, in `set` and in `unset`. */
const MAX_ENV_CHANGES = 4096;

const EnvName = z.string().regex(ENV_NAME, NAME_RULE);
const EnvValue = z.string().refine((v) => !v.includes('\0'), 'a value cannot contain a NUL byte');

/**
 * Names to values. The names are checked on the object as parsed from JSON, before the record schema copies it: that
 * copy silently drops a `__proto__` key, which must be refused rather than ignored.
 */
const EnvSet = z
  .unknown()
  .superRefine((raw, ctx) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return; // the record schema says what it expects
    const names = Object.keys(raw);
    if (names.length > MAX_ENV_CHANGES) ctx.addIssue({ code: 'custom', message: `at most ${MAX_ENV_CHANGES} variables per request` });
    for (const name of names) {
      if (!ENV_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name.slice(0, 200)], message: NAME_RULE });
      else if (name === '__proto__') ctx.addIssue({ code: 'custom', path: [name], message: 'this name cannot be set' });
    }
  })
  .pipe(z.record(z.string(), EnvValue));

/**
 * `POST /env` (`sandbox.updateEnv(env, {unset})`): `unset` names are removed, then every variable whose value starts
 * with `unsetValuePrefix` (except names in `set`), then `set` is applied. Processes started afterwards get the result.
 */
export const UpdateEnvRequest = z.object({
  set: EnvSet.optional(),
  unset: z.array(EnvName).max(MAX_ENV_CHANGES).optional(),
  /** Empty means absent (as in Daytona's daemon): a prefix of "" would match every variable. */
  unsetValuePrefix: z.string().optional(),
});
export type UpdateEnvRequest = z.infer<typeof UpdateEnvRequest>;

/** Daytona's daemon answers with a status message, not the resulting environment. */
export const UpdateEnvResponse = z.object({ message: z.string() });
export type UpdateEnvResponse = z.infer<typeof UpdateEnvResponse>;
