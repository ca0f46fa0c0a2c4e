import { randomBytes } from 'node:crypto';
import { close, open, writev, type Stats } from 'node:fs';
import { chown, chmod, mkdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CoveError, fromOsError } from '../../../lib/errors';

/**
 * Bytes the file writer takes before it applies backpressure. While one write is in flight, everything that arrives
 * meanwhile is gathered (up to this much) and written with one writev when it completes.
 */
const WRITE_BATCH = 4 * 1024 * 1024;

const openNew = (file: string) =>
  new Promise<number>((resolve, reject) => open(file, 'wx', 0o600, (err, fd) => (err ? reject(err) : resolve(fd))));

/** Writes every byte of `bufs` at the current offset of `fd`, continuing after short writes. */
function writevAll(fd: number, bufs: Buffer[]): Promise<number> {
  return new Promise((resolve, reject) => {
    let total = 0;
    const step = (rest: Buffer[]) =>
      writev(fd, rest, (err, n) => {
        if (err) return reject(err);
        total += n;
        // Short write (a full disk is reported by the next call): drop what was written and go on with the rest.
        while (rest.length && n >= rest[0].length) n -= rest.shift()!.length;
        if (!rest.length) return resolve(total);
        if (n > 0) rest[0] = rest[0].subarray(n);
        step(rest);
      });
    step(bufs);
  });
}

/**
 * A file writer for large uploads. Network chunks are small (64 KiB); Writable gathers those that arrive while a
 * write is in flight and hands them to `_writev` together, so a GiB upload is a few hundred writev calls, with no
 * copy of the bytes and no buffer of its own. The file is created exclusively (`wx`): a temp name is never shared.
 */
class FileSink extends Writable {
  bytesWritten = 0;
  private fd: Promise<number>;
  private inflight: Promise<unknown> = Promise.resolve();

  constructor(file: string) {
    super({ highWaterMark: WRITE_BATCH });
    this.fd = openNew(file);
    this.fd.catch(() => {}); // reported by the first write
  }

  private put(bufs: Buffer[], cb: (err?: Error | null) => void): void {
    const done = this.fd.then((fd) => writevAll(fd, bufs)).then((n) => void (this.bytesWritten += n));
    this.inflight = done.catch(() => {});
    done.then(() => cb(), cb);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.put([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.put(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    // Empty uploads still create the file.
    this.fd.then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Close only after the last write settled, so the descriptor is never reused under a pending write.
    void this.inflight
      .then(() => this.fd)
      .then((fd) => new Promise<void>((resolve) => close(fd, () => resolve())))
      .catch(() => {})
      .then(() => cb(err));
  }
}

/** Who owns what the agent creates, when user code runs as another account. */
interface Owner {
  uid?: number;
  gid?: number;
}

/**
 * A file received into a temp file beside its target and not yet visible under its name. `commit()` renames it
 * into place; `discard()` removes the temp file and any folders that were created for it.
 */
export interface StagedFile {
  target: string;
  size: number;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

const ignorePermission = (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPERM') throw err;
};

/**
 * Creates `dir` and its missing parents, owned by `owner`; returns the folders created, deepest last, so a failure
 * can remove them again.
 */
export async function makeDirs(dir: string, owner: Owner): Promise<string[]> {
  let first: string | undefined;
  try {
    first = await mkdir(dir, { recursive: true });
  } catch (err) {
    // A recursive mkdir only fails with EEXIST when a file stands where a folder should be.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new CoveError('NOT_A_DIRECTORY', `A file is in the way of the folder ${dir}`);
    throw fromOsError(err, dir);
  }
  if (!first) return [];
  const created: string[] = [];
  for (let d = dir; ; d = path.dirname(d)) {
    created.unshift(d);
    if (d === first || d === path.dirname(d)) break;
  }
  if (owner.uid !== undefined) {
    try {
      for (const d of created) await chown(d, owner.uid, owner.gid ?? -1);
    } catch (err) {
      await removeCreated(created);
      throw fromOsError(err, dir);
    }
  }
  return created;
}

/** Removes folders created for a failed operation, deepest first, only while they are empty. */
export async function removeCreated(dirs: string[]): Promise<void> {
  for (const d of [...dirs].reverse()) {
    try {
      await rmdir(d);
    } catch {
      return; // something else lives there now: keep it and everything above
    }
  }
}

/**
 * Streams `source` into a temp file in the target's folder (so the final rename is atomic and on the same file
 * system). Never leaves anything behind on failure: the temp file and any created parent folders are removed, and
 * the target is untouched. A full disk becomes INSUFFICIENT_STORAGE. An existing target keeps its mode and owner.
 */
export async function stageUpload(target: string, source: Readable, owner: Owner): Promise<StagedFile> {
  let existing: Stats | undefined;
  try {
    existing = await stat(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw fromOsError(err, target);
  }
  if (existing?.isDirectory()) throw new CoveError('IS_A_DIRECTORY', `Cannot write a file over the directory ${target}`);

  const created = await makeDirs(path.dirname(target), owner);
  const temp = path.join(path.dirname(target), `.${path.basename(target).slice(0, 200)}.cove-upload-${randomBytes(6).toString('hex')}`);
  let size = 0;
  const cleanup = async () => {
    await unlink(temp).catch(() => {});
    await removeCreated(created);
  };
  try {
    const out = new FileSink(temp);
    await pipeline(source, out);
    size = out.bytesWritten;
    // The final mode and owner are set on the temp file, so the target never appears with the wrong ones.
    await chmod(temp, existing ? existing.mode & 0o7777 : 0o644);
    const uid = existing ? existing.uid : owner.uid;
    const gid = existing ? existing.gid : owner.gid;
    // Only root can give a file away; an agent running as the user already creates files as that user.
    if (uid !== undefined && uid !== process.getuid?.()) await chown(temp, uid, gid ?? -1).catch(ignorePermission);
  } catch (err) {
    await cleanup();
    throw fromOsError(err, target);
  }
  return {
    target,
    get size() {
      return size;
    },
    async commit() {
      try {
        await rename(temp, target);
      } catch (err) {
        await cleanup();
        throw fromOsError(err, target);
      }
    },
    discard: cleanup,
  };
}
