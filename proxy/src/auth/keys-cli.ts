import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LIMIT_NAMES, LIMITS, parseLimit, showLimit, type LimitOverrides } from '../quotas/limits';
import { createKeyLimits, type OverridesPatch } from '../quotas/service';
import { openDatabase } from '../store/db';
import { createKeysService } from './api-keys';

const KEYS_USAGE = `Usage: cove keys <create|list|set|revoke> [options]

  cove keys create [--name NAME] [--admin] [LIMITS]   create a key and print it (shown once)
  cove keys list                                     list keys and their own limits (never the keys themselves)
  cove keys set ID|PREFIX LIMITS                      change a key's limits (a running server applies them at once)
  cove keys revoke ID|PREFIX                          revoke a key at once

LIMITS (each a whole number, "unlimited", or for set "default": back to the server's default, see cove serve --help;
admin keys have no limit but those set on them):
${LIMIT_NAMES.map((n) => `  --${`${LIMITS[n].flag} N`.padEnd(22)}${LIMITS[n].says} (built-in server default ${showLimit(LIMITS[n].fallback)})`).join('\n')}

  --data-dir DIR   the server's data dir (COVE_DATA_DIR, default ~/.cove)
  --json           JSON on stdout: the key and its record (create), the records (list), the record (set, revoke)`;

/** The limits given as flags: a value, null (unlimited), or 'default' where `allowDefault`. */
function limitFlags(values: Record<string, unknown>, allowDefault: boolean): OverridesPatch {
  const patch: OverridesPatch = {};
  for (const n of LIMIT_NAMES) {
    const given = values[LIMITS[n].flag] as string | undefined;
    if (given === undefined) continue;
    patch[n] = allowDefault && given.trim().toLowerCase() === 'default' ? 'default' : parseLimit(given, `--${LIMITS[n].flag}`);
  }
  return patch;
}

/** A key's own limits, as flags would set them ("server defaults" when it has none). */
function showOwn(own: LimitOverrides, admin: boolean): string {
  const named = LIMIT_NAMES.filter((n) => own[n] !== undefined).map((n) => `${LIMITS[n].flag}=${showLimit(own[n]!)}`);
  const rest = admin ? 'unlimited' : 'server defaults';
  return named.length ? `limits ${named.join(' ')} (others ${rest})` : `limits: ${rest}`;
}

/** `cove keys …`: manages API keys in the data dir's database (works while the server runs). */
export function runKeysCommand(argv: string[]): void {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      admin: { type: 'boolean' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      json: { type: 'boolean' },
      ...Object.fromEntries(LIMIT_NAMES.map((n) => [LIMITS[n].flag, { type: 'string' as const }])),
    },
  });
  const [action, target] = positionals;
  if (values.help || !action) {
    process.stdout.write(`${KEYS_USAGE}\n`);
    return;
  }
  const json = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  const dataDir = path.resolve(values['data-dir'] ?? process.env.COVE_DATA_DIR ?? path.join(os.homedir(), '.cove'));
  const db = openDatabase(dataDir);
  try {
    const keys = createKeysService(db);
    const limits = createKeyLimits(db);
    switch (action) {
      case 'create': {
        const patch = limitFlags(values, false);
        const admin = values.admin;
        // One transaction: a key never exists, even for a moment, without the limits it was created with.
        const { key, info, own } = db.transaction(() => {
          const created = keys.create({ name: values.name ?? 'key', admin });
          return { ...created, own: limits.set(created.info.id, patch) };
        })();
        if (values.json) return void json({ key, ...info, limits: own });
        process.stdout.write(`${key}\n`);
        process.stderr.write(`created ${info.admin ? 'admin ' : ''}key ${info.id} (${info.name}), ${showOwn(own, info.admin)}; it is not shown again\n`);
        return;
      }
      case 'list':
        if (values.json) return void json(keys.list().map((k) => ({ ...k, limits: limits.of(k.id).own })));
        for (const k of keys.list()) {
          const state = k.revokedAt ? `revoked ${k.revokedAt}` : `last used ${k.lastUsedAt ?? 'never'}`;
          const own = limits.of(k.id).own;
          process.stdout.write(`${k.id}  ${k.prefix}…  ${k.name}${k.admin ? ' (admin)' : ''}  created ${k.createdAt}  ${state}  ${showOwn(own, k.admin)}\n`);
        }
        return;
      case 'set': {
        if (!target) throw new Error('set needs a key id or prefix');
        const patch = limitFlags(values, true);
        if (!Object.keys(patch).length) throw new Error(`set needs at least one limit (${LIMIT_NAMES.map((n) => `--${LIMITS[n].flag}`).join(', ')})`);
        const matching = keys.list().filter((k) => !k.revokedAt && (k.id === target || k.prefix === target));
        if (matching.length === 0) throw new Error(`no active key with id or prefix ${target}`);
        if (matching.length > 1) throw new Error(`several keys have the prefix ${target}; give the id`);
        const own = limits.set(matching[0].id, patch);
        if (values.json) return void json({ ...matching[0], limits: own });
        process.stdout.write(`key ${matching[0].id}: ${showOwn(own, matching[0].admin)}\n`);
        return;
      }
      case 'revoke':
        if (!target) throw new Error('revoke needs a key id or prefix');
        if (!keys.revoke(target)) throw new Error(`no active key with id or prefix ${target}`);
        if (values.json) return void json(keys.list().find((k) => k.id === target || k.prefix === target));
        process.stdout.write(`revoked ${target}\n`);
        return;
      default:
        throw new Error(`unknown keys action "${action}"\n\n${KEYS_USAGE}`);
    }
  } finally {
    db.close();
  }
}
