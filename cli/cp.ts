import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { FileInfo } from '../wire/files';
import { CLIENT_OPTIONS_HELP, expectPositionals, parseCommand, UsageError } from './args';
import { ApiError, createClient, type Client } from './client';
import { loadConnection } from './config';
import { createProgress, formatBytes, print, printHelp, printJson, type Progress } from './output';

const CP_USAGE = `Usage: cove cp SRC DST

Copies a file or a folder (with everything in it) between this machine and a sandbox. One side is ID:PATH (a
sandbox's id or name, and a path in it; relative paths start in the sandbox's work dir), the other a local path
(write ./name:x for a local name with a colon).

  - A file lands in DST when DST is an existing folder or ends with "/", else at DST itself.
  - A folder lands inside DST when DST is an existing folder, else becomes DST; SRC ending in "/." copies the
    folder's contents into DST.

Files stream both ways (never whole in memory); a progress bar shows on a terminal. Modes of executable files are
kept; links to folders, sockets and devices are skipped.

${CLIENT_OPTIONS_HELP}`;

/** One side of a copy: a local path, or a path in a sandbox. */
type Location = { sandbox?: undefined; path: string } | { sandbox: string; path: string };

/**
 * Reads `ID:PATH` as a sandbox path and anything else as a local one, as `docker cp` does: a path starting with `/`,
 * `.` or `~` is always local (so `./a:b` is a local file), and a bare `ID:` is the sandbox's home folder.
 */
export function parseLocation(arg: string): Location {
  if (arg === '') throw new UsageError('an empty path');
  if (/^[/.~]/.test(arg)) return { path: arg };
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*):(.*)$/s.exec(arg);
  if (!m) return { path: arg };
  return { sandbox: m[1], path: m[2] || '.' };
}

/**
 * Where a copied item named `name` lands, given the destination and whether that is an existing folder; `paths` is
 * the path flavour of the destination's side.
 */
export function landingPath(dst: string, dstIsFolder: boolean, name: string, paths: path.PlatformPath, intoContents = false): string {
  if (intoContents) return dst;
  return dstIsFolder || dst.endsWith('/') ? paths.join(dst, name) : dst;
}

/** `SRC/.`: the folder's contents, not the folder. */
const contentsOf = (src: string) => src === '.' || src.endsWith('/.');

interface FileCopy {
  from: string;
  to: string;
  size: number;
  /** Permission bits (0o755), when worth keeping. */
  mode?: number;
}

/** What a copy does: folders to create (parents first), then files. */
interface Plan {
  folders: string[];
  files: FileCopy[];
  skipped: string[];
}

interface Summary {
  source: string;
  destination: string;
  files: number;
  folders: number;
  bytes: number;
  skipped: string[];
}

const executable = (st: Stats) => (st.mode & 0o111 ? st.mode & 0o777 : undefined);

/** A local folder's tree, mapped under `root` in the sandbox. */
async function walkLocal(dir: string, root: string, plan: Plan): Promise<void> {
  plan.folders.push(root);
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const local = path.join(dir, entry.name);
    const remote = path.posix.join(root, entry.name);
    if (entry.isDirectory()) {
      await walkLocal(local, remote, plan);
      continue;
    }
    const st = entry.isSymbolicLink() ? await stat(local).catch(() => undefined) : await stat(local);
    if (st?.isFile()) plan.files.push({ from: local, to: remote, size: st.size, mode: executable(st) });
    else plan.skipped.push(local);
  }
}

/** A sandbox folder's tree (listed one level at a time), mapped under `root` on this machine. */
async function walkRemote(client: Client, base: string, dir: string, root: string, plan: Plan): Promise<void> {
  plan.folders.push(root);
  const entries = await client.json<FileInfo[]>(`${base}/files`, { query: { path: dir } });
  for (const entry of entries) {
    const remote = path.posix.join(dir, entry.name);
    const local = path.join(root, entry.name);
    if (entry.isDir) await walkRemote(client, base, remote, local, plan);
    else if (entry.mode.startsWith('-')) plan.files.push({ from: remote, to: local, size: entry.size, mode: parseInt(entry.permissions, 8) & 0o777 });
    else plan.skipped.push(remote);
  }
}

/** What a path in the sandbox is; undefined when nothing is there. */
async function remoteInfo(client: Client, base: string, p: string): Promise<FileInfo | undefined> {
  try {
    return await client.json<FileInfo>(`${base}/files/info`, { query: { path: p } });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}

/** Counts bytes into the progress bar as they pass. */
function counter(progress: Progress, name: string): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      progress.add(chunk.length, name);
      done(null, chunk);
    },
  });
}

