import { describe, expect, it } from 'vitest';
import { LOG_FORMAT, parseBranches, parseLog, parseNumstat, parseStatus } from './parse';

const H = 'a'.repeat(40);
const H2 = 'b'.repeat(40);

describe('parseStatus (porcelain v2, NUL-separated)', () => {
  it('reads the branch headers and every kind of entry, file names with spaces included', () => {
    const out = [
      `# branch.oid ${H}`,
      '# branch.head main',
      '# branch.upstream origin/main',
      '# branch.ab +2 -1',
      `1 M. N... 100644 100644 100644 ${H} ${H2} src/a file.ts`,
      `1 .D N... 100644 100644 000000 ${H} ${H} gone.txt`,
      `1 AM N... 000000 100644 100644 ${H} ${H2} new.txt`,
      `1 T. N... 100644 120000 120000 ${H} ${H2} link`,
      `2 R. N... 100644 100644 100644 ${H} ${H} R100 renamed name.txt`,
      'old name.txt',
      `u UU N... 100644 100644 100644 100644 ${H} ${H2} ${H} conflict.txt`,
      '? untracked dir/x y.txt',
      '! ignored.log',
      '',
    ].join('\0');
    expect(parseStatus(out)).toEqual({
      currentBranch: 'main',
      upstream: 'origin/main',
      ahead: 2,
      behind: 1,
      detached: false,
      upstreamGone: false,
      fileStatus: [
        { name: 'src/a file.ts', staging: 'Modified', worktree: 'Unmodified', extra: '' },
        { name: 'gone.txt', staging: 'Unmodified', worktree: 'Deleted', extra: '' },
        { name: 'new.txt', staging: 'Added', worktree: 'Modified', extra: '' },
        { name: 'link', staging: 'Modified', worktree: 'Unmodified', extra: '' },
        { name: 'renamed name.txt', staging: 'Renamed', worktree: 'Unmodified', extra: 'old name.txt' },
        { name: 'conflict.txt', staging: 'Updated but unmerged', worktree: 'Updated but unmerged', extra: '' },
        { name: 'untracked dir/x y.txt', staging: 'Untracked', worktree: 'Untracked', extra: '' },
      ],
    });
  });

  it('reports a detached head as HEAD, and a fresh repository with no commits', () => {
    expect(parseStatus(`# branch.oid ${H}\0# branch.head (detached)\0`)).toMatchObject({ currentBranch: 'HEAD', detached: true, fileStatus: [] });
    expect(parseStatus('# branch.oid (initial)\0# branch.head main\0')).toMatchObject({ currentBranch: 'main', detached: false, ahead: 0, behind: 0 });
    expect(parseStatus('')).toMatchObject({ currentBranch: 'HEAD', fileStatus: [], upstreamGone: false });
  });

  it('says the upstream is gone when it is configured but git gives no ahead/behind', () => {
    const gone = parseStatus('# branch.head feature\0# branch.upstream origin/feature\0');
    expect(gone.upstream).toBe('origin/feature');
    expect(gone.upstreamGone).toBe(true);
    expect(parseStatus('# branch.head feature\0').upstreamGone).toBe(false);
  });

  it('keeps file names with newlines and leading spaces whole', () => {
    const status = parseStatus(`? line\nbreak\0?  leading\0`);
    expect(status.fileStatus.map((f) => f.name)).toEqual(['line\nbreak', ' leading']);
  });

  it('does not read past the end when a rename lacks its original path', () => {
    const status = parseStatus(`2 R. N... 100644 100644 100644 ${H} ${H} R100 new`);
    expect(status.fileStatus).toEqual([{ name: 'new', staging: 'Renamed', worktree: 'Unmodified', extra: '' }]);
  });
});

describe('parseNumstat', () => {
  it('counts lines per file, binary files as zero, and renames with both names', () => {
    const out = '3\t1\tsrc/a.ts\0-\t-\timage.png\x000\t0\t\0old name\0new name\0';
    expect(parseNumstat(out)).toEqual([
      { name: 'src/a.ts', added: 3, deleted: 1, binary: false },
      { name: 'image.png', added: 0, deleted: 0, binary: true },
      { name: 'new name', oldName: 'old name', added: 0, deleted: 0, binary: false },
    ]);
  });

  it('keeps tabs and newlines inside names, and skips what is not a numstat record', () => {
    expect(parseNumstat('1\t2\ta\tb\nc\0garbage\0')).toEqual([{ name: 'a\tb\nc', added: 1, deleted: 2, binary: false }]);
    expect(parseNumstat('')).toEqual([]);
  });
});

describe('parseLog', () => {
  it('reads records in the format it asks git for, messages with several lines and separators included', () => {
    expect(LOG_FORMAT).toBe('--format=%H\x1f%an\x1f%ae\x1f%aI\x1f%B\x1e');
    const out = `${H}\x1fAda Lovelace\x1fada@example.com\x1f2024-05-01T10:00:00+02:00\x1fSubject\n\nBody line\n\x1e\n${H2}\x1fB\x1fb@example.com\x1f2024-05-02T00:00:00Z\x1fodd\x1fmessage\n\x1e\n`;
    expect(parseLog(out)).toEqual([
      { hash: H, author: 'Ada Lovelace', email: 'ada@example.com', timestamp: '2024-05-01T10:00:00+02:00', message: 'Subject\n\nBody line' },
      { hash: H2, author: 'B', email: 'b@example.com', timestamp: '2024-05-02T00:00:00Z', message: 'odd\x1fmessage' },
    ]);
    expect(parseLog('')).toEqual([]);
    expect(parseLog('\n')).toEqual([]);
  });
});

describe('parseBranches', () => {
  it('lists branches and names the one checked out', () => {
    expect(parseBranches('*main\n feature/x\n')).toEqual({ branches: ['main', 'feature/x'], current: 'main' });
  });

  it('leaves out current when HEAD is detached or there are no branches', () => {
    expect(parseBranches(' a\n b\n')).toEqual({ branches: ['a', 'b'] });
    expect(parseBranches('')).toEqual({ branches: [] });
  });
});
