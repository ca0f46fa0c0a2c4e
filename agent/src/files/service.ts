import { closeSync, createReadStream, fstat, open as openFd, type Dirent } from 'node:fs';
import { chmod, chown, cp, lstat, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  BULK_UPLOAD_FIELD,
  type FileInfo,
  type Match,
  type ReplaceRequest,
  type ReplaceResult,
  type UploadedFile,
} from '../../../wire/files';
import { CoveError, fromOsError } from '../../../lib/errors';
import { boundaryError } from '../boundary';
import type { SandboxContext } from '../system/context';
import { resolvePath } from '../system/paths';
import { groups, toFileInfo, users } from './file-info';
import { findInTree, MAX_RESULTS, searchTree } from './find';
import { readMultipart, type MultipartForm } from './multipart';
import { replaceInFile } from './replace';
import { sendFile } from './send-file';
import { makeDirs as makeParentDirs, removeCreated, stageUpload, type StagedFile } from './upload';

/** Read size of downloads: big reads keep a GiB download near disk speed in a few thousand chunks. */
const READ_CHUNK = 1024 * 1024;

/** A file opened for download: its size (sent as Content-Length) and its bytes. */
interface Download {
  name: string;
  size: number;
  /**
   * Writes exactly `size` bytes to `out` (without ending it) and closes the file; call it once. Rejects if `out`
   * closes first or the file shrank: the length is then wrong and the caller must cut the connection.
   */
  writeTo(out: Writable): Promise<void>;
}

/**
 * Opens a file and measures it through the same descriptor, so the size sent as Content-Length is that of the file
 * actually read. Plain descriptors, not FileHandles: a FileHandle's stream reads through promises, several times
 * slower for GiB files.
 */
function openForRead(abs: string, shownPath: string): Promise<{ fd: number; size: number }> {
  return new Promise((resolvePromise, reject) => {
    openFd(abs, 'r', (err, fd) => {
      if (err) return reject(fromOsError(err, shownPath));
      fstat(fd, (statErr, st) => {
        if (statErr) {
          closeSync(fd);
          return reject(fromOsError(statErr, shownPath));
        }
        resolvePromise({ fd, size: st.size });
      });
    });
  });
}

/** One part of a bulk download: a readable file's bytes, or why a path could not be read. */
export type BulkDownloadPart =
  | { kind: 'file'; filename: string; size: number; body: AsyncIterable<Buffer> }
  | { kind: 'error'; filename: string; error: CoveError };

/**
 * Where the bytes of an upload come from: the raw bytes of the file (`type` is the media type the sender declared),
 * or a multipart/form-data form whose part named `file` holds them. The body is the service's to consume: it is
 * read to its end or destroyed, and an error it fails with (a sender that went away) fails the upload.
 */
export type UploadSource = { kind: 'raw'; body: Readable; type: string } | ({ kind: 'multipart' } & MultipartForm);

function parseMode(mode: string): number {
  return parseInt(mode, 8);
}

/**
 * Files capability: listing, metadata, streamed transfer, moves, permissions, search and replace. Relative paths
 * resolve against the sandbox work dir. Transfers run in constant memory whatever the file size, and an upload
 * either lands whole under its name or leaves nothing behind.
 */
