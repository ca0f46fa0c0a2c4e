/**
 * The git routes of Daytona SDK 0.218 beyond the first set — init, reset, restore, remotes, config, config/user and
 * credentials — against a real agent, real repositories and a loopback git server that demands HTTP Basic
 * credentials; and the SDK's own Git methods for them.
 */
import { Daytona, DaytonaGitAuthFailedError, DaytonaGitBranchNotFoundError, DaytonaGitRepoNotFoundError, Git } from '@daytonaio/sdk';
import { Configuration, GitApi } from '@daytona/toolbox-api-client';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GitStatus, ListRemotesResponse } from '../../wire/git';
import { startAgent, type TestAgent } from '../helpers/agent';
import { gitSync, startGitServer, type GitServer } from '../helpers/git-server';

let agent: TestAgent;
let server: GitServer;
let repoUrl: string;
let agentHome: string;
/** Host and port of the git server, as dangerouslyAuthenticate takes them. */
let serverHost: string;
/** Command lines seen, while a git client waited on the server, that held the password. */
const leaks: string[] = [];
let scans = 0;

function scanProcessList(password: string): void {
  scans++;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (cmdline.includes(password)) leaks.push(cmdline);
  }
}

beforeAll(async () => {
  const password = 'pw-' + Math.random().toString(36).slice(2, 12);
  server = await startGitServer({ password, onRequest: () => scanProcessList(password) });
  repoUrl = server.createRepo('project', { 'README.md': 'hello\n' }, { feature: { 'feature.txt': 'feature work\n' } });
  serverHost = new URL(server.origin).host;
  agent = await startAgent();
  agentHome = (await agent.json<{ dir: string }>('/user-home-dir')).dir;
  // A credential store, as users configure one: the agent must neither ask it first nor write to it.
  gitSync(agent.workdir, ['config', '--file', path.join(agentHome, '.gitconfig'), 'credential.helper', 'store']);
});
afterAll(async () => {
  await agent?.stop();
  await server?.close();
});

