import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createDirectoryStore } from './store';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-archive-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('directory archive store', () => {
  it('gives back exactly what was put, compressed on disk', async () => {
    const dir = tempDir();
    const store = createDirectoryStore(dir);
    const data = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(8 << 20, 'a')]);
    const { bytes } = await store.put('s-1', Readable.from([data.subarray(0, 100), data.subarray(100)]));
    expect(bytes).toBeLessThan(data.length);
    expect(store.has('s-1')).toBe(true);
    expect(readdirSync(dir)).toEqual(['s-1.tar.zst']);
    expect((await readAll(store.get('s-1'))).equals(data)).toBe(true);
    await store.delete('s-1');
    expect(store.has('s-1')).toBe(false);
    await store.delete('s-1');
  });

  it('leaves nothing under the key when the data fails midway', async () => {
    const dir = tempDir();
    const store = createDirectoryStore(dir);
    const failing = new Readable({
      read() {
        this.push(randomBytes(1 << 20));
        this.destroy(new Error('tar failed'));
      },
    });
    await expect(store.put('s-2', failing)).rejects.toThrow(/tar failed/);
    expect(store.has('s-2')).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('fails a get of a missing or corrupt archive, refuses keys that are not names, and sweeps leftovers', async () => {
    const dir = tempDir();
    const store = createDirectoryStore(dir);
    await expect(readAll(store.get('missing'))).rejects.toThrow(/No archive/);
    writeFileSync(path.join(dir, 'bad.tar.zst'), 'not zstd');
    await expect(readAll(store.get('bad'))).rejects.toThrow(/zstd failed/);
    expect(() => store.has('../etc')).toThrow(/Invalid archive key/);
    writeFileSync(path.join(dir, 'half.tar.zst.partial'), 'x');
    store.sweep();
    expect(readdirSync(dir)).toEqual(['bad.tar.zst']);
  });
});