export function createFilesService(ctx: SandboxContext) {
  const owner = ctx.spawnAs;
  const resolve = (p: string) => resolvePath(ctx.workdir, p);
  /** How the client should see paths under `p`: relative when they asked relatively, as Daytona reports them. */
  const shown = (p: string) => path.normalize(p);

  async function statOrThrow(p: string, follow = true) {
    try {
      return follow ? await stat(resolve(p)) : await lstat(resolve(p));
    } catch (err) {
      throw fromOsError(err, p);
    }
  }

  const makeDirs = (dir: string) => makeParentDirs(dir, owner);

  async function stage(target: string, source: Readable): Promise<StagedFile> {
    return stageUpload(resolve(target), source, owner);
  }

  async function receive(target: string, source: UploadSource): Promise<UploadedFile> {
    const abs = resolve(target);
    if (source.kind === 'raw') {
      const staged = await stage(target, source.body);
      await staged.commit();
      return { name: path.basename(abs), path: abs, type: source.type };
    }
    let staged: StagedFile | undefined;
    let type = 'application/octet-stream';
    try {
      await readMultipart(source, {
        onFile: async (part) => {
          if (part.field !== 'file' || staged) {
            part.stream.resume(); // not ours: skip its bytes
            return;
          }
          type = part.mimeType;
          staged = await stage(target, part.stream);
        },
      });
    } catch (err) {
      await staged?.discard();
      throw err;
    }
    if (!staged) throw new CoveError('INVALID_REQUEST', 'The multipart body has no part named "file"');
    await staged.commit();
    return { name: path.basename(abs), path: abs, type };
  }

  return {
    /** Metadata of one file or folder (symbolic links followed). */
    async info(p: string): Promise<FileInfo> {
      const st = await statOrThrow(p);
      const abs = resolve(p);
      return toFileInfo(path.basename(abs) || abs, abs, st);
    },

    /** Entries of a folder, `depth` levels deep, each with its full path. Links are reported, not followed. */
    async list(p = '.', depth = 1): Promise<FileInfo[]> {
      const root = resolve(p);
      const st = await statOrThrow(p);
      if (!st.isDirectory()) throw new CoveError('NOT_A_DIRECTORY', `Not a directory: ${p}`);
      const out: FileInfo[] = [];
      const visit = async (dir: string, level: number): Promise<void> => {
        let entries: Dirent[];
        try {
          entries = await readdir(dir, { withFileTypes: true });
        } catch (err) {
          if (level === 1) throw fromOsError(err, p);
          return; // an unreadable subfolder does not fail a deep listing
        }
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        for (const e of entries) {
          if (out.length >= MAX_RESULTS) return;
          const abs = path.join(dir, e.name);
          let est;
          try {
            est = await lstat(abs);
          } catch {
            continue; // removed meanwhile
          }
          out.push(toFileInfo(e.name, abs, est));
          if (level < depth && est.isDirectory()) await visit(abs, level + 1);
        }
      };
      await visit(root, 1);
      return out;
    },

    /** Deletes a file, an empty folder, or (with `recursive`) a whole tree. */
    async remove(p: string, recursive: boolean): Promise<void> {
      const abs = resolve(p);
      if (abs === '/') throw new CoveError('INVALID_FILE_PATH', 'Refusing to delete the root directory');
      const st = await statOrThrow(p, false);
      try {
        if (!st.isDirectory()) await unlink(abs);
        else if (recursive) await rm(abs, { recursive: true, force: false });
        else await rmdir(abs);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new CoveError('DIRECTORY_NOT_EMPTY', `Directory not empty: ${p} (pass recursive=true to delete it and its contents)`);
        }
        throw fromOsError(err, p);
      }
    },

    /** Creates a folder and its missing parents with `mode` (default 755, not subject to the umask). */
    async createFolder(p: string, mode = '755'): Promise<void> {
      const abs = resolve(p);
      const existing = await stat(abs).catch(() => undefined);
      if (existing && !existing.isDirectory()) throw new CoveError('FILE_EXISTS', `A file already exists at ${p}`);
      const created = await makeDirs(abs);
      try {
        for (const d of created) await chmod(d, parseMode(mode));
      } catch (err) {
        throw fromOsError(err, p);
      }
    },

    /** Moves or renames a file or folder; missing parents of the destination are created. */
    async move(source: string, destination: string): Promise<void> {
      const from = resolve(source);
      const to = resolve(destination);
      await statOrThrow(source, false);
      if (to === from) return;
      if (to.startsWith(`${from}/`)) throw new CoveError('INVALID_REQUEST', `Cannot move ${source} into itself (${destination})`);
      const created = await makeDirs(path.dirname(to));
      try {
        await rename(from, to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') {
          await removeCreated(created);
          throw fromOsError(err, destination);
        }
        // Another file system: copy, then remove the source only once the copy is complete.
        try {
          await cp(from, to, { recursive: true, preserveTimestamps: true, errorOnExist: false, force: true, verbatimSymlinks: true });
        } catch (copyErr) {
          await rm(to, { recursive: true, force: true }).catch(() => {});
          throw fromOsError(copyErr, destination);
        }
        await rm(from, { recursive: true, force: true });
      }
    },

    /** Changes owner (name or uid), group (name or gid) and/or mode of a path. */
    async setPermissions(p: string, opts: { owner?: string; group?: string; mode?: string }): Promise<void> {
      if (!opts.owner && !opts.group && !opts.mode) {
        throw new CoveError('INVALID_REQUEST', 'Nothing to change: pass owner, group and/or mode');
      }
      const uid = opts.owner ? users.id(opts.owner) : -1;
      if (uid === undefined) throw new CoveError('INVALID_REQUEST', `No such user: ${opts.owner}`);
      const gid = opts.group ? groups.id(opts.group) : -1;
      if (gid === undefined) throw new CoveError('INVALID_REQUEST', `No such group: ${opts.group}`);
      await statOrThrow(p);
      const abs = resolve(p);
      try {
        if (uid !== -1 || gid !== -1) await chown(abs, uid, gid);
        if (opts.mode) await chmod(abs, parseMode(opts.mode));
      } catch (err) {
        throw fromOsError(err, p);
      }
    },

    /** Opens a regular file for download. The stream closes the file when it ends or is destroyed. */
    async download(p: string): Promise<Download> {
      const abs = resolve(p);
      const st = await statOrThrow(p);
      if (st.isDirectory()) throw new CoveError('IS_A_DIRECTORY', `Is a directory: ${p}`);
      // Opening a FIFO or device could block a worker thread forever.
      if (!st.isFile()) throw new CoveError('INVALID_REQUEST', `Not a regular file: ${p}`);
      const { fd, size } = await openForRead(abs, p);
      // Exactly `size` bytes, the Content-Length already promised, even if the file grows meanwhile.
      return { name: path.basename(abs), size, writeTo: (out) => sendFile(fd, size, out) };
    },

    /**
     * Several files, one part per path in order (filename = the path as requested): the bytes of a readable file,
     * or the error of a path that failed. Each file is opened only when the consumer asks for its part, and closed
     * when its bytes were read or the consumer stops.
     */
    async *bulkDownload(paths: string[]): AsyncGenerator<BulkDownloadPart> {
      for (const p of paths) {
        let fd: number;
        let size = 0;
        try {
          const st = await statOrThrow(p);
          if (st.isDirectory()) throw new CoveError('IS_A_DIRECTORY', `Is a directory: ${p}`);
          if (!st.isFile()) throw new CoveError('INVALID_REQUEST', `Not a regular file: ${p}`);
          ({ fd, size } = await openForRead(resolve(p), p));
        } catch (err) {
          yield { kind: 'error', filename: p, error: boundaryError(err, `bulk download of ${p.slice(0, 200)}`) };
          continue;
        }
        if (size === 0) {
          closeSync(fd);
          yield { kind: 'file', filename: p, size, body: (async function* () {})() };
          continue;
        }
        // The stream owns the descriptor: destroying it closes the file once no read is in flight.
        const body = createReadStream('', { fd, highWaterMark: READ_CHUNK, start: 0, end: size - 1 });
        try {
          yield { kind: 'file', filename: p, size, body };
        } finally {
          body.destroy();
        }
      }
    },

    /**
     * Receives one file, from its raw bytes or from the `file` part of a form. Written under a temp name and renamed
     * into place only once complete; on failure nothing is left and the body is destroyed.
     */
    async upload(target: string, source: UploadSource): Promise<UploadedFile> {
      try {
        return await receive(target, source);
      } catch (err) {
        source.body.destroy();
        throw err;
      }
    },

    /**
     * Receives `files[i].path` / `files[i].file` pairs (a file part without its path field uses its filename, which
     * the SDK sets to the destination). All files are staged first and renamed into place only when the whole body
     * arrived, so a failed request writes none of them.
     */
    async bulkUpload(form: MultipartForm): Promise<UploadedFile[]> {
      const destinations = new Map<number, string>();
      const staged: { file: StagedFile; type: string }[] = [];
      try {
        await readMultipart(form, {
          onField: (name, value) => {
            const m = BULK_UPLOAD_FIELD.exec(name);
            if (m && m[2] === 'path') destinations.set(Number(m[1]), value);
          },
          onFile: async (part) => {
            const m = BULK_UPLOAD_FIELD.exec(part.field);
            if (!m || m[2] !== 'file') {
              part.stream.resume();
              return;
            }
            const dest = destinations.get(Number(m[1])) || part.filename;
            if (!dest) throw new CoveError('INVALID_REQUEST', `No destination for ${part.field}: send files[${m[1]}].path first`);
            staged.push({ file: await stage(dest, part.stream), type: part.mimeType });
          },
        });
      } catch (err) {
        for (const s of staged) await s.file.discard();
        throw err;
      }
      const done: UploadedFile[] = [];
      for (const [i, s] of staged.entries()) {
        try {
          await s.file.commit();
        } catch (err) {
          for (const rest of staged.slice(i + 1)) await rest.file.discard();
          throw err;
        }
        done.push({ name: path.basename(s.file.target), path: s.file.target, type: s.type });
      }
      return done;
    },

    /** Literal find-and-replace in each file; one result per file, failures reported rather than thrown. */
    async replace(req: ReplaceRequest): Promise<ReplaceResult[]> {
      const results: ReplaceResult[] = [];
      for (const file of req.files) {
        try {
          await replaceInFile(resolve(file), req.pattern, req.newValue);
          results.push({ file, success: true });
        } catch (err) {
          results.push({ file, success: false, error: boundaryError(err, `replace in ${file.slice(0, 200)}`).message });
        }
      }
      return results;
    },

    /** Lines containing `pattern` (a literal) under a folder, or in one file; binary files skipped. */
    async find(p: string, pattern: string): Promise<{ matches: Match[]; truncated: boolean }> {
      const st = await statOrThrow(p);
      return findInTree({ abs: resolve(p), shown: shown(p), isFile: !st.isDirectory() }, pattern);
    },

    /** Paths under a folder whose name matches a glob (`*.ts`; a pattern with `/` matches the relative path). */
    async search(p: string, pattern: string): Promise<{ files: string[]; truncated: boolean }> {
      const st = await statOrThrow(p);
      if (!st.isDirectory()) throw new CoveError('NOT_A_DIRECTORY', `Not a directory: ${p}`);
      return searchTree({ abs: resolve(p), shown: shown(p) }, pattern);
    },

    async close(): Promise<void> {},
  };
}
export type FilesService = ReturnType<typeof createFilesService>;
