import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSecretKey, open, seal } from './crypto';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-secret-key-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('secret values at rest', () => {
  it('seals so that only the same key and secret id open it', () => {
    const key = loadSecretKey(tempDir(), undefined);
    const sealed = seal(key, 'id-1', 'sk-très-secret');
    expect(sealed).not.toContain('sk-');
    expect(seal(key, 'id-1', 'sk-très-secret')).not.toBe(sealed);
    expect(open(key, 'id-1', sealed)).toBe('sk-très-secret');
    expect(() => open(key, 'id-2', sealed)).toThrow();
    expect(() => open(loadSecretKey(tempDir(), undefined), 'id-1', sealed)).toThrow();
    expect(() => open(key, 'id-1', 'v0.abc')).toThrow(/not a sealed secret value/);
  });

  it("makes the data dir's key once, owner-only, and reads it back", () => {
    const dir = tempDir();
    const key = loadSecretKey(dir, undefined);
    expect(key).toHaveLength(32);
    expect(statSync(path.join(dir, 'secrets.key')).mode & 0o777).toBe(0o600);
    expect(loadSecretKey(dir, undefined).equals(key)).toBe(true);
    writeFileSync(path.join(dir, 'secrets.key'), 'short');
    expect(() => loadSecretKey(dir, undefined)).toThrow(/does not hold a secrets key/);
  });

  it('derives the key from COVE_SECRET_KEY, and writes no file then', () => {
    const dir = tempDir();
    const a = loadSecretKey(dir, 'x'.repeat(32));
    expect(a.equals(loadSecretKey(tempDir(), 'x'.repeat(32)))).toBe(true);
    expect(a.equals(loadSecretKey(dir, 'y'.repeat(32)))).toBe(false);
    expect(() => readFileSync(path.join(dir, 'secrets.key'))).toThrow();
  });
});