async function call(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await agent.fetch(p, {
    method,
    ...(body !== undefined ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}
const q = (p: string, params: Record<string, string>) => `${p}?${new URLSearchParams(params)}`;
const inWork = (...parts: string[]) => path.join(agent.workdir, ...parts);
const git = (dir: string, args: string[]) => gitSync(inWork(dir), args);
const status = async (dir: string) => (await call('GET', q('/git/status', { path: dir }))).json as GitStatus;
const fileState = async (dir: string, name: string) => (await status(dir)).fileStatus.find((f) => f.name === name);

/** A local repository made through the agent, with `a.txt` committed twice ("one", then "two"). */
async function twoCommitRepo(dir: string): Promise<{ first: string; second: string }> {
  expect((await call('POST', '/git/init', { path: dir, initial_branch: 'main' })).status).toBe(201);
  writeFileSync(inWork(dir, 'a.txt'), 'one\n');
  writeFileSync(inWork(dir, 'b.txt'), 'b\n');
  git(dir, ['add', '.']);
  git(dir, ['commit', '-qm', 'first']);
  const first = git(dir, ['rev-parse', 'HEAD']).trim();
  writeFileSync(inWork(dir, 'a.txt'), 'two\n');
  git(dir, ['commit', '-qam', 'second']);
  return { first, second: git(dir, ['rev-parse', 'HEAD']).trim() };
}

describe('init', () => {
  it('creates a repository at a new nested path on the branch named', async () => {
    const res = await call('POST', '/git/init', { path: 'made/deep/repo', initial_branch: 'trunk' });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json).toBeUndefined();
    expect(git('made/deep/repo', ['symbolic-ref', 'HEAD']).trim()).toBe('refs/heads/trunk');
    expect(await status('made/deep/repo')).toMatchObject({ currentBranch: 'trunk', fileStatus: [] });
  });

  it('creates a bare repository, and one in a directory that already holds files', async () => {
    expect((await call('POST', '/git/init', { path: 'bare.git', bare: true })).status).toBe(201);
    expect(existsSync(inWork('bare.git', 'HEAD'))).toBe(true);
    expect(existsSync(inWork('bare.git', '.git'))).toBe(false);
    expect(git('bare.git', ['rev-parse', '--is-bare-repository']).trim()).toBe('true');

    mkdirSync(inWork('existing'));
    writeFileSync(inWork('existing', 'notes.txt'), 'kept\n');
    expect((await call('POST', '/git/init', { path: inWork('existing') })).status).toBe(201);
    expect(await fileState('existing', 'notes.txt')).toMatchObject({ staging: 'Untracked' });
  });

  it('refuses a directory that is a repository already, and a file', async () => {
    const again = await call('POST', '/git/init', { path: 'made/deep/repo' });
    expect(again.status).toBe(409);
    expect(again.json).toMatchObject({ code: 'CONFLICT', source: 'DAYTONA_DAEMON' });
    expect(again.json.message).toMatch(/already/);
    const bare = await call('POST', '/git/init', { path: 'bare.git', bare: true });
    expect(bare.status).toBe(409);
    writeFileSync(inWork('plain-file'), 'x');
    const file = await call('POST', '/git/init', { path: 'plain-file' });
    expect(file.status).toBe(409);
    expect(file.json.code).toBe('FILE_EXISTS');
  });

  it('rejects bad input with a 400 naming the field', async () => {
    for (const initial_branch of ['bad..name', 'has space', '-x', 'end.lock', 'a:b']) {
      const res = await call('POST', '/git/init', { path: 'never', initial_branch });
      expect(res.status, initial_branch).toBe(400);
      expect(res.json.message).toMatch(/initial_branch/);
    }
    const noPath = await call('POST', '/git/init', {});
    expect(noPath.status).toBe(400);
    expect(noPath.json.message).toMatch(/path/);
    const bare = await call('POST', '/git/init', { path: 'never', bare: 'yes' });
    expect(bare.status).toBe(400);
    expect(bare.json.message).toMatch(/bare/);
    expect(existsSync(inWork('never'))).toBe(false);
  });
});

describe('add and checkout read names as files and branches only', () => {
  it('stages a file named like an option alone, and checks out a branch named like a file', async () => {
    await twoCommitRepo('dashes');
    writeFileSync(inWork('dashes', '-A'), 'x\n');
    writeFileSync(inWork('dashes', 'other.txt'), 'y\n');
    expect((await call('POST', '/git/add', { path: 'dashes', files: ['-A'] })).status).toBe(204);
    expect(await fileState('dashes', '-A')).toMatchObject({ staging: 'Added' });
    expect(await fileState('dashes', 'other.txt')).toMatchObject({ staging: 'Untracked' });
    // A branch and a file with the same name: the branch is checked out, the file left as it is.
    git('dashes', ['branch', 'a.txt']);
    writeFileSync(inWork('dashes', 'a.txt'), 'changed\n');
    expect((await call('POST', '/git/checkout', { path: 'dashes', branch: 'a.txt' })).status).toBe(204);
    expect(git('dashes', ['rev-parse', '--abbrev-ref', 'HEAD']).trim()).toBe('a.txt');
    expect(readFileSync(inWork('dashes', 'a.txt'), 'utf8')).toBe('changed\n');
  });
});

describe('reset', () => {
  let commits: { first: string; second: string };
  beforeAll(async () => {
    commits = await twoCommitRepo('reset');
  });

  it('soft moves HEAD and keeps the changes staged', async () => {
    const res = await call('POST', '/git/reset', { path: 'reset', mode: 'soft', target: 'HEAD~1' });
    expect(res.status, JSON.stringify(res.json)).toBe(204);
    expect(git('reset', ['rev-parse', 'HEAD']).trim()).toBe(commits.first);
    expect(await fileState('reset', 'a.txt')).toMatchObject({ staging: 'Modified', worktree: 'Unmodified' });
  });

  it('mixed (the default) unstages and keeps the work tree', async () => {
    expect((await call('POST', '/git/reset', { path: 'reset' })).status).toBe(204);
    expect(await fileState('reset', 'a.txt')).toMatchObject({ staging: 'Unmodified', worktree: 'Modified' });
    expect(readFileSync(inWork('reset', 'a.txt'), 'utf8')).toBe('two\n');
  });

  it('files unstage those paths only', async () => {
    writeFileSync(inWork('reset', 'b.txt'), 'b changed\n');
    git('reset', ['add', 'a.txt', 'b.txt']);
    expect((await call('POST', '/git/reset', { path: 'reset', files: ['b.txt'] })).status).toBe(204);
    expect(await fileState('reset', 'a.txt')).toMatchObject({ staging: 'Modified' });
    expect(await fileState('reset', 'b.txt')).toMatchObject({ staging: 'Unmodified', worktree: 'Modified' });
    // An explicit mode mixed with files is the same thing.
    expect((await call('POST', '/git/reset', { path: 'reset', mode: 'mixed', files: ['a.txt'] })).status).toBe(204);
    expect(await fileState('reset', 'a.txt')).toMatchObject({ staging: 'Unmodified', worktree: 'Modified' });
  });

  it('keep refuses to lose local changes; hard discards them', async () => {
    const keep = await call('POST', '/git/reset', { path: 'reset', mode: 'keep', target: commits.second });
    expect(keep.status, JSON.stringify(keep.json)).toBe(409);
    expect(keep.json.code).toBe('GIT_DIRTY_WORKTREE');

    const hard = await call('POST', '/git/reset', { path: 'reset', mode: 'hard', target: commits.second });
    expect(hard.status).toBe(204);
    expect(git('reset', ['rev-parse', 'HEAD']).trim()).toBe(commits.second);
    expect(readFileSync(inWork('reset', 'b.txt'), 'utf8')).toBe('b\n');
    expect((await status('reset')).fileStatus).toEqual([]);

    // merge and keep with a clean tree move HEAD like hard.
    expect((await call('POST', '/git/reset', { path: 'reset', mode: 'merge', target: commits.first })).status).toBe(204);
    expect(readFileSync(inWork('reset', 'a.txt'), 'utf8')).toBe('one\n');
    expect((await call('POST', '/git/reset', { path: 'reset', mode: 'keep', target: commits.second })).status).toBe(204);
    expect(readFileSync(inWork('reset', 'a.txt'), 'utf8')).toBe('two\n');
  });

  it('an unknown target is GIT_BRANCH_NOT_FOUND; no repository is GIT_REPO_NOT_FOUND', async () => {
    const target = await call('POST', '/git/reset', { path: 'reset', mode: 'hard', target: 'no-such-ref' });
    expect(target.status).toBe(404);
    expect(target.json.code).toBe('GIT_BRANCH_NOT_FOUND');
    expect(target.json.message).toContain('no-such-ref');
    mkdirSync(inWork('not-a-repo'), { recursive: true });
    mkdirSync(inWork('reset', 'sub'), { recursive: true });
    // A directory inside a repository is not its top: git does not look upwards for one.
    for (const p of ['not-a-repo', 'missing-dir', 'reset/sub', 'made/deep']) {
      const res = await call('POST', '/git/reset', { path: p });
      expect(res.status, p).toBe(404);
      expect(res.json.code, p).toBe('GIT_REPO_NOT_FOUND');
    }
  });

  it('rejects bad input with a 400 naming the field', async () => {
    const mode = await call('POST', '/git/reset', { path: 'reset', mode: 'sideways' });
    expect(mode.status).toBe(400);
    expect(mode.json.message).toMatch(/mode/);
    const files = await call('POST', '/git/reset', { path: 'reset', mode: 'hard', files: ['a.txt'] });
    expect(files.status).toBe(400);
    expect(files.json.message).toMatch(/files/);
    const option = await call('POST', '/git/reset', { path: 'reset', target: '--hard' });
    expect(option.status).toBe(400);
    expect(option.json.message).toMatch(/target/);
    expect(readFileSync(inWork('reset', 'a.txt'), 'utf8')).toBe('two\n');
  });
});

describe('restore', () => {
  let commits: { first: string; second: string };
  beforeAll(async () => {
    commits = await twoCommitRepo('restore');
  });

  it('restores the work tree by default', async () => {
    writeFileSync(inWork('restore', 'a.txt'), 'scribbled\n');
    const res = await call('POST', '/git/restore', { path: 'restore', files: ['a.txt'] });
    expect(res.status, JSON.stringify(res.json)).toBe(204);
    expect(readFileSync(inWork('restore', 'a.txt'), 'utf8')).toBe('two\n');
  });

  it('staged unstages and keeps the work tree; with worktree both are restored', async () => {
    writeFileSync(inWork('restore', 'a.txt'), 'staged edit\n');
    git('restore', ['add', 'a.txt']);
    expect((await call('POST', '/git/restore', { path: 'restore', files: ['a.txt'], staged: true })).status).toBe(204);
    expect(await fileState('restore', 'a.txt')).toMatchObject({ staging: 'Unmodified', worktree: 'Modified' });
    expect(readFileSync(inWork('restore', 'a.txt'), 'utf8')).toBe('staged edit\n');

    git('restore', ['add', 'a.txt']);
    expect((await call('POST', '/git/restore', { path: 'restore', files: ['.'], staged: true, worktree: true })).status).toBe(204);
    expect((await status('restore')).fileStatus).toEqual([]);
    expect(readFileSync(inWork('restore', 'a.txt'), 'utf8')).toBe('two\n');
  });

  it('takes the contents from source', async () => {
    const res = await call('POST', '/git/restore', { path: 'restore', files: ['a.txt'], source: commits.first });
    expect(res.status).toBe(204);
    expect(readFileSync(inWork('restore', 'a.txt'), 'utf8')).toBe('one\n');
    expect(await fileState('restore', 'a.txt')).toMatchObject({ staging: 'Unmodified', worktree: 'Modified' });
    expect((await call('POST', '/git/restore', { path: 'restore', files: ['a.txt'], source: 'HEAD', staged: true, worktree: true })).status).toBe(204);
    expect(readFileSync(inWork('restore', 'a.txt'), 'utf8')).toBe('two\n');
  });

  it('an unknown file is FILE_NOT_FOUND, an unknown source GIT_BRANCH_NOT_FOUND', async () => {
    const file = await call('POST', '/git/restore', { path: 'restore', files: ['ghost.txt'] });
    expect(file.status).toBe(404);
    expect(file.json.code).toBe('FILE_NOT_FOUND');
    expect(file.json.message).toContain('ghost.txt');
    const source = await call('POST', '/git/restore', { path: 'restore', files: ['a.txt'], source: 'nowhere' });
    expect(source.status).toBe(404);
    expect(source.json.code).toBe('GIT_BRANCH_NOT_FOUND');
    // A file outside the repository: git refuses it, as it does for add.
    for (const outside of ['../reset/a.txt', inWork('reset', 'a.txt')]) {
      const res = await call('POST', '/git/restore', { path: 'restore', files: [outside] });
      expect(res.status, outside).toBe(400);
      expect(res.json.message, outside).toMatch(/outside repository/);
      const reset = await call('POST', '/git/reset', { path: 'restore', files: [outside] });
      expect(reset.status, outside).toBe(400);
    }
    const repo = await call('POST', '/git/restore', { path: 'not-a-repo', files: ['a.txt'] });
    expect(repo.status).toBe(404);
    expect(repo.json.code).toBe('GIT_REPO_NOT_FOUND');
  });

  it('staged before the first commit says the branch has no commit yet', async () => {
    expect((await call('POST', '/git/init', { path: 'unborn' })).status).toBe(201);
    writeFileSync(inWork('unborn', 'x.txt'), 'x\n');
    git('unborn', ['add', 'x.txt']);
    const res = await call('POST', '/git/restore', { path: 'unborn', files: ['x.txt'], staged: true });
    expect(res.status).toBe(409);
    expect(res.json.message).toMatch(/no commit yet/);
  });

  it('rejects bad input with a 400 naming the field', async () => {
    const none = await call('POST', '/git/restore', { path: 'restore', files: ['a.txt'], staged: false, worktree: false });
    expect(none.status).toBe(400);
    expect(none.json.message).toMatch(/worktree/);
    const stagedOff = await call('POST', '/git/restore', { path: 'restore', files: ['a.txt'], staged: false });
    expect(stagedOff.status).toBe(400);
    expect(stagedOff.json.message).toMatch(/staged/);
    const empty = await call('POST', '/git/restore', { path: 'restore', files: [] });
    expect(empty.status).toBe(400);
    expect(empty.json.message).toMatch(/files/);
    const source = await call('POST', '/git/restore', { path: 'restore', files: ['a.txt'], source: '--staged' });
    expect(source.status).toBe(400);
    expect(source.json.message).toMatch(/source/);
  });
});

describe('remotes', () => {
  beforeAll(async () => {
    expect((await call('POST', '/git/init', { path: 'remotes' })).status).toBe(201);
  });

  it('adds, lists, refuses a duplicate and replaces with overwrite', async () => {
    expect((await call('GET', q('/git/remotes', { path: 'remotes' }))).json).toEqual({ remotes: [] });
    const added = await call('POST', '/git/remotes', { path: 'remotes', name: 'origin', url: 'https://example.test/one.git' });
    expect(added.status, JSON.stringify(added.json)).toBe(201);
    expect(added.json).toBeUndefined();
    expect((await call('POST', '/git/remotes', { path: 'remotes', name: 'up/stream', url: 'git@example.test:team/two.git' })).status).toBe(201);
    const list = await call('GET', q('/git/remotes', { path: 'remotes' }));
    expect(list.status).toBe(200);
    expect(list.json as ListRemotesResponse).toEqual({
      remotes: [
        { name: 'origin', url: 'https://example.test/one.git' },
        { name: 'up/stream', url: 'git@example.test:team/two.git' },
      ],
    });

    const again = await call('POST', '/git/remotes', { path: 'remotes', name: 'origin', url: 'https://example.test/other.git' });
    expect(again.status).toBe(409);
    expect(again.json.code).toBe('CONFLICT');
    expect(again.json.message).toMatch(/overwrite/);

    git('remotes', ['config', 'remote.origin.pushurl', 'https://example.test/push.git']);
    const replaced = await call('POST', '/git/remotes', { path: 'remotes', name: 'origin', url: 'https://example.test/other.git', overwrite: true });
    expect(replaced.status).toBe(201);
    expect(git('remotes', ['config', '--get-all', 'remote.origin.url']).trim()).toBe('https://example.test/other.git');
    // The old section went whole: no push URL of the replaced remote is left to surprise a push.
    expect(() => git('remotes', ['config', '--get', 'remote.origin.pushurl'])).toThrow();
  });

  it('fetches at once with credentials from the URL, which are not stored', async () => {
    const url = repoUrl.replace('://', `://${server.username}:${server.password}@`);
    const res = await call('POST', '/git/remotes', { path: 'remotes', name: 'server', url, fetch: true });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(git('remotes', ['rev-parse', 'refs/remotes/server/feature']).trim()).toBe(server.git('project', ['rev-parse', 'feature']).trim());
    const config = readFileSync(inWork('remotes', '.git', 'config'), 'utf8');
    expect(config).toContain(repoUrl);
    expect(config).not.toContain(server.password);
    const list = (await call('GET', q('/git/remotes', { path: 'remotes' }))).json as ListRemotesResponse;
    expect(list.remotes).toContainEqual({ name: 'server', url: repoUrl });
  });

  it('a fetch the server refuses is GIT_AUTH_FAILED and leaves no remote behind', async () => {
    const res = await call('POST', '/git/remotes', { path: 'remotes', name: 'denied', url: repoUrl, fetch: true });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('GIT_AUTH_FAILED');
    const list = (await call('GET', q('/git/remotes', { path: 'remotes' }))).json as ListRemotesResponse;
    expect(list.remotes.map((r) => r.name)).not.toContain('denied');
  });

  it('lists a password that a URL holds as ***', async () => {
    git('remotes', ['remote', 'add', 'manual', 'https://someone:hunter2secret@example.test/x.git']);
    const list = (await call('GET', q('/git/remotes', { path: 'remotes' }))).json as ListRemotesResponse;
    expect(list.remotes).toContainEqual({ name: 'manual', url: 'https://someone:***@example.test/x.git' });
    expect(JSON.stringify(list)).not.toContain('hunter2secret');
  });

  it('rejects bad names and URLs with a 400 naming the field, and no repository with a 404', async () => {
    for (const name of ['has space', '-f', 'a..b', 'trailing/', 'x.lock', '']) {
      const res = await call('POST', '/git/remotes', { path: 'remotes', name, url: 'https://example.test/x.git' });
      expect(res.status, name).toBe(400);
      expect(res.json.message, name).toMatch(/name/);
    }
    for (const url of ['ext::sh -c touch% /tmp/x', '--upload-pack=touch /tmp/x', 'fd::17', 'gopher://example.test/x', 'https://exa mple.test/x', 'http://[bad']) {
      const res = await call('POST', '/git/remotes', { path: 'remotes', name: 'bad', url });
      expect(res.status, url).toBe(400);
      expect(res.json.message, url).toMatch(/url/);
    }
    const repo = await call('POST', '/git/remotes', { path: 'not-a-repo', name: 'x', url: 'https://example.test/x.git' });
    expect(repo.status).toBe(404);
    expect(repo.json.code).toBe('GIT_REPO_NOT_FOUND');
    const list = await call('GET', q('/git/remotes', { path: 'not-a-repo' }));
    expect(list.status).toBe(404);
    expect(list.json.code).toBe('GIT_REPO_NOT_FOUND');
    const noPath = await call('GET', '/git/remotes');
    expect(noPath.status).toBe(400);
    expect(noPath.json.message).toMatch(/path/);
  });

  it('a pull or push to a remote the repository does not have is a 404 naming it, not a network failure', async () => {
    for (const route of ['/git/push', '/git/pull']) {
      for (const remote of ['nosuch', 'x'.repeat(400)]) {
        const res = await call('POST', route, { path: 'remotes', remote });
        expect(res.status, `${route} ${remote.slice(0, 10)}`).toBe(404);
        expect(res.json).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('no remote named') });
      }
    }
  });
});

