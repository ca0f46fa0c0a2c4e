import type { Dirent } from 'node:fs';
import { open, opendir } from 'node:fs/promises';
import path from 'node:path';
import type { Match } from '../../../wire/files';
import { compilePathGlob } from '../system/glob';

/** Files searched at once: enough to hide disk latency, few enough not to starve other requests. */
const CONCURRENCY = 8;
const READ_CHUNK = 256 * 1024;
/** Files with a NUL byte in their first bytes are binary and skipped, as grep and git do. */
const BINARY_SNIFF = 8000;
/** A line longer than this is reported cut short (minified bundles have multi-megabyte lines). */
const MAX_LINE = 64 * 1024;
/** Answers stop growing here; the caller is told the result is truncated. */
export const MAX_RESULTS = 100_000;

/** One entry met by a walk: `abs` to open, `shown` as the client should see it (relative if they asked so). */
interface WalkEntry {
  abs: string;
  shown: string;
  /** Path relative to the walk's root, with `/`. */
  rel: string;
  dirent: Dirent;
}

/**
 * Walks a tree depth-first in name order without following symbolic links (as Go's filepath.Walk, which Daytona
 * uses). Unreadable folders are skipped rather than failing the whole walk. `visit` may return false to stop.
 */
async function walk(
  root: { abs: string; shown: string },
  visit: (entry: WalkEntry) => boolean | void | Promise<boolean | void>,
): Promise<void> {
  const stack: { abs: string; shown: string; rel: string }[] = [{ abs: root.abs, shown: root.shown, rel: '' }];
  while (stack.length) {
    const dir = stack.pop()!;
    const entries: Dirent[] = [];
    try {
      for await (const d of await opendir(dir.abs, { bufferSize: 256 })) entries.push(d);
    } catch {
      continue;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const subdirs: { abs: string; shown: string; rel: string }[] = [];
    for (const dirent of entries) {
      const entry = {
        abs: path.join(dir.abs, dirent.name),
        shown: path.join(dir.shown, dirent.name),
        rel: dir.rel ? `${dir.rel}/${dirent.name}` : dirent.name,
        dirent,
      };
      if ((await visit(entry)) === false) return;
      if (dirent.isDirectory()) subdirs.push(entry);
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]);
  }
}

/**
 * Lines of one file that contain `needle` (a literal), streamed in chunks so memory stays flat whatever the file
 * size. Returns [] for binary files and files that cannot be read.
 */
async function grepFile(abs: string, shown: string, needle: Buffer, limit: number): Promise<Match[]> {
  const matches: Match[] = [];
  let fh;
  try {
    fh = await open(abs, 'r');
  } catch {
    return matches;
  }
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let carry: Buffer = Buffer.alloc(0); // the incomplete last line of the previous chunk
    let lineNo = 1; // number of the first line in `carry`
    let first = true;
    let skippingLongLine = false; // the rest of an over-long line already reported or dropped
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, null);
      const eof = bytesRead === 0;
      if (first) {
        first = false;
        if (buf.subarray(0, Math.min(bytesRead, BINARY_SNIFF)).includes(0)) return [];
      }
      let text = eof ? carry : carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      if (skippingLongLine) {
        const nl = text.indexOf(10);
        if (nl < 0) {
          carry = Buffer.alloc(0);
          if (eof) break;
          continue;
        }
        text = text.subarray(nl + 1);
        lineNo++;
        skippingLongLine = false;
      }
      // Only complete lines are searched; the tail waits for the next chunk (or EOF).
      const end = eof ? text.length : text.lastIndexOf(10) + 1;
      let from = 0;
      let hit = text.indexOf(needle, 0);
      while (hit >= 0 && hit < end) {
        lineNo += countNewlines(text, from, hit);
        const lineStart = hit === 0 ? 0 : text.lastIndexOf(10, hit - 1) + 1;
        let lineEnd = text.indexOf(10, hit);
        if (lineEnd < 0 || lineEnd > end) lineEnd = end;
        const stop = Math.min(lineEnd, lineStart + MAX_LINE);
        let content = text.toString('utf8', lineStart, stop);
        if (content.endsWith('\r')) content = content.slice(0, -1);
        matches.push({ file: shown, line: lineNo, content });
        if (matches.length >= limit) return matches;
        from = lineEnd;
        hit = lineEnd >= end ? -1 : text.indexOf(needle, lineEnd);
      }
      lineNo += countNewlines(text, from, end);
      if (eof) break;
      carry = Buffer.from(text.subarray(end));
      if (carry.length > MAX_LINE) {
        // An endless line: search what we have of it once, then drop the rest up to the next newline.
        const hitInLong = carry.indexOf(needle);
        if (hitInLong >= 0) {
          matches.push({ file: shown, line: lineNo, content: carry.toString('utf8', 0, MAX_LINE) });
          if (matches.length >= limit) return matches;
        }
        carry = Buffer.alloc(0);
        skippingLongLine = true;
      }
    }
  } catch {
    // a file that vanished or failed mid-read contributes what was found so far
  } finally {
    await fh.close().catch(() => {});
  }
  return matches;
}

function countNewlines(buf: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = buf.indexOf(10, from); i >= 0 && i < to; i = buf.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * Content search over a tree (or one file): every line containing `pattern`, files in walk order, lines in file
 * order. At most CONCURRENCY files are open at once; the walk pauses while the workers are busy.
 */
export async function findInTree(
  root: { abs: string; shown: string; isFile: boolean },
  pattern: string,
): Promise<{ matches: Match[]; truncated: boolean }> {
  const needle = Buffer.from(pattern, 'utf8');
  if (root.isFile) {
    const matches = await grepFile(root.abs, root.shown, needle, MAX_RESULTS);
    return { matches, truncated: matches.length >= MAX_RESULTS };
  }
  const perFile: Match[][] = [];
  let total = 0;
  let truncated = false;
  const running = new Set<Promise<void>>();
  await walk(root, async (entry) => {
    if (truncated) return false;
    if (!entry.dirent.isFile()) return;
    const slot = perFile.length;
    perFile.push([]);
    const job = grepFile(entry.abs, entry.shown, needle, MAX_RESULTS).then((found) => {
      perFile[slot] = found;
      total += found.length;
      if (total >= MAX_RESULTS) truncated = true;
    });
    const tracked = job.finally(() => running.delete(tracked));
    running.add(tracked);
    if (running.size >= CONCURRENCY) await Promise.race(running);
  });
  await Promise.all(running);
  const matches = perFile.flat();
  if (matches.length > MAX_RESULTS) matches.length = MAX_RESULTS;
  return { matches, truncated };
}

/**
 * Paths under `root` that match the glob as a path glob (system/glob.ts): a pattern without `/` is matched against
 * names, as Daytona's filepath.Match on the base name; one with `/` against the path relative to `root`.
 */
export async function searchTree(root: { abs: string; shown: string }, pattern: string): Promise<{ files: string[]; truncated: boolean }> {
  const glob = compilePathGlob(pattern);
  const files: string[] = [];
  let truncated = false;
  await walk(root, (entry) => {
    if (glob.test(entry.rel)) files.push(entry.shown);
    if (files.length >= MAX_RESULTS) {
      truncated = true;
      return false;
    }
  });
  return { files, truncated };
}