/** A multipart/form-data body of one `file` part, streamed from disk: its length is known before it is read. */
function multipartFile(file: FileCopy, progress: Progress): { body: AsyncIterable<Uint8Array>; contentType: string; length: number } {
  const boundary = `cove-${randomBytes(16).toString('hex')}`;
  const filename = path.basename(file.from).replace(/["\\\r\n]/g, '_');
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  async function* body(): AsyncGenerator<Uint8Array> {
    yield head;
    for await (const chunk of createReadStream(file.from)) {
      progress.add((chunk as Buffer).length, file.from);
      yield chunk as Buffer;
    }
    yield tail;
  }
  return { body: body(), contentType: `multipart/form-data; boundary=${boundary}`, length: head.length + file.size + tail.length };
}

async function upload(client: Client, sandbox: string, src: string, dst: string, showProgress: boolean): Promise<Summary> {
  const st = await stat(src).catch((err: NodeJS.ErrnoException) => {
    throw new Error(err.code === 'ENOENT' ? `${src}: no such file or folder` : `${src}: ${err.message}`);
  });
  const { base, id } = await client.toolbox(sandbox);
  const target = await remoteInfo(client, base, dst);
  const plan: Plan = { folders: [], files: [], skipped: [] };
  if (st.isFile()) {
    plan.files.push({ from: src, to: landingPath(dst, target?.isDir === true, path.basename(src), path.posix), size: st.size, mode: executable(st) });
  } else if (st.isDirectory()) {
    if (target && !target.isDir) throw new Error(`cannot copy the folder ${src} onto the file ${id}:${dst}`);
    await walkLocal(src, landingPath(dst, target?.isDir === true, path.basename(path.resolve(src)), path.posix, contentsOf(src)), plan);
  } else {
    throw new Error(`${src} is neither a file nor a folder`);
  }

  const total = plan.files.reduce((n, f) => n + f.size, 0);
  const progress = await createProgress(total, showProgress);
  try {
    for (const folder of plan.folders) await client.send(`${base}/files/folder`, { method: 'POST', query: { path: folder } });
    for (const file of plan.files) {
      const { body, contentType, length } = multipartFile(file, progress);
      await client.send(`${base}/files/upload`, {
        method: 'POST',
        query: { path: file.to },
        headers: { 'Content-Type': contentType, 'Content-Length': String(length) },
        body,
      });
      if (file.mode !== undefined) await client.send(`${base}/files/permissions`, { method: 'POST', query: { path: file.to, mode: file.mode.toString(8).padStart(3, '0') } });
    }
  } finally {
    progress.stop();
  }
  return { source: src, destination: `${id}:${dst}`, files: plan.files.length, folders: plan.folders.length, bytes: total, skipped: plan.skipped };
}

async function download(client: Client, sandbox: string, src: string, dst: string, showProgress: boolean): Promise<Summary> {
  const { base, id } = await client.toolbox(sandbox);
  const info = await client.json<FileInfo>(`${base}/files/info`, { query: { path: src } });
  const local = await stat(dst).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  const plan: Plan = { folders: [], files: [], skipped: [] };
  if (!info.isDir) {
    if (!info.mode.startsWith('-')) throw new Error(`${id}:${src} is not a regular file`);
    plan.files.push({ from: src, to: landingPath(dst, local?.isDirectory() === true, info.name, path), size: info.size, mode: parseInt(info.permissions, 8) & 0o777 });
  } else {
    if (local && !local.isDirectory()) throw new Error(`cannot copy the folder ${id}:${src} onto the file ${dst}`);
    await walkRemote(client, base, src, landingPath(dst, local?.isDirectory() === true, info.name, path, contentsOf(src)), plan);
  }

  const total = plan.files.reduce((n, f) => n + f.size, 0);
  const progress = await createProgress(total, showProgress);
  try {
    for (const folder of plan.folders) await mkdir(folder, { recursive: true });
    for (const file of plan.files) {
      const res = await client.send(`${base}/files/download`, { query: { path: file.from } });
      if (!res.body) throw new Error(`the server sent no body for ${id}:${file.from}`);
      await mkdir(path.dirname(path.resolve(file.to)), { recursive: true });
      // Written beside its target and renamed at the end: a copy cut short never leaves half a file under the name.
      const partial = `${file.to}.cove-${randomBytes(4).toString('hex')}.part`;
      try {
        await pipeline(Readable.fromWeb(res.body as unknown as NodeReadableStream<Uint8Array>), counter(progress, file.from), createWriteStream(partial, { mode: file.mode }));
        await rename(partial, file.to);
      } catch (err) {
        await rm(partial, { force: true });
        throw err;
      }
    }
  } finally {
    progress.stop();
  }
  return { source: `${id}:${src}`, destination: dst, files: plan.files.length, folders: plan.folders.length, bytes: total, skipped: plan.skipped };
}

/** `cove cp`: files and folders between this machine and a sandbox, through the toolbox file routes. */
export async function runCpCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {});
  if (values.help) return printHelp(CP_USAGE, values.json);
  const [srcArg, dstArg] = expectPositionals(positionals, ['SRC', 'DST']);
  const src = parseLocation(srcArg);
  const dst = parseLocation(dstArg);
  if (src.sandbox !== undefined && dst.sandbox !== undefined) throw new UsageError('both sides are in a sandbox: one must be a local path');
  if (src.sandbox === undefined && dst.sandbox === undefined) throw new UsageError('both sides are local: one must be ID:PATH');
  const client = createClient(loadConnection(values));
  const show = !values.json;
  const summary =
    dst.sandbox !== undefined ? await upload(client, dst.sandbox, src.path, dst.path, show) : await download(client, src.sandbox!, src.path, dst.path, show);
  if (values.json) return printJson(summary);
  const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;
  const what = summary.folders ? `${count(summary.files, 'file')} in ${count(summary.folders, 'folder')}` : count(summary.files, 'file');
  print(`Copied ${what} (${formatBytes(summary.bytes)}) to ${summary.destination}`);
  for (const skipped of summary.skipped) process.stderr.write(`cove: skipped ${skipped} (not a file or folder)\n`);
}