describe('config', () => {
  const globalConfig = () => readFileSync(path.join(agentHome, '.gitconfig'), 'utf8');

  beforeAll(async () => {
    expect((await call('POST', '/git/init', { path: 'config' })).status).toBe(201);
  });

  it('sets and reads values in the global scope (the sandbox user) by default', async () => {
    const set = await call('POST', '/git/config', { key: 'cove.test', value: 'global value' });
    expect(set.status, JSON.stringify(set.json)).toBe(204);
    expect(globalConfig()).toMatch(/\[cove\]\s+test = global value/);
    const get = await call('GET', q('/git/config', { key: 'cove.test' }));
    expect(get).toEqual({ status: 200, json: { value: 'global value' } });
    expect((await call('GET', q('/git/config', { key: 'cove.test', scope: 'global' }))).json).toEqual({ value: 'global value' });
    // Not set in the repository.
    expect((await call('GET', q('/git/config', { key: 'cove.test', scope: 'local', path: 'config' }))).json).toEqual({});
  });

  it('answers no value for a key that is not set', async () => {
    const res = await call('GET', q('/git/config', { key: 'cove.unset' }));
    expect(res).toEqual({ status: 200, json: {} });
  });

  it('sets and reads the local scope of a repository, subsections and values on several lines', async () => {
    expect((await call('POST', '/git/config', { key: 'cove.local', value: 'here', scope: 'local', path: 'config' })).status).toBe(204);
    expect(readFileSync(inWork('config', '.git', 'config'), 'utf8')).toContain('local = here');
    expect(globalConfig()).not.toContain('local = here');
    expect((await call('GET', q('/git/config', { key: 'cove.local', scope: 'local', path: 'config' }))).json).toEqual({ value: 'here' });
    expect((await call('GET', q('/git/config', { key: 'cove.local' }))).json).toEqual({});

    const key = 'branch.feature/x.y.description';
    expect((await call('POST', '/git/config', { key, value: 'line one\nline two', scope: 'local', path: 'config' })).status).toBe(204);
    expect(git('config', ['config', '--get', key])).toBe('line one\nline two\n');
    expect((await call('GET', q('/git/config', { key, scope: 'local', path: 'config' }))).json).toEqual({ value: 'line one\nline two' });

    // A multi-valued key reads as its last value, as `git config --get` does.
    git('config', ['config', '--add', 'cove.many', 'first']);
    git('config', ['config', '--add', 'cove.many', 'last']);
    expect((await call('GET', q('/git/config', { key: 'cove.many', scope: 'local', path: 'config' }))).json).toEqual({ value: 'last' });
    expect((await call('POST', '/git/config', { key: 'cove.empty', value: '', scope: 'local', path: 'config' })).status).toBe(204);
    expect((await call('GET', q('/git/config', { key: 'cove.empty', scope: 'local', path: 'config' }))).json).toEqual({ value: '' });
  });

  it('sets keys that name programs: the user could write them into the file anyway', async () => {
    const res = await call('POST', '/git/config', { key: 'core.hooksPath', value: '.githooks', scope: 'local', path: 'config' });
    expect(res.status, JSON.stringify(res.json)).toBe(204);
    expect(git('config', ['config', '--get', 'core.hooksPath']).trim()).toBe('.githooks');
  });

  it('reads the system scope', async () => {
    const res = await call('GET', q('/git/config', { key: 'cove.never-set-here', scope: 'system' }));
    expect(res).toEqual({ status: 200, json: {} });
  });

  it('configures the user name and email, globally or per repository', async () => {
    const global = await call('POST', '/git/config/user', { name: 'Grace Hopper', email: 'grace@example.test' });
    expect(global.status, JSON.stringify(global.json)).toBe(204);
    expect((await call('GET', q('/git/config', { key: 'user.name' }))).json).toEqual({ value: 'Grace Hopper' });
    expect((await call('GET', q('/git/config', { key: 'user.email' }))).json).toEqual({ value: 'grace@example.test' });
    const local = await call('POST', '/git/config/user', { name: 'Local Person', email: 'local@example.test', scope: 'local', path: 'config' });
    expect(local.status).toBe(204);
    expect(git('config', ['config', '--local', '--get', 'user.email']).trim()).toBe('local@example.test');

    // Commits made through the agent's own shell use the configured identity.
    writeFileSync(inWork('config', 'c.txt'), 'c\n');
    const commit = await agent.json<{ exitCode: number; result: string }>('/process/execute', {
      method: 'POST',
      json: { command: 'git add c.txt && git commit -qm by-config && git log -1 --format=%an', cwd: inWork('config') },
    });
    expect(commit.exitCode, commit.result).toBe(0);
    expect(commit.result.trim()).toBe('Local Person');
  });

  it('rejects bad keys, scopes and values with a 400 naming the field', async () => {
    for (const key of ['nodot', 'user.', '.name', 'user.1name', 'bad section.name', '-x.y', 'a.b_c']) {
      const get = await call('GET', q('/git/config', { key }));
      expect(get.status, key).toBe(400);
      expect(get.json.message, key).toMatch(/key/);
      const set = await call('POST', '/git/config', { key, value: 'v' });
      expect(set.status, key).toBe(400);
    }
    const scope = await call('POST', '/git/config', { key: 'a.b', value: 'v', scope: 'worktree' });
    expect(scope.status).toBe(400);
    expect(scope.json.message).toMatch(/scope/);
    const local = await call('POST', '/git/config', { key: 'a.b', value: 'v', scope: 'local' });
    expect(local.status).toBe(400);
    expect(local.json.message).toMatch(/path/);
    const localGet = await call('GET', q('/git/config', { key: 'a.b', scope: 'local' }));
    expect(localGet.status).toBe(400);
    expect(localGet.json.message).toMatch(/path/);
    const noKey = await call('GET', '/git/config');
    expect(noKey.status).toBe(400);
    const value = await call('POST', '/git/config', { key: 'a.b', value: 'nul\0' });
    expect(value.status).toBe(400);
    expect(value.json.message).toMatch(/value/);
    const user = await call('POST', '/git/config/user', { name: 'Evil <x@y>', email: 'e@example.test' });
    expect(user.status).toBe(400);
    expect(user.json.message).toMatch(/name/);
    const noEmail = await call('POST', '/git/config/user', { name: 'N' });
    expect(noEmail.status).toBe(400);
    expect(noEmail.json.message).toMatch(/email/);
  });

  it('local scope outside a repository is GIT_REPO_NOT_FOUND', async () => {
    const set = await call('POST', '/git/config', { key: 'a.b', value: 'v', scope: 'local', path: 'not-a-repo' });
    expect(set.status).toBe(404);
    expect(set.json.code).toBe('GIT_REPO_NOT_FOUND');
    const get = await call('GET', q('/git/config', { key: 'a.b', scope: 'local', path: 'missing-dir' }));
    expect(get.status).toBe(404);
    expect(get.json.code).toBe('GIT_REPO_NOT_FOUND');
  });
});

