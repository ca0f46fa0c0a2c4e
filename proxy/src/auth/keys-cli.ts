import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openDatabase } from '../store/db';
import { createKeysService } from './api-keys';

const KEYS_USAGE = `Usage: cove keys <create|list|revoke> [options]

  cove keys create [--name NAME] [--admin]   create a key and print it (shown once)
  cove keys list                             list keys (never the keys themselves)
  cove keys revoke ID|PREFIX                 revoke a key at once

  --data-dir DIR   the server's data dir (COVE_DATA_DIR, default ~/.cove)`;

/** `cove keys …`: manages API keys in the data dir's database (works while the server runs). */
export function runKeysCommand(argv: string[]): void {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { name: { type: 'string' }, admin: { type: 'boolean' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [action, target] = positionals;
  if (values.help || !action) {
    process.stdout.write(`${KEYS_USAGE}\n`);
    return;
  }
  const dataDir = path.resolve(values['data-dir'] ?? process.env.COVE_DATA_DIR ?? path.join(os.homedir(), '.cove'));
  const db = openDatabase(dataDir);
  try {
    const keys = createKeysService(db);
    switch (action) {
      case 'create': {
        const { key, info } = keys.create({ name: values.name ?? 'key', admin: values.admin });
        process.stdout.write(`${key}\n`);
        process.stderr.write(`created ${info.admin ? 'admin ' : ''}key ${info.id} (${info.name}); it is not shown again\n`);
        return;
      }
      case 'list':
        for (const k of keys.list()) {
          const state = k.revokedAt ? `revoked ${k.revokedAt}` : `last used ${k.lastUsedAt ?? 'never'}`;
          process.stdout.write(`${k.id}  ${k.prefix}…  ${k.name}${k.admin ? ' (admin)' : ''}  created ${k.createdAt}  ${state}\n`);
        }
        return;
      case 'revoke':
        if (!target) throw new Error('revoke needs a key id or prefix');
        if (!keys.revoke(target)) throw new Error(`no active key with id or prefix ${target}`);
        process.stdout.write(`revoked ${target}\n`);
        return;
      default:
        throw new Error(`unknown keys action "${action}"\n\n${KEYS_USAGE}`);
    }
  } finally {
    db.close();
  }
}
