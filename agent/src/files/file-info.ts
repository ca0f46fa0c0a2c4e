import type { Stats } from 'node:fs';
import { readFileSync, statSync } from 'node:fs';
import type { FileInfo } from '../../../wire/files';

/**
 * Account names by id, read from /etc/passwd and /etc/group. Re-read only when the file changes, since listing a
 * big directory asks for the same few ids thousands of times.
 */
class IdNames {
  private names = new Map<number, string>();
  private byName = new Map<string, number>();
  private mtimeMs = -1;

  constructor(private readonly file: string) {}

  private refresh(): void {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.file).mtimeMs;
    } catch {
      mtimeMs = 0;
    }
    if (mtimeMs === this.mtimeMs) return;
    this.mtimeMs = mtimeMs;
    this.names.clear();
    this.byName.clear();
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return; // no account database in this image: ids stay numeric
    }
    for (const line of text.split('\n')) {
      const cols = line.split(':');
      if (cols.length < 3) continue;
      const id = Number(cols[2]);
      if (!Number.isInteger(id)) continue;
      if (!this.names.has(id)) this.names.set(id, cols[0]);
      if (!this.byName.has(cols[0])) this.byName.set(cols[0], id);
    }
  }

  /** The name of `id`, or the id itself as text when it has none. */
  name(id: number): string {
    this.refresh();
    return this.names.get(id) ?? String(id);
  }

  /** The id of a name or of a numeric string; undefined when unknown. */
  id(nameOrId: string): number | undefined {
    if (/^\d+$/.test(nameOrId)) return Number(nameOrId);
    this.refresh();
    return this.byName.get(nameOrId);
  }
}

/** User names (from /etc/passwd). */
export const users = new IdNames('/etc/passwd');
/** Group names (from /etc/group). */
export const groups = new IdNames('/etc/group');

const S_IFMT = 0o170000;
const TYPE_LETTER: Record<number, string> = {
  0o040000: 'd',
  0o120000: 'L',
  0o060000: 'D',
  0o020000: 'Dc',
  0o010000: 'p',
  0o140000: 'S',
};

/** Go's `os.FileMode.String()`, which Daytona clients see: type letters, then `rwxrwxrwx`. */
function goModeString(mode: number): string {
  let prefix = TYPE_LETTER[mode & S_IFMT] ?? '';
  if (mode & 0o4000) prefix += 'u';
  if (mode & 0o2000) prefix += 'g';
  if (mode & 0o1000) prefix += 't';
  const rwx = 'rwxrwxrwx';
  let bits = '';
  for (let i = 0; i < 9; i++) bits += mode & (1 << (8 - i)) ? rwx[i] : '-';
  return (prefix || '-') + bits;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Go's `time.Time.String()` layout in UTC: `2024-05-01 12:34:56.789 +0000 UTC`. */
function goTimeString(ms: number): string {
  const d = new Date(ms);
  const frac = d.getUTCMilliseconds() ? `.${pad(d.getUTCMilliseconds(), 3).replace(/0+$/, '')}` : '';
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${frac} +0000 UTC`
  );
}

/** Builds the wire FileInfo of an entry from its stat. `shownPath` is the path as the client should see it. */
export function toFileInfo(name: string, shownPath: string, st: Stats): FileInfo {
  return {
    name,
    path: shownPath,
    size: st.size,
    mode: goModeString(st.mode),
    modTime: goTimeString(st.mtimeMs),
    modifiedAt: new Date(st.mtimeMs).toISOString(),
    isDir: st.isDirectory(),
    owner: users.name(st.uid),
    group: groups.name(st.gid),
    permissions: `0${(st.mode & 0o777).toString(8).padStart(3, '0')}`,
  };
}