describe('credentials kept for later requests', () => {
  const storeFile = () => path.join(agentHome, '.config', 'cove', 'git-credentials.json');

  it('without kept credentials, a clone of the protected server is refused', async () => {
    const res = await call('POST', '/git/clone', { url: repoUrl, path: 'before-auth' });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('GIT_AUTH_FAILED');
  });

  it('keeps them in a file of the sandbox user, 0600, and nowhere git reads by itself', async () => {
    const res = await call('POST', '/git/credentials', { username: server.username, password: server.password, host: serverHost, protocol: 'http' });
    expect(res.status, JSON.stringify(res.json)).toBe(204);
    const file = storeFile();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(statSync(file).uid).toBe(process.getuid!());
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      credentials: [{ protocol: 'http', host: serverHost, username: server.username, password: server.password }],
    });
    expect(readFileSync(path.join(agentHome, '.gitconfig'), 'utf8')).not.toContain(server.password);
    expect(existsSync(path.join(agentHome, '.git-credentials'))).toBe(false);
  });

  it('clone, push, pull and remote fetches then need no credentials of their own', async () => {
    const clone = await call('POST', '/git/clone', { url: repoUrl, path: 'kept' });
    expect(clone.status, JSON.stringify(clone.json)).toBe(204);
    expect(readFileSync(inWork('kept', '.git', 'config'), 'utf8')).not.toContain(server.password);

    writeFileSync(inWork('kept', 'kept.txt'), 'pushed with kept credentials\n');
    git('kept', ['add', 'kept.txt']);
    git('kept', ['commit', '-qm', 'kept credentials']);
    const push = await call('POST', '/git/push', { path: 'kept' });
    expect(push.status, JSON.stringify(push.json)).toBe(204);
    expect(server.git('project', ['rev-parse', 'main']).trim()).toBe(git('kept', ['rev-parse', 'HEAD']).trim());

    expect((await call('POST', '/git/reset', { path: 'kept', mode: 'hard', target: 'HEAD~1' })).status).toBe(204);
    const pull = await call('POST', '/git/pull', { path: 'kept' });
    expect(pull.status, JSON.stringify(pull.json)).toBe(204);
    expect(readFileSync(inWork('kept', 'kept.txt'), 'utf8')).toBe('pushed with kept credentials\n');

    expect((await call('POST', '/git/init', { path: 'kept-remote' })).status).toBe(201);
    const fetched = await call('POST', '/git/remotes', { path: 'kept-remote', name: 'origin', url: repoUrl, fetch: true });
    expect(fetched.status, JSON.stringify(fetched.json)).toBe(201);
    expect(git('kept-remote', ['rev-parse', 'refs/remotes/origin/main']).trim()).toBe(server.git('project', ['rev-parse', 'main']).trim());

    // The user's own credential store was neither asked first nor written to.
    const userStore = path.join(agentHome, '.git-credentials');
    if (existsSync(userStore)) expect(readFileSync(userStore, 'utf8')).not.toContain(server.password);
  });

  it('a request with its own credentials uses those, not the kept ones', async () => {
    const res = await call('POST', '/git/pull', { path: 'kept', username: server.username, password: 'wrong-on-purpose' });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('GIT_AUTH_FAILED');
  });

  it('serve only their host: another port of the same address gets none', async () => {
    const other = await startGitServer({ password: server.password });
    try {
      const url = other.createRepo('elsewhere');
      const res = await call('POST', '/git/clone', { url, path: 'other-host' });
      expect(res.status).toBe(401);
      expect(res.json.code).toBe('GIT_AUTH_FAILED');
    } finally {
      await other.close();
    }
  });

  it('a second call for the host replaces its entry; other hosts are kept beside it', async () => {
    await call('POST', '/git/credentials', { username: 'someone', password: 'github-token-123', host: 'GitHub.com' });
    const wrong = await call('POST', '/git/credentials', { username: server.username, password: 'stale-password', host: serverHost, protocol: 'http' });
    expect(wrong.status).toBe(204);
    const push = await call('POST', '/git/pull', { path: 'kept' });
    expect(push.status).toBe(401);
    expect(push.json.message).not.toContain('stale-password');
    expect(JSON.stringify(push.json)).not.toContain('stale-password');
    await call('POST', '/git/credentials', { username: server.username, password: server.password, host: serverHost, protocol: 'http' });
    expect((await call('POST', '/git/pull', { path: 'kept' })).status).toBe(204);
    const kept = JSON.parse(readFileSync(storeFile(), 'utf8')).credentials;
    expect(kept).toEqual([
      { protocol: 'https', host: 'github.com', username: 'someone', password: 'github-token-123' },
      { protocol: 'http', host: serverHost, username: server.username, password: server.password },
    ]);
  });

  it('deleting the file forgets them', async () => {
    const saved = readFileSync(storeFile(), 'utf8');
    const del = await agent.fetch(`/files?${new URLSearchParams({ path: storeFile() })}`, { method: 'DELETE' });
    expect(del.status).toBeLessThan(300);
    const res = await call('POST', '/git/pull', { path: 'kept' });
    expect(res.status).toBe(401);
    writeFileSync(storeFile(), saved, { mode: 0o600 });
    expect((await call('POST', '/git/pull', { path: 'kept' })).status).toBe(204);
  });

  it('a file that is not what the agent writes counts as none, and the next call replaces it', async () => {
    writeFileSync(storeFile(), 'not json', { mode: 0o600 });
    expect((await call('POST', '/git/pull', { path: 'kept' })).status).toBe(401);
    const res = await call('POST', '/git/credentials', { username: server.username, password: server.password, host: serverHost, protocol: 'http' });
    expect(res.status).toBe(204);
    expect((await call('POST', '/git/pull', { path: 'kept' })).status).toBe(204);
  });

  it('rejects bad input with a 400 naming the field', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ password: 'p' }, /username/],
      [{ username: 'u' }, /password/],
      [{ username: 'u', password: 'p\nprotocol=http' }, /password/],
      [{ username: 'u\r', password: 'p' }, /username/],
      [{ username: 'u', password: 'p', host: 'evil.test/path' }, /host/],
      [{ username: 'u', password: 'p', host: 'a b' }, /host/],
      [{ username: 'u', password: 'p', host: 'x\nhost=evil' }, /host/],
      [{ username: 'u', password: 'p', protocol: 'ssh' }, /protocol/],
      [{ username: '', password: 'p' }, /username/],
    ];
    for (const [body, field] of cases) {
      const res = await call('POST', '/git/credentials', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.message, JSON.stringify(body)).toMatch(field);
      expect(res.json.message).not.toContain('p\nprotocol');
    }
  });
});

