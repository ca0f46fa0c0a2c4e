/**
 * The Git capability against a real agent and real git: a loopback git server (git http-backend behind HTTP Basic
 * authentication) for clone, pull and push, and the Daytona SDK's own Git class as one of the clients.
 */
import { Daytona, DaytonaGitAuthFailedError, DaytonaGitBranchNotFoundError, Git } from '@daytonaio/sdk';
import { Configuration, GitApi } from '@daytona/toolbox-api-client';
import { chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GitCommitInfo, GitDiff, GitStatus, ListBranchResponse } from '../../wire/git';
import { startAgent, type TestAgent } from '../helpers/agent';
import { gitSync, startGitServer, type GitServer } from '../helpers/git-server';

let agent: TestAgent;
let server: GitServer;
let repoUrl: string;
let agentHome: string;
/** Command lines seen, while a git client waited on the server, that held the password. */
const leaks: string[] = [];
let scans = 0;

/** Every process's command line, read while a request waits: git and its helpers are among them then. */
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
  repoUrl = server.createRepo(
    'project',
    { 'README.md': 'hello\n', 'src/app.txt': 'one\ntwo\nthree\n' },
    { feature: { 'feature.txt': 'feature work\n' } },
  );
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
const creds = () => ({ username: server.username, password: server.password });
const inWork = (...parts: string[]) => path.join(agent.workdir, ...parts);

/** Clones `project` into the work dir through the agent. */
async function clone(dir: string, extra: Record<string, unknown> = {}): Promise<void> {
  const res = await call('POST', '/git/clone', { url: repoUrl, path: dir, ...creds(), ...extra });
  expect(res.status, JSON.stringify(res.json)).toBe(204);
}

/** Asserts that no file git keeps and no remote URL holds the password. */
function expectNoStoredCredentials(dir: string): void {
  const config = readFileSync(inWork(dir, '.git/config'), 'utf8');
  expect(config).not.toContain(server.password);
  expect(config).not.toContain(`${server.username}@`);
  const remotes = gitSync(inWork(dir), ['remote', '-v']);
  expect(remotes).toContain(repoUrl);
  expect(remotes).not.toContain(server.password);
  expect(remotes).not.toMatch(/\/\/[^/]*@/);
  for (const store of ['.git-credentials', '.config/git/credentials']) {
    const file = path.join(agentHome, store);
    if (existsSync(file)) expect(readFileSync(file, 'utf8')).not.toContain(server.password);
  }
}

/** Whether the agent's account has a git identity (in its home or the system config). */
async function agentHasIdentity(): Promise<boolean> {
  const res = await agent.json<{ exitCode: number }>('/process/execute', { method: 'POST', json: { command: 'git config user.email' } });
  return res.exitCode === 0;
}

