import { randomBytes } from 'node:crypto';
import { chown, open, realpath, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { CoveError, fromOsError } from '../../../lib/errors';

const READ_CHUNK = 256 * 1024;

/**
 * Replaces every literal occurrence of `pattern` in a file by `value`, streaming through a temp file beside it (so
 * memory stays flat and a failure leaves the original untouched), then renames it over the original, keeping mode
 * and owner. A file without any occurrence is not rewritten. Returns the number of replacements.
 */
export async function replaceInFile(file: string, pattern: string, value: string): Promise<number> {
  let target: string;
  try {
    target = await realpath(file); // write through symbolic links instead of replacing them
  } catch (err) {
    throw fromOsError(err, file);
  }
  const st = await stat(target).catch((err: unknown) => {
    throw fromOsError(err, file);
  });
  if (st.isDirectory()) throw new CoveError('IS_A_DIRECTORY', `Is a directory: ${file}`);

  const needle = Buffer.from(pattern, 'utf8');
  const replacement = Buffer.from(value, 'utf8');
  const temp = path.join(path.dirname(target), `.${path.basename(target).slice(0, 200)}.cove-replace-${randomBytes(6).toString('hex')}`);
  const input = await open(target, 'r').catch((err: unknown) => {
    throw fromOsError(err, file);
  });
  let output;
  let count = 0;
  try {
    output = await open(temp, 'wx', 0o600);
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let carry: Buffer = Buffer.alloc(0);
    for (;;) {
      const { bytesRead } = await input.read(buf, 0, READ_CHUNK, null);
      const eof = bytesRead === 0;
      const text = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      // Bytes past safeEnd might be the start of an occurrence that the next chunk completes.
      const safeEnd = eof ? text.length : Math.max(0, text.length - (needle.length - 1));
      let pos = 0;
      for (let hit = text.indexOf(needle); hit >= 0 && hit < safeEnd; hit = text.indexOf(needle, pos)) {
        if (hit > pos) await output.write(text.subarray(pos, hit));
        if (replacement.length) await output.write(replacement);
        pos = hit + needle.length;
        count++;
      }
      const keepFrom = Math.max(pos, safeEnd);
      if (keepFrom > pos) await output.write(text.subarray(pos, keepFrom));
      if (eof) break;
      carry = Buffer.from(text.subarray(keepFrom));
    }
    if (count > 0) {
      await output.chmod(st.mode & 0o7777);
      if (process.getuid?.() === 0) await chown(temp, st.uid, st.gid);
    }
    await output.close();
    output = undefined;
    if (count > 0) await rename(temp, target);
    else await unlink(temp);
    return count;
  } catch (err) {
    await output?.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw fromOsError(err, file);
  } finally {
    await input.close().catch(() => {});
  }
}
