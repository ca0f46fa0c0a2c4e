import fs from 'node:fs';
import path from 'node:path';
import { runCommand, type CommandError } from '../../../lib/run-command';

/** Directory levels a walk keeps open at once; deeper subtrees are measured by `du` (see UsageWalk). */
const MAX_OPEN_DIRS = 16;
/** A `du` of one subtree that takes longer is abandoned (its bytes are then not counted, and the log says so). */
const DU_TIMEOUT_MS = 60_000;

/** Measures one subtree that the walk does not enter itself: bytes allocated, as `du -s -B1 -x` counts them. */
export type SubtreeMeasure = (parent: string, name: string) => Promise<number>;

/** `du -s -B1 -x -- NAME` run in PARENT: GNU du walks with openat, so neither depth nor path length stops it. */
const duSubtree: SubtreeMeasure = async (parent, name) => {
  // du exits 1 when some file vanished under it, and still prints its total: take it.
  const { stdout } = await runCommand('du', ['-s', '-B1', '-x', '--', name], { cwd: parent, timeout: DU_TIMEOUT_MS, maxBuffer: 64 * 1024 }).catch((err: CommandError) => {
    if (/^\d+\s/.test(err.stdout)) return err;
    throw err;
  });
  const bytes = Number(/^(\d+)\s/.exec(stdout)?.[1]);
  if (!Number.isFinite(bytes)) throw new Error(`du printed no total for ${name}`);
  return bytes;
};

/**
 * One measurement of the space a directory tree takes on disk, done in steps so that a caller can bound the work
 * of each: `step(n)` looks at no more than n entries (one `lstat` each) and returns.
 *
 * What counts: allocated blocks (`st_blocks`), not apparent sizes — a sparse file takes only what it wrote — and a
 * file with several hard links counts `blocks / nlink` at each link, so links within the tree add up to the file
 * once without remembering any inode. Directories count their own blocks.
 *
 * Bounded memory: the walk is depth-first and keeps one open directory handle per level it is in (read lazily, a few
 * entries at a time), never a list of pending directories, so a directory of a million entries costs no more than one
 * of ten. At most MAX_OPEN_DIRS levels are open; a subtree deeper than that, or whose path is too long to name
 * (ENAMETOOLONG), is measured whole by `du`, which walks by file descriptor. Files that vanish while the walk runs
 * are skipped. A tree changing under the walk may be over- or under-counted by what moved during it (a renamed file
 * can be seen twice): callers confirm a surprising figure with a second walk.
 */
export class UsageWalk {
  /** Bytes counted so far (the total once `done`). */
  bytes = 0;
  /** Entries looked at so far. */
  entries = 0;
  done = false;
  /** Why the root could not be read (the container's layer is gone); set with `done`. */
  failed?: string;
  /** Subtrees `du` could not measure (their bytes are missing from the total). */
  readonly unmeasured: string[] = [];
  private readonly stack: { dir: string; handle: fs.Dir }[] = [];
  private started = false;

  constructor(
    readonly root: string,
    private readonly measureSubtree: SubtreeMeasure = duSubtree,
  ) {}

  /** Looks at up to `budget` more entries; returns how many it looked at (fewer when the walk ended). */
  async step(budget: number): Promise<number> {
    if (this.done) return 0;
    if (!this.started) {
      this.started = true;
      const st = this.lstat(this.root);
      if (!st?.isDirectory()) return this.finish(`${this.root} is not a directory any more`);
      this.bytes += st.blocks * 512;
      try {
        this.stack.push({ dir: this.root, handle: fs.opendirSync(this.root, { bufferSize: 64 }) });
      } catch (err) {
        return this.finish((err as Error).message);
      }
    }
    let used = 0;
    while (used < budget) {
      const top = this.stack.at(-1);
      if (!top) {
        this.finish();
        break;
      }
      let entry: fs.Dirent | null;
      try {
        entry = top.handle.readSync();
      } catch {
        entry = null; // the directory vanished under us: what was read of it is counted
      }
      if (!entry) {
        this.stack.pop();
        closeQuietly(top.handle);
        continue;
      }
      used++;
      this.entries++;
      const full = `${top.dir}/${entry.name}`;
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(full, { throwIfNoEntry: false });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENAMETOOLONG') await this.subtree(top.dir, entry.name);
        continue;
      }
      if (!st) continue;
      if (!st.isDirectory()) {
        this.bytes += (st.blocks * 512) / Math.max(1, st.nlink);
        continue;
      }
      if (this.stack.length >= MAX_OPEN_DIRS) {
        await this.subtree(top.dir, entry.name);
        continue;
      }
      this.bytes += st.blocks * 512;
      try {
        this.stack.push({ dir: full, handle: fs.opendirSync(full, { bufferSize: 64 }) });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Too long a path to open by name: du gets there from the parent. Vanished: nothing to count.
        if (code === 'ENAMETOOLONG') {
          this.bytes -= st.blocks * 512;
          await this.subtree(top.dir, entry.name);
        }
      }
    }
    return used;
  }

  /** Ends the walk early and releases its directory handles. */
  close(): void {
    this.finish(this.done ? this.failed : 'closed');
  }

  private async subtree(parent: string, name: string): Promise<void> {
    try {
      this.bytes += await this.measureSubtree(parent, name);
    } catch (err) {
      this.unmeasured.push(`${path.join(parent, name)}: ${(err as Error).message.split('\n')[0]}`);
    }
  }

  private lstat(p: string): fs.Stats | undefined {
    try {
      return fs.lstatSync(p, { throwIfNoEntry: false });
    } catch {
      return undefined;
    }
  }

  private finish(failed?: string): number {
    this.done = true;
    if (failed) this.failed = failed;
    for (const { handle } of this.stack.splice(0)) closeQuietly(handle);
    return 0;
  }
}

function closeQuietly(handle: fs.Dir): void {
  try {
    handle.closeSync();
  } catch {
    // already closed
  }
}
