import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { commandOutput } from '../../../lib/command-stream';

/**
 * Where archived sandboxes' files live. An entry appears only once it is complete: a put that fails or is cut short
 * (the server killed midway) leaves nothing under its key. A directory on the host is the one store today; the
 * interface is what an S3-compatible store would implement too.
 */
export interface ArchiveStore {
  /** Stores `data` under `key`, compressed; resolves with the bytes stored once it is complete and durable. */
  put(key: string, data: Readable): Promise<{ bytes: number }>;
  /** The data stored under `key`, as it was given to put. */
  get(key: string): Readable;
  has(key: string): boolean;
  /** No error when there is nothing under `key`. */
  delete(key: string): Promise<void>;
  /** Removes what puts that never finished left behind (at start). */
  sweep(): void;
}

const KEY = /^[A-Za-z0-9-]{1,100}$/;
const SUFFIX = '.tar.zst';
const PARTIAL = '.partial';

function checkKey(key: string): void {
  if (!KEY.test(key)) throw new Error(`Invalid archive key ${JSON.stringify(key.slice(0, 40))}`);
}

/**
 * Archives as zstd-compressed files in `dir` (`<key>.tar.zst`), written beside as `.partial`, flushed to disk and
 * renamed into place. zstd's fastest level on every core: archiving is bound by reading the files, not by squeezing
 * them.
 */
export function createDirectoryStore(dir: string): ArchiveStore {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fileOf = (key: string) => {
    checkKey(key);
    return path.join(dir, key + SUFFIX);
  };

  return {
    async put(key, data) {
      const file = fileOf(key);
      const partial = file + PARTIAL;
      try {
        await pipeline(commandOutput('zstd', ['-1', '-T0', '-q', '-c'], data), createWriteStream(partial, { mode: 0o600 }));
        const handle = await open(partial, 'r');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        renameSync(partial, file);
        const folder = await open(dir, 'r');
        try {
          await folder.sync();
        } finally {
          await folder.close();
        }
      } catch (err) {
        rmSync(partial, { force: true });
        throw err;
      }
      return { bytes: statSync(file).size };
    },

    get(key) {
      const file = fileOf(key);
      if (!existsSync(file)) {
        const missing = new PassThrough();
        process.nextTick(() => missing.destroy(new Error(`No archive ${key}`)));
        return missing;
      }
      return commandOutput('zstd', ['-d', '-q', '-c'], createReadStream(file));
    },

    has: (key) => existsSync(fileOf(key)),

    async delete(key) {
      await Promise.all([rm(fileOf(key), { force: true }), rm(fileOf(key) + PARTIAL, { force: true })]);
    },

    sweep() {
      for (const name of readdirSync(dir)) if (name.endsWith(PARTIAL)) rmSync(path.join(dir, name), { force: true });
    },
  };
}