describe('the Daytona SDK 0.218 Git methods', () => {
  const config = () =>
    new Configuration({ basePath: agent.url, baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } } });
  // Built as Sandbox builds it: the SDK's own axios instance turns error bodies into typed errors.
  const sdkGit = () => new Git(new GitApi(config(), '', Daytona.createAxiosInstance() as never));

  it('init, configureUser, remoteAdd, remotes and remoteGet', async () => {
    const g = sdkGit();
    await g.init('sdk-repo', false, 'develop');
    expect((await g.status('sdk-repo')).currentBranch).toBe('develop');
    await g.init('sdk-bare', true);
    expect(existsSync(inWork('sdk-bare', 'HEAD'))).toBe(true);
    await g.configureUser('SDK User', 'sdk@example.test', 'local', 'sdk-repo');
    expect(git('sdk-repo', ['config', '--local', 'user.name']).trim()).toBe('SDK User');

    await g.remoteAdd('sdk-repo', 'origin', repoUrl, true);
    expect(git('sdk-repo', ['rev-parse', '--verify', 'refs/remotes/origin/main']).trim()).toMatch(/^[0-9a-f]{40}$/);
    await g.remoteAdd('sdk-repo', 'origin', 'https://example.test/replaced.git', false, true);
    const { remotes } = await g.remotes('sdk-repo');
    expect(remotes).toEqual([{ name: 'origin', url: 'https://example.test/replaced.git' }]);
    expect(await g.remoteGet('sdk-repo', 'origin')).toBe('https://example.test/replaced.git');
    expect(await g.remoteGet('sdk-repo', 'nope')).toBeUndefined();
  });

  it('setConfig and getConfig, global by default', async () => {
    const g = sdkGit();
    await g.setConfig('sdk.key', 'sdk value');
    expect(await g.getConfig('sdk.key')).toBe('sdk value');
    expect(readFileSync(path.join(agentHome, '.gitconfig'), 'utf8')).toContain('sdk value');
    await g.setConfig('sdk.local', 'in repo', 'local', 'sdk-repo');
    expect(await g.getConfig('sdk.local', 'local', 'sdk-repo')).toBe('in repo');
    expect(await g.getConfig('sdk.local')).toBeUndefined();
  });

  it('dangerouslyAuthenticate, then clone, commit, push, reset, restore and pull without credentials', async () => {
    const g = sdkGit();
    await g.dangerouslyAuthenticate(server.username, server.password, serverHost, 'http');
    await g.clone(repoUrl, 'sdk-clone');
    writeFileSync(inWork('sdk-clone', 'sdk.txt'), 'from the sdk\n');
    await g.add('sdk-clone', ['sdk.txt']);
    const { sha } = await g.commit('sdk-clone', 'sdk commit', 'SDK', 'sdk@example.test');
    await g.push('sdk-clone');
    expect(server.git('project', ['rev-parse', 'main']).trim()).toBe(sha);

    await g.reset('sdk-clone', 'hard', 'HEAD~1');
    expect(existsSync(inWork('sdk-clone', 'sdk.txt'))).toBe(false);
    await g.pull('sdk-clone');
    expect(readFileSync(inWork('sdk-clone', 'sdk.txt'), 'utf8')).toBe('from the sdk\n');

    writeFileSync(inWork('sdk-clone', 'sdk.txt'), 'edited\n');
    await g.add('sdk-clone', ['sdk.txt']);
    await g.restore('sdk-clone', ['sdk.txt'], true);
    expect((await g.status('sdk-clone')).fileStatus).toContainEqual({ name: 'sdk.txt', staging: 'Unmodified', worktree: 'Modified', extra: '' });
    await g.restore('sdk-clone', ['sdk.txt']);
    expect(readFileSync(inWork('sdk-clone', 'sdk.txt'), 'utf8')).toBe('from the sdk\n');
    await g.reset('sdk-clone');
  });

  it('gets typed errors', async () => {
    const g = sdkGit();
    await expect(g.reset('not-a-repo')).rejects.toBeInstanceOf(DaytonaGitRepoNotFoundError);
    await expect(g.reset('sdk-clone', 'hard', 'no-such-commit')).rejects.toBeInstanceOf(DaytonaGitBranchNotFoundError);
    await expect(g.restore('sdk-clone', ['sdk.txt'], false, undefined, 'no-such-commit')).rejects.toThrow(/staged/);
    await g.dangerouslyAuthenticate(server.username, 'wrong', serverHost, 'http');
    await expect(g.pull('sdk-clone')).rejects.toBeInstanceOf(DaytonaGitAuthFailedError);
    await g.dangerouslyAuthenticate(server.username, server.password, serverHost, 'http');
  });

  it('reads remotes and config through the toolbox client models', async () => {
    const api = new GitApi(config(), '', undefined);
    const remotes = await api.listRemotes('sdk-clone');
    expect(remotes.data).toEqual({ remotes: [{ name: 'origin', url: repoUrl }] });
    const value = await api.getGitConfig('user.name', 'sdk-repo', 'local');
    expect(value.data).toEqual({ value: 'SDK User' });
    const unset = await api.getGitConfig('sdk.never');
    expect(unset.data).toEqual({});
  });
});