describe('clone', () => {
  it('clones a branch, shallow, with credentials that are used and not kept', async () => {
    const before = server.requests.length;
    await clone('shallow', { branch: 'feature', depth: 1 });
    expect(readFileSync(inWork('shallow', 'feature.txt'), 'utf8')).toBe('feature work\n');
    expect(gitSync(inWork('shallow'), ['rev-list', '--count', 'HEAD']).trim()).toBe('1');
    expect(gitSync(inWork('shallow'), ['rev-parse', '--is-shallow-repository']).trim()).toBe('true');
    const status = (await call('GET', q('/git/status', { path: 'shallow' }))).json as GitStatus;
    expect(status.currentBranch).toBe('feature');
    // The server demanded authentication and then got the right credentials.
    const seen = server.requests.slice(before);
    expect(seen.some((r) => !r.authorized)).toBe(true);
    expect(seen.some((r) => r.authorized)).toBe(true);
    expectNoStoredCredentials('shallow');
  });

  it('takes credentials out of the URL and leaves the remote URL clean', async () => {
    const url = repoUrl.replace('://', `://${server.username}:${server.password}@`);
    const res = await call('POST', '/git/clone', { url, path: 'from-url' });
    expect(res.status, JSON.stringify(res.json)).toBe(204);
    expectNoStoredCredentials('from-url');
  });

  it('leaves a clone at commit_id, detached', async () => {
    const main = server.git('project', ['rev-parse', 'main']).trim();
    await clone('at-commit', { commit_id: main });
    expect(gitSync(inWork('at-commit'), ['rev-parse', 'HEAD']).trim()).toBe(main);
    const status = (await call('GET', q('/git/status', { path: 'at-commit' }))).json as GitStatus;
    expect(status).toMatchObject({ currentBranch: 'HEAD', detached: true });
    // Shallow, at a commit the default branch does not reach: the agent fetches that commit alone.
    const feature = server.git('project', ['rev-parse', 'feature']).trim();
    await clone('shallow-at-commit', { commit_id: feature, depth: 1 });
    expect(gitSync(inWork('shallow-at-commit'), ['rev-parse', 'HEAD']).trim()).toBe(feature);
    expect(readFileSync(inWork('shallow-at-commit', 'feature.txt'), 'utf8')).toBe('feature work\n');
    const unknown = await call('POST', '/git/clone', { url: repoUrl, path: 'no-commit', commit_id: '0'.repeat(40), ...creds() });
    expect(unknown.status).toBe(404);
    expect(unknown.json.code).toBe('GIT_BRANCH_NOT_FOUND');
    expect(existsSync(inWork('no-commit'))).toBe(false);
  });

  it('refuses a wrong password as GIT_AUTH_FAILED and leaves nothing behind', async () => {
    const res = await call('POST', '/git/clone', { url: repoUrl, path: 'denied', username: server.username, password: 'wrong' });
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ code: 'GIT_AUTH_FAILED', source: 'DAYTONA_DAEMON' });
    expect(res.json.message).toContain(repoUrl);
    expect(existsSync(inWork('denied'))).toBe(false);
    // No credentials at all: git must fail at once instead of prompting.
    const none = await call('POST', '/git/clone', { url: repoUrl, path: 'anonymous' });
    expect(none.status).toBe(401);
    expect(none.json.code).toBe('GIT_AUTH_FAILED');
  });

  it('reports an unknown branch, an unknown remote repository and an existing target', async () => {
    const branch = await call('POST', '/git/clone', { url: repoUrl, path: 'no-branch', branch: 'nope', ...creds() });
    expect(branch.status).toBe(404);
    expect(branch.json.code).toBe('GIT_BRANCH_NOT_FOUND');
    const repo = await call('POST', '/git/clone', { url: server.url('missing'), path: 'no-repo', ...creds() });
    expect(repo.status).toBe(404);
    expect(repo.json.code).toBe('GIT_REPO_NOT_FOUND');
    writeFileSync(inWork('occupied'), 'x');
    const taken = await call('POST', '/git/clone', { url: repoUrl, path: 'occupied', ...creds() });
    expect(taken.status).toBe(409);
  });

  it('reports an unreachable remote as GIT_TRANSPORT_FAILED (502)', async () => {
    // A port that was just free: nothing listens there.
    const closed = await startGitServer();
    const url = closed.url('project');
    await closed.close();
    const res = await call('POST', '/git/clone', { url, path: 'unreachable' });
    expect(res.status).toBe(502);
    expect(res.json.code).toBe('GIT_TRANSPORT_FAILED');
  });

  it('rejects bad input with 400 and a clear message', async () => {
    const noUrl = await call('POST', '/git/clone', { path: 'x' });
    expect(noUrl.status).toBe(400);
    expect(noUrl.json.message).toMatch(/url/);
    const option = await call('POST', '/git/clone', { url: '--upload-pack=touch /tmp/pwned', path: 'x' });
    expect(option.status).toBe(400);
    expect(option.json.message).toMatch(/must not start with "-"/);
    const depth = await call('POST', '/git/clone', { url: repoUrl, path: 'x', depth: 0 });
    expect(depth.status).toBe(400);
  });
});

