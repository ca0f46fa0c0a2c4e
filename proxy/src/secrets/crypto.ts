import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * Secrets' values at rest: AES-256-GCM under one key per server, each value bound to its secret's id (as associated
 * data), so a sealed value moved to another row does not open. The key is COVE_SECRET_KEY's (at least 32 characters,
 * stretched with HKDF), or 32 random bytes in `<dataDir>/secrets.key` (owner-only) made at first start.
 */
const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_FILE = 'secrets.key';

/** The key secrets are sealed with: from the configured text, else the data dir's key file (made when missing). */
export function loadSecretKey(dataDir: string, configured: string | undefined): Buffer {
  if (configured !== undefined) {
    // config.ts holds it to 32 characters at least.
    return Buffer.from(hkdfSync('sha256', configured, 'cove', 'cove secrets v1', 32));
  }
  const file = path.join(dataDir, KEY_FILE);
  if (!existsSync(file)) {
    try {
      // O_EXCL: of two servers starting on one data dir, one makes the key and the other reads it.
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, randomBytes(32).toString('base64'));
      closeSync(fd);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new Error(`${file} does not hold a secrets key (32 bytes, base64)`);
  return key;
}

/** `value` sealed for the secret `id`. */
export function seal(key: Buffer, id: string, value: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(id));
  const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
}

/** The value sealed for the secret `id`; throws when the key (or the id) is not the one it was sealed with. */
export function open(key: Buffer, id: string, sealed: string): string {
  const [version, data] = sealed.split('.');
  if (version !== VERSION || !data) throw new Error('not a sealed secret value');
  const raw = Buffer.from(data, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(id));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
}
