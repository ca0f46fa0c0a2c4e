/** Parsers of git's machine-readable output: NUL-separated, so every file name survives as it is. */
import type { FileStatus, GitCommitInfo, GitDiffFile, GitFileState, GitStatus } from '../../../wire/git';

/** One letter of a porcelain XY pair → the SDK's state name. A type change reads as a modification. */
const STATE: Record<string, GitFileState> = {
  '.': 'Unmodified',
  ' ': 'Unmodified',
  M: 'Modified',
  T: 'Modified',
  A: 'Added',
  D: 'Deleted',
  R: 'Renamed',
  C: 'Copied',
  U: 'Updated but unmerged',
  '?': 'Untracked',
};
const state = (letter: string): GitFileState => STATE[letter] ?? 'Modified';

/** Status without the published check, which may need another command. */
type ParsedStatus = Omit<GitStatus, 'branchPublished'> & { upstreamGone: boolean };

/**
 * `git status --porcelain=v2 --branch -z`: header lines `# branch.*`, then `1` (changed), `2` (renamed or copied,
 * followed by the original path as its own record), `u` (unmerged), `?` (untracked) and `!` (ignored) entries.
 */
export function parseStatus(output: string): ParsedStatus {
  const records = output.split('\0');
  const result: ParsedStatus = {
    currentBranch: 'HEAD',
    ahead: 0,
    behind: 0,
    detached: false,
    fileStatus: [],
    upstreamGone: false,
  };
  let sawAheadBehind = false;
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (!record) continue;
    const fields = record.split(' ');
    const kind = fields[0];
    if (kind === '#') {
      const [, key, ...rest] = fields;
      const value = rest.join(' ');
      if (key === 'branch.head') {
        result.detached = value === '(detached)';
        result.currentBranch = result.detached ? 'HEAD' : value;
      } else if (key === 'branch.upstream') {
        result.upstream = value;
      } else if (key === 'branch.ab') {
        sawAheadBehind = true;
        const m = /^\+(\d+) -(\d+)$/.exec(value);
        if (m) {
          result.ahead = Number(m[1]);
          result.behind = Number(m[2]);
        }
      }
      continue;
    }
    let entry: FileStatus | undefined;
    if (kind === '1') {
      entry = { name: fields.slice(8).join(' '), staging: state(fields[1][0]), worktree: state(fields[1][1]), extra: '' };
    } else if (kind === '2') {
      // The original path is the next NUL-separated record.
      const from = records[++i] ?? '';
      entry = { name: fields.slice(9).join(' '), staging: state(fields[1][0]), worktree: state(fields[1][1]), extra: from };
    } else if (kind === 'u') {
      entry = { name: fields.slice(10).join(' '), staging: 'Updated but unmerged', worktree: 'Updated but unmerged', extra: '' };
    } else if (kind === '?') {
      entry = { name: record.slice(2), staging: 'Untracked', worktree: 'Untracked', extra: '' };
    }
    if (entry) result.fileStatus.push(entry);
  }
  // With an upstream configured but no `branch.ab`, the upstream branch no longer exists on the remote.
  result.upstreamGone = result.upstream !== undefined && !sawAheadBehind;
  return result;
}

/**
 * `git diff --numstat -z`: `added\tdeleted\tpath\0`, or for a rename `added\tdeleted\t\0old\0new\0`; binary files
 * count `-` lines.
 */
export function parseNumstat(output: string): GitDiffFile[] {
  const records = output.split('\0');
  const files: GitDiffFile[] = [];
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (!record) continue;
    const m = /^(-|\d+)\t(-|\d+)\t(.*)$/s.exec(record.replace(/^\n/, ''));
    if (!m) continue;
    const binary = m[1] === '-';
    const file: GitDiffFile = { name: m[3], added: binary ? 0 : Number(m[1]), deleted: binary ? 0 : Number(m[2]), binary };
    if (m[3] === '') {
      file.oldName = records[++i] ?? '';
      file.name = records[++i] ?? '';
    }
    files.push(file);
  }
  return files;
}

/** Field and record separators of the `git log` format below: bytes that commit metadata does not contain. */
const FIELD = '\x1f';
const RECORD = '\x1e';

/** `--format` for `git log` that parseLog reads: hash, author name and email, author date (ISO 8601), message. */
export const LOG_FORMAT = `--format=%H${FIELD}%an${FIELD}%ae${FIELD}%aI${FIELD}%B${RECORD}`;

export function parseLog(output: string): GitCommitInfo[] {
  const commits: GitCommitInfo[] = [];
  for (const raw of output.split(RECORD)) {
    const record = raw.replace(/^\n/, '');
    if (!record.trim()) continue;
    const [hash, author, email, timestamp, ...message] = record.split(FIELD);
    commits.push({ hash, author, email, timestamp, message: message.join(FIELD).replace(/\n+$/, '') });
  }
  return commits;
}

/** `git for-each-ref --format=%(HEAD)%(refname:short) refs/heads`: `*` marks the branch checked out. */
export function parseBranches(output: string): { branches: string[]; current?: string } {
  const branches: string[] = [];
  let current: string | undefined;
  for (const line of output.split('\n')) {
    if (!line) continue;
    const name = line.slice(1);
    branches.push(name);
    if (line[0] === '*') current = name;
  }
  return current === undefined ? { branches } : { branches, current };
}