describe('working with a clone', () => {
  beforeAll(async () => {
    await clone('work');
  });

  it('reports staged, unstaged and untracked files', async () => {
    writeFileSync(inWork('work', 'README.md'), 'hello, edited\n');
    writeFileSync(inWork('work', 'staged.txt'), 'new\n');
    writeFileSync(inWork('work', 'loose.txt'), 'untracked\n');
    gitSync(inWork('work'), ['mv', 'src/app.txt', 'src/renamed.txt']);
    expect((await call('POST', '/git/add', { path: 'work', files: ['staged.txt'] })).status).toBe(204);
    const res = await call('GET', q('/git/status', { path: 'work' }));
    expect(res.status).toBe(200);
    const status = res.json as GitStatus;
    expect(status).toMatchObject({ currentBranch: 'main', ahead: 0, behind: 0, branchPublished: true, upstream: 'origin/main' });
    const byName = Object.fromEntries(status.fileStatus.map((f) => [f.name, f]));
    expect(byName['README.md']).toEqual({ name: 'README.md', staging: 'Unmodified', worktree: 'Modified', extra: '' });
    expect(byName['staged.txt']).toEqual({ name: 'staged.txt', staging: 'Added', worktree: 'Unmodified', extra: '' });
    expect(byName['loose.txt']).toEqual({ name: 'loose.txt', staging: 'Untracked', worktree: 'Untracked', extra: '' });
    expect(byName['src/renamed.txt']).toMatchObject({ staging: 'Renamed', extra: 'src/app.txt' });
  });

  it('diffs the work tree and the index, with line counts', async () => {
    const unstaged = (await call('GET', q('/git/diff', { path: 'work' }))).json as GitDiff;
    expect(unstaged.diff).toContain('-hello\n+hello, edited');
    expect(unstaged.files).toEqual([{ name: 'README.md', added: 1, deleted: 1, binary: false }]);
    expect(unstaged.truncated).toBe(false);
    const staged = (await call('GET', q('/git/diff', { path: 'work', staged: 'true' }))).json as GitDiff;
    expect(staged.diff).toContain('+new');
    expect(staged.files).toContainEqual({ name: 'staged.txt', added: 1, deleted: 0, binary: false });
    expect(staged.files).toContainEqual({ name: 'src/renamed.txt', oldName: 'src/app.txt', added: 0, deleted: 0, binary: false });
    const one = (await call('GET', q('/git/diff', { path: 'work', staged: 'true', file: 'staged.txt' }))).json as GitDiff;
    expect(one.files.map((f) => f.name)).toEqual(['staged.txt']);
  });

  it('commits as the given author; the hash heads the history', async () => {
    expect((await call('POST', '/git/add', { path: 'work', files: ['.'] })).status).toBe(204);
    const res = await call('POST', '/git/commit', { path: 'work', message: 'Edit things\n\nWith a body.', author: 'Ada Lovelace', email: 'ada@example.test' });
    expect(res.status).toBe(200);
    expect(res.json.hash).toMatch(/^[0-9a-f]{40}$/);
    const history = (await call('GET', q('/git/history', { path: 'work' }))).json as GitCommitInfo[];
    expect(history).toHaveLength(2);
    expect(history[0]).toMatchObject({ hash: res.json.hash, author: 'Ada Lovelace', email: 'ada@example.test', message: 'Edit things\n\nWith a body.' });
    expect(new Date(history[0].timestamp).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(history[1].message).toBe('initial commit');
    expect(gitSync(inWork('work'), ['log', '-1', '--format=%cn <%ce>']).trim()).toBe('Ada Lovelace <ada@example.test>');
    const limited = (await call('GET', q('/git/history', { path: 'work', limit: '1' }))).json as GitCommitInfo[];
    expect(limited).toHaveLength(1);
    const status = (await call('GET', q('/git/status', { path: 'work' }))).json as GitStatus;
    expect(status.ahead).toBe(1);
  });

  it('needs allow_empty to commit nothing', async () => {
    const refused = await call('POST', '/git/commit', { path: 'work', message: 'empty', author: 'A', email: 'a@example.test' });
    expect(refused.status).toBe(409);
    expect(refused.json.message).toMatch(/Nothing to commit/);
    const empty = await call('POST', '/git/commit', { path: 'work', message: 'empty', author: 'A', email: 'a@example.test', allow_empty: true });
    expect(empty.status).toBe(200);
    const history = (await call('GET', q('/git/history', { path: 'work' }))).json as GitCommitInfo[];
    expect(history[0]).toMatchObject({ hash: empty.json.hash, message: 'empty' });
  });

  it('adding a file that does not exist is FILE_NOT_FOUND', async () => {
    const res = await call('POST', '/git/add', { path: 'work', files: ['ghost.txt'] });
    expect(res.status).toBe(404);
    expect(res.json.code).toBe('FILE_NOT_FOUND');
  });

  it('creates, lists, checks out and deletes branches', async () => {
    const created = await call('POST', '/git/branches', { path: 'work', name: 'topic' });
    expect(created.status).toBe(201);
    let list = (await call('GET', q('/git/branches', { path: 'work' }))).json as ListBranchResponse;
    expect(list).toEqual({ branches: ['main', 'topic'], current: 'main' });

    const again = await call('POST', '/git/branches', { path: 'work', name: 'topic' });
    expect(again.status).toBe(409);
    expect(again.json.code).toBe('GIT_BRANCH_EXISTS');

    expect((await call('POST', '/git/checkout', { path: 'work', branch: 'topic' })).status).toBe(204);
    expect(((await call('GET', q('/git/status', { path: 'work' }))).json as GitStatus).currentBranch).toBe('topic');

    const busy = await call('DELETE', '/git/branches', { path: 'work', name: 'topic' });
    expect(busy.status).toBe(409);

    // A branch that exists only on the remote gets a local tracking branch.
    expect((await call('POST', '/git/checkout', { path: 'work', branch: 'feature' })).status).toBe(204);
    expect(readFileSync(inWork('work', 'feature.txt'), 'utf8')).toBe('feature work\n');
    expect((await call('POST', '/git/checkout', { path: 'work', branch: 'main' })).status).toBe(204);

    expect((await call('DELETE', '/git/branches', { path: 'work', name: 'topic' })).status).toBe(204);
    list = (await call('GET', q('/git/branches', { path: 'work' }))).json as ListBranchResponse;
    expect(list.branches).toEqual(['feature', 'main']);

    const unknown = await call('POST', '/git/checkout', { path: 'work', branch: 'nope' });
    expect(unknown.status).toBe(404);
    expect(unknown.json.code).toBe('GIT_BRANCH_NOT_FOUND');
    const unknownDelete = await call('DELETE', '/git/branches', { path: 'work', name: 'nope' });
    expect(unknownDelete.status).toBe(404);
    expect(unknownDelete.json.code).toBe('GIT_BRANCH_NOT_FOUND');
  });

  it('a checkout that would overwrite local changes is GIT_DIRTY_WORKTREE', async () => {
    await call('POST', '/git/branches', { path: 'work', name: 'other' });
    await call('POST', '/git/checkout', { path: 'work', branch: 'other' });
    writeFileSync(inWork('work', 'README.md'), 'changed on other\n');
    await call('POST', '/git/add', { path: 'work', files: ['README.md'] });
    await call('POST', '/git/commit', { path: 'work', message: 'other', author: 'A', email: 'a@example.test' });
    writeFileSync(inWork('work', 'README.md'), 'uncommitted\n');
    const res = await call('POST', '/git/checkout', { path: 'work', branch: 'main' });
    expect(res.status).toBe(409);
    expect(res.json.code).toBe('GIT_DIRTY_WORKTREE');
    gitSync(inWork('work'), ['checkout', '--quiet', '--force', 'main']);
  });
});

describe('not a repository', () => {
  it('is GIT_REPO_NOT_FOUND for a plain directory, a missing one, and a subdirectory', async () => {
    writeFileSync(inWork('plain.txt'), 'x');
    for (const p of ['.', 'does-not-exist', 'plain.txt']) {
      const res = await call('GET', q('/git/status', { path: p }));
      expect(res.status, p).toBe(404);
      expect(res.json.code, p).toBe('GIT_REPO_NOT_FOUND');
    }
    // Repository routes take the top directory: git does not climb to an enclosing repository.
    await clone('outer');
    const sub = await call('GET', q('/git/history', { path: 'outer/src' }));
    expect(sub.status).toBe(404);
    expect(sub.json.code).toBe('GIT_REPO_NOT_FOUND');
    const missingPath = await call('GET', '/git/status');
    expect(missingPath.status).toBe(400);
  });
});

describe('push and pull', () => {
  beforeAll(async () => {
    await clone('alice');
    await clone('bob');
  });

  async function commitFile(dir: string, file: string, text: string, message: string): Promise<string> {
    writeFileSync(inWork(dir, file), text);
    expect((await call('POST', '/git/add', { path: dir, files: [file] })).status).toBe(204);
    const res = await call('POST', '/git/commit', { path: dir, message, author: dir, email: `${dir}@example.test` });
    expect(res.status).toBe(200);
    return res.json.hash;
  }

  it('pushes from one clone and pulls into another', async () => {
    const hash = await commitFile('alice', 'from-alice.txt', 'hi bob\n', 'alice says hi');
    const push = await call('POST', '/git/push', { path: 'alice', ...creds() });
    expect(push.status, JSON.stringify(push.json)).toBe(204);
    expect(server.git('project', ['rev-parse', 'main']).trim()).toBe(hash);

    const pull = await call('POST', '/git/pull', { path: 'bob', ...creds() });
    expect(pull.status, JSON.stringify(pull.json)).toBe(204);
    expect(readFileSync(inWork('bob', 'from-alice.txt'), 'utf8')).toBe('hi bob\n');
    const status = (await call('GET', q('/git/status', { path: 'bob' }))).json as GitStatus;
    expect(status).toMatchObject({ ahead: 0, behind: 0 });
    expectNoStoredCredentials('alice');
    expectNoStoredCredentials('bob');
  });

  it('pushes a new branch and publishes it', async () => {
    await call('POST', '/git/branches', { path: 'alice', name: 'alice-topic' });
    await call('POST', '/git/checkout', { path: 'alice', branch: 'alice-topic' });
    await commitFile('alice', 'topic.txt', 'topic\n', 'topic work');
    let status = (await call('GET', q('/git/status', { path: 'alice' }))).json as GitStatus;
    expect(status.branchPublished).toBe(false);
    const push = await call('POST', '/git/push', { path: 'alice', ...creds(), set_upstream: true });
    expect(push.status, JSON.stringify(push.json)).toBe(204);
    status = (await call('GET', q('/git/status', { path: 'alice' }))).json as GitStatus;
    expect(status).toMatchObject({ branchPublished: true, upstream: 'origin/alice-topic', ahead: 0 });
    expect(server.git('project', ['branch', '--list', 'alice-topic'])).toContain('alice-topic');
    await call('POST', '/git/checkout', { path: 'alice', branch: 'main' });
  });

  it('a push without the remote commits is GIT_PUSH_REJECTED; a conflicting pull is GIT_MERGE_CONFLICT', async () => {
    await commitFile('alice', 'README.md', 'alice version\n', 'alice edits README');
    expect((await call('POST', '/git/push', { path: 'alice', ...creds() })).status).toBe(204);
    await commitFile('bob', 'README.md', 'bob version\n', 'bob edits README');

    const push = await call('POST', '/git/push', { path: 'bob', ...creds() });
    expect(push.status).toBe(409);
    expect(push.json.code).toBe('GIT_PUSH_REJECTED');

    // A merge needs a committer: without a git identity, the answer says what to set.
    if (!(await agentHasIdentity())) {
      const anonymous = await call('POST', '/git/pull', { path: 'bob', ...creds() });
      expect(anonymous.status).toBe(400);
      expect(anonymous.json.message).toMatch(/user\.name/);
    }
    gitSync(inWork('bob'), ['config', 'user.name', 'Bob']);
    gitSync(inWork('bob'), ['config', 'user.email', 'bob@example.test']);

    const pull = await call('POST', '/git/pull', { path: 'bob', ...creds() });
    expect(pull.status, JSON.stringify(pull.json)).toBe(409);
    expect(pull.json.code).toBe('GIT_MERGE_CONFLICT');
    const status = (await call('GET', q('/git/status', { path: 'bob' }))).json as GitStatus;
    expect(status.fileStatus).toContainEqual({ name: 'README.md', staging: 'Updated but unmerged', worktree: 'Updated but unmerged', extra: '' });
    gitSync(inWork('bob'), ['merge', '--abort']);
  });

  it('a wrong password on push and pull is GIT_AUTH_FAILED', async () => {
    const push = await call('POST', '/git/push', { path: 'bob', username: server.username, password: 'wrong' });
    expect(push.status).toBe(401);
    expect(push.json.code).toBe('GIT_AUTH_FAILED');
    const pull = await call('POST', '/git/pull', { path: 'bob', username: server.username, password: 'wrong' });
    expect(pull.status).toBe(401);
    expect(pull.json.code).toBe('GIT_AUTH_FAILED');
  });

  it('a push refused by a server hook is GIT_REMOTE_REJECTED', async () => {
    const hook = path.join(server.root, 'project.git', 'hooks', 'pre-receive');
    writeFileSync(hook, '#!/bin/sh\necho "no pushes today" >&2\nexit 1\n', { mode: 0o755 });
    try {
      await commitFile('alice', 'late.txt', 'late\n', 'late');
      const push = await call('POST', '/git/push', { path: 'alice', ...creds() });
      expect(push.status).toBe(422);
      expect(push.json.code).toBe('GIT_REMOTE_REJECTED');
      expect(push.json.detail).toContain('no pushes today');
    } finally {
      writeFileSync(hook, '#!/bin/sh\nexit 0\n');
    }
  });
});

describe('the Daytona SDK', () => {
  const config = () =>
    new Configuration({ basePath: agent.url, baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } } });
  // Built as Sandbox builds it: the SDK's own axios instance turns error bodies into typed errors.
  const sdkGit = () => new Git(new GitApi(config(), '', Daytona.createAxiosInstance() as never));

  it('clones, stages, commits, pushes and reads status through the SDK Git class', async () => {
    const git = sdkGit();
    await git.clone(repoUrl, 'sdk', 'main', undefined, server.username, server.password);
    const status = await git.status('sdk');
    expect(status.currentBranch).toBe('main');
    await git.createBranch('sdk', 'sdk-branch');
    expect((await git.branches('sdk')).branches).toContain('sdk-branch');
    await git.checkoutBranch('sdk', 'sdk-branch');
    writeFileSync(inWork('sdk', 'sdk.txt'), 'from the sdk\n');
    await git.add('sdk', ['sdk.txt']);
    const { sha } = await git.commit('sdk', 'from the sdk', 'SDK', 'sdk@example.test');
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    await git.push('sdk', server.username, server.password);
    expect(server.git('project', ['rev-parse', 'sdk-branch']).trim()).toBe(sha);
    await git.checkoutBranch('sdk', 'main');
    await git.deleteBranch('sdk', 'sdk-branch');
    await git.pull('sdk', server.username, server.password);
    expectNoStoredCredentials('sdk');
  });

  it('gets typed errors', async () => {
    const git = sdkGit();
    await expect(git.clone(repoUrl, 'sdk-denied', undefined, undefined, server.username, 'wrong')).rejects.toBeInstanceOf(
      DaytonaGitAuthFailedError,
    );
    await expect(git.checkoutBranch('sdk', 'nope')).rejects.toBeInstanceOf(DaytonaGitBranchNotFoundError);
  });

  it('reads the history through the toolbox client', async () => {
    const api = new GitApi(config(), '', undefined);
    const { data } = await api.getCommitHistory('sdk');
    expect(data.length).toBeGreaterThan(0);
    expect(data[0]).toEqual({ hash: expect.any(String), author: expect.any(String), email: expect.any(String), message: expect.any(String), timestamp: expect.any(String) });
  });
});