describe('as another account', () => {
  it('git runs as that user: its home is not writable, so config and kept credentials are refused', async () => {
    const other = await startAgent({ args: ['--user', 'nobody'] });
    try {
      const post = async (p: string, body: unknown) => {
        const res = await other.fetch(p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
        return { status: res.status, json: await res.json().catch(() => undefined) };
      };
      const creds = await post('/git/credentials', { username: 'u', password: 'p' });
      expect(creds.status).toBe(403);
      expect(creds.json.code).toBe('FILE_ACCESS_DENIED');
      const system = await post('/git/config', { key: 'cove.test', value: 'v', scope: 'system' });
      expect(system.status, JSON.stringify(system.json)).toBe(403);
      expect(system.json.code).toBe('FILE_ACCESS_DENIED');
      const init = await post('/git/init', { path: path.join(other.workdir, 'mine') });
      expect(init.status).toBe(403);
      expect(init.json.code).toBe('FILE_ACCESS_DENIED');
    } finally {
      await other.stop();
    }
  });
});

describe('the OpenAPI document', () => {
  it('lists the new git routes with their methods', async () => {
    const doc = await agent.json<{ paths: Record<string, Record<string, unknown>> }>('/openapi.json');
    const routes = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/git/'))
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    expect(routes).toEqual(
      expect.arrayContaining([
        'POST /git/init',
        'POST /git/reset',
        'POST /git/restore',
        'POST /git/remotes',
        'GET /git/remotes',
        'POST /git/config',
        'GET /git/config',
        'POST /git/config/user',
        'POST /git/credentials',
      ]),
    );
  });
});

describe('credentials', () => {
  it('never appeared in a process command line, nor in the agent output', () => {
    expect(scans).toBeGreaterThan(10);
    expect(leaks).toEqual([]);
    expect(agent.output()).not.toContain(server.password);
  });
});
