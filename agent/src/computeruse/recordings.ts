import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chownSync, createReadStream, mkdirSync } from 'node:fs';
import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { CoveError } from '../../../lib/errors';
import type { Recording } from '../../../wire/computeruse';
import { signalGroup } from '../system/process-group';
import { recordArgs } from './x11';

/** How long start waits for ffmpeg to open its file. */
const OPEN_MS = 5_000;
/** How long ffmpeg gets to finish its file after SIGINT before it is killed. */
const FINISH_MS = 10_000;

interface Active {
  recording: Recording;
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: string;
}

/** `YYYYMMDD_HHMMSS` (UTC), the time part of a recording's file name. */
function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);
}

const ID_PREFIX = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_.*\.mp4$/;

/**
 * Screen recordings: ffmpeg's x11grab of the whole display to `{id}_{label or "session"}_{time}.mp4` in `dir` (the id
 * is in the name, so recordings are found again after the agent restarts). A recording runs until it is stopped or
 * the desktop stops.
 */
export function createRecordings(opts: {
  dir: string;
  /** Owner of the folder, when the agent runs as another account (ffmpeg writes into it as the sandbox user). */
  owner?: { uid: number; gid: number };
  run: { env: () => Record<string, string>; cwd: string; spawnAs: { uid?: number; gid?: number } };
}) {
  const active = new Map<string, Active>();
  /** Recordings of this agent's lifetime that ended, with their precise times. */
  const ended = new Map<string, Recording>();

  function ensureDir(): void {
    const parent = path.dirname(opts.dir);
    for (const d of [parent, opts.dir]) {
      mkdirSync(d, { recursive: true, mode: 0o755 });
      if (opts.owner) chownSync(d, opts.owner.uid, opts.owner.gid);
    }
  }

  async function withSize(r: Recording): Promise<Recording> {
    try {
      const st = await stat(r.filePath);
      return { ...r, sizeBytes: st.size };
    } catch {
      return r;
    }
  }

  async function finish(a: Active): Promise<Recording> {
    signalGroup(a.child.pid, 'SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      a.exited,
      new Promise<null>((resolve) => {
        timer = setTimeout(() => {
          signalGroup(a.child.pid, 'SIGKILL');
          resolve(null);
        }, FINISH_MS);
      }),
    ]);
    clearTimeout(timer);
    const end = new Date();
    const base = await withSize(a.recording);
    // ffmpeg ends with 255 when SIGINT stops it, having written the file out.
    const ok = (code === 0 || code === 255) && (base.sizeBytes ?? 0) > 0;
    const done: Recording = {
      ...base,
      endTime: end.toISOString(),
      status: ok ? 'completed' : 'failed',
      durationSeconds: (end.getTime() - Date.parse(a.recording.startTime)) / 1000,
    };
    if (!ok) process.stderr.write(`cove agent: recording ${done.id} failed (ffmpeg exit ${code}): ${a.stderr.trim().slice(-1000)}\n`);
    active.delete(a.recording.id);
    ended.set(done.id, done);
    return done;
  }

  async function fromDisk(): Promise<Recording[]> {
    let names: string[];
    try {
      names = await readdir(opts.dir);
    } catch {
      return [];
    }
    const out: Recording[] = [];
    for (const name of names) {
      const id = ID_PREFIX.exec(name)?.[1];
      if (!id || active.has(id)) continue;
      const known = ended.get(id);
      if (known) {
        out.push(await withSize(known));
        continue;
      }
      try {
        const st = await stat(path.join(opts.dir, name));
        if (!st.isFile()) continue;
        out.push({
          id,
          fileName: name,
          filePath: path.join(opts.dir, name),
          startTime: st.birthtime.getTime() > 0 ? st.birthtime.toISOString() : st.mtime.toISOString(),
          endTime: st.mtime.toISOString(),
          status: 'completed',
          sizeBytes: st.size,
        });
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  async function find(id: string): Promise<Recording> {
    const a = active.get(id);
    if (a) return withSize(a.recording);
    const found = (await fromDisk()).find((r) => r.id === id);
    if (!found) throw new CoveError('NOT_FOUND', `No recording with id ${id}`);
    return found;
  }

  return {
    /** Starts ffmpeg on `display` of `size`; resolves once it runs (a start failure is a 500 with ffmpeg's words). */
    async start(display: string, size: { width: number; height: number }, label?: string): Promise<Recording> {
      ensureDir();
      const id = randomUUID();
      const startTime = new Date();
      const fileName = `${id}_${label || 'session'}_${stamp(startTime)}.mp4`;
      const filePath = path.join(opts.dir, fileName);
      const child = spawn('ffmpeg', recordArgs(display, size, filePath), {
        env: opts.run.env(),
        cwd: opts.run.cwd,
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
        ...opts.run.spawnAs,
      });
      const a: Active = {
        recording: { id, fileName, filePath, startTime: startTime.toISOString(), status: 'recording' },
        child,
        stderr: '',
        exited: new Promise((resolve) => {
          child.on('error', () => resolve(null));
          child.on('exit', (code) => resolve(code));
        }),
      };
      child.stderr.on('data', (b: Buffer) => {
        a.stderr = (a.stderr + b.toString('utf8')).slice(-4096);
      });
      active.set(id, a);
      // Answered once ffmpeg has opened its file (it fails at once when it cannot open the display or the file).
      let exitedEarly = false;
      void a.exited.then(() => (exitedEarly = true));
      const deadline = Date.now() + OPEN_MS;
      while (!exitedEarly && Date.now() < deadline && !(await stat(filePath).then(() => true, () => false))) await new Promise((r) => setTimeout(r, 100));
      if (exitedEarly) {
        active.delete(id);
        await unlink(filePath).catch(() => {});
        throw new CoveError('INTERNAL_ERROR', 'The recording could not start: ffmpeg exited', a.stderr.trim() || undefined);
      }
      // Ended on its own (the display went away): keep what it wrote.
      void a.exited.then(() => {
        if (active.get(id) === a) void finish(a);
      });
      return a.recording;
    },

    async stop(id: string): Promise<Recording> {
      const a = active.get(id);
      if (a) return finish(a);
      const r = await find(id);
      throw new CoveError('CONFLICT', `Recording ${id} is not running (it is ${r.status})`);
    },

    async list(): Promise<Recording[]> {
      const running = await Promise.all([...active.values()].map((a) => withSize(a.recording)));
      const all = [...running, ...(await fromDisk())];
      return all.sort((x, y) => x.startTime.localeCompare(y.startTime));
    },

    get: find,

    async delete(id: string): Promise<void> {
      if (active.has(id)) throw new CoveError('CONFLICT', `Recording ${id} is still running: stop it first`);
      const r = await find(id);
      await unlink(r.filePath).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      ended.delete(id);
    },

    /** The file of a finished recording, to stream. */
    async open(id: string): Promise<{ name: string; size: number; stream: Readable }> {
      if (active.has(id)) throw new CoveError('CONFLICT', `Recording ${id} is still running: stop it first`);
      const r = await find(id);
      const st = await stat(r.filePath);
      return { name: r.fileName, size: st.size, stream: createReadStream(r.filePath, { start: 0, end: Math.max(0, st.size - 1) }) };
    },

    /** Stops every running recording (the desktop is going away). */
    async stopAll(): Promise<void> {
      await Promise.allSettled([...active.values()].map((a) => finish(a)));
    },
  };
}
