import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type * as Ssh2 from 'ssh2';

/** File name of the gateway's host key in the data dir (OpenSSH's name for it). */
const HOST_KEY_FILE = 'ssh_host_ed25519_key';

/**
 * The gateway's ed25519 host key: generated at the first start and kept in the data dir (mode 0600), so clients'
 * known_hosts entries stay valid across restarts. Returned in OpenSSH private-key format.
 */
export function loadOrCreateHostKey(dataDir: string, ssh2: typeof Ssh2): string {
  const file = path.join(dataDir, HOST_KEY_FILE);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { private: key, public: pub } = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'cove-ssh-gateway' });
  // Written beside and renamed into place: a crash never leaves a half-written key that would change on next start.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, key, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  writeFileSync(`${file}.pub`, `${pub}\n`, { mode: 0o644 });
  return key;
}