describe('as another account', () => {
  it('runs git as the sandbox user: the clone and its commits belong to that account', async () => {
    const other = await startAgent({ args: ['--user', 'nobody'] });
    try {
      chownSync(other.workdir, 65534, 65534);
      const post = (p: string, body: unknown) =>
        other.fetch(p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const res = await post('/git/clone', { url: repoUrl, path: 'mine', ...creds() });
      expect(res.status, await res.text()).toBe(204);
      for (const p of ['mine', 'mine/README.md', 'mine/.git/config']) expect(statSync(path.join(other.workdir, p)).uid, p).toBe(65534);
      writeFileSync(path.join(other.workdir, 'mine', 'note.txt'), 'by nobody\n');
      expect((await post('/git/add', { path: 'mine', files: ['note.txt'] })).status).toBe(204);
      expect((await post('/git/commit', { path: 'mine', message: 'as nobody', author: 'N', email: 'n@example.test' })).status).toBe(200);
      expect(statSync(path.join(other.workdir, 'mine', '.git', 'index')).uid).toBe(65534);

      // A repository of another account: git refuses it, and the answer says why.
      const foreign = path.join(other.workdir, 'foreign');
      gitSync(other.workdir, ['init', '--quiet', foreign]);
      const status = await other.fetch(`/git/status?path=foreign`);
      expect(status.status).toBe(403);
      expect((await status.json()).message).toMatch(/another user/);
    } finally {
      await other.stop();
    }
  });
});

describe('the OpenAPI document', () => {
  it('lists every git route with its method', async () => {
    const doc = await agent.json<{ paths: Record<string, Record<string, unknown>> }>('/openapi.json');
    const routes = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/git/'))
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    expect(routes).toEqual([
      'DELETE /git/branches',
      'GET /git/branches',
      'GET /git/config',
      'GET /git/diff',
      'GET /git/history',
      'GET /git/remotes',
      'GET /git/status',
      'POST /git/add',
      'POST /git/branches',
      'POST /git/checkout',
      'POST /git/clone',
      'POST /git/commit',
      'POST /git/config',
      'POST /git/config/user',
      'POST /git/credentials',
      'POST /git/init',
      'POST /git/pull',
      'POST /git/push',
      'POST /git/remotes',
      'POST /git/reset',
      'POST /git/restore',
    ]);
  });
});

describe('credentials', () => {
  it('never appeared in a process command line, nor in the agent output', () => {
    expect(scans).toBeGreaterThan(10);
    expect(leaks).toEqual([]);
    expect(agent.output()).not.toContain(server.password);
  });
});
