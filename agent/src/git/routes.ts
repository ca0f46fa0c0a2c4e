import type { Router } from '../../../lib/http/router';
import {
  GitAddRemoteRequest,
  GitAddRequest,
  GitAuthenticateRequest,
  GitConfigQuery,
  GitConfigResponse,
  GitConfigureUserRequest,
  GitInitRequest,
  GitResetRequest,
  GitRestoreRequest,
  GitSetConfigRequest,
  ListRemotesResponse,
  GitBranchRequest,
  GitCheckoutRequest,
  GitCloneRequest,
  GitCommitRequest,
  GitCommitResponse,
  GitDiff,
  GitDiffQuery,
  GitHistory,
  GitHistoryQuery,
  GitPullRequest,
  GitPushRequest,
  GitRepoQuery,
  GitStatus,
  ListBranchResponse,
} from '../../../wire/git';
import type { GitService } from './service';

export function registerGitRoutes(router: Router, git: GitService): void {
  const tag = 'git';
  router.route(
    { method: 'post', path: '/git/clone', tag, summary: 'Clone a repository; credentials serve this request only', body: GitCloneRequest },
    ({ body }) => git.clone(body),
  );
  router.route(
    { method: 'get', path: '/git/status', tag, summary: 'Branch, ahead/behind and file states', query: GitRepoQuery, response: GitStatus },
    ({ query }) => git.status(query.path),
  );
  router.route(
    { method: 'get', path: '/git/branches', tag, summary: 'Local branches', query: GitRepoQuery, response: ListBranchResponse },
    ({ query }) => git.branches(query.path),
  );
  router.route(
    { method: 'post', path: '/git/branches', tag, summary: 'Create a branch at HEAD', body: GitBranchRequest, status: 201 },
    async ({ body, c }) => {
      await git.createBranch(body);
      return c.body(null, 201);
    },
  );
  router.route(
    { method: 'delete', path: '/git/branches', tag, summary: 'Delete a local branch', body: GitBranchRequest },
    ({ body }) => git.deleteBranch(body),
  );
  router.route(
    { method: 'post', path: '/git/checkout', tag, summary: 'Check out a branch or commit', body: GitCheckoutRequest },
    ({ body }) => git.checkout(body),
  );
  router.route(
    { method: 'post', path: '/git/add', tag, summary: 'Stage files', body: GitAddRequest },
    ({ body }) => git.add(body),
  );
  router.route(
    { method: 'post', path: '/git/commit', tag, summary: 'Commit what is staged', body: GitCommitRequest, response: GitCommitResponse },
    ({ body }) => git.commit(body),
  );
  router.route(
    { method: 'get', path: '/git/history', tag, summary: 'Commits reachable from HEAD, newest first', query: GitHistoryQuery, response: GitHistory },
    ({ query }) => git.history(query.path, query.limit),
  );
  router.route(
    { method: 'post', path: '/git/pull', tag, summary: 'Fetch and merge the upstream', body: GitPullRequest },
    ({ body }) => git.pull(body),
  );
  router.route(
    { method: 'post', path: '/git/push', tag, summary: 'Push the current branch', body: GitPushRequest },
    ({ body }) => git.push(body),
  );
  router.route(
    { method: 'get', path: '/git/diff', tag, summary: 'Unified diff and per-file line counts (Cove)', query: GitDiffQuery, response: GitDiff },
    ({ query }) => git.diff(query),
  );
  router.route(
    { method: 'post', path: '/git/init', tag, summary: 'Create a repository', body: GitInitRequest, status: 201 },
    async ({ body, c }) => {
      await git.init(body);
      return c.body(null, 201);
    },
  );
  router.route(
    { method: 'post', path: '/git/reset', tag, summary: 'Reset HEAD, the index and/or the work tree', body: GitResetRequest },
    ({ body }) => git.reset(body),
  );
  router.route(
    { method: 'post', path: '/git/restore', tag, summary: 'Restore work tree files or unstage them', body: GitRestoreRequest },
    ({ body }) => git.restore(body),
  );
  router.route(
    { method: 'post', path: '/git/remotes', tag, summary: 'Add (or replace) a remote', body: GitAddRemoteRequest, status: 201 },
    async ({ body, c }) => {
      await git.addRemote(body);
      return c.body(null, 201);
    },
  );
  router.route(
    { method: 'get', path: '/git/remotes', tag, summary: 'Remotes and their URLs', query: GitRepoQuery, response: ListRemotesResponse },
    ({ query }) => git.remotes(query.path),
  );
  router.route(
    { method: 'post', path: '/git/config', tag, summary: 'Set a config value in a scope', body: GitSetConfigRequest },
    ({ body }) => git.setConfig(body),
  );
  router.route(
    { method: 'get', path: '/git/config', tag, summary: 'Read a config value in a scope', query: GitConfigQuery, response: GitConfigResponse },
    ({ query }) => git.getConfig(query),
  );
  router.route(
    { method: 'post', path: '/git/config/user', tag, summary: 'Set user.name and user.email in a scope', body: GitConfigureUserRequest },
    ({ body }) => git.configureUser(body),
  );
  router.route(
    {
      method: 'post',
      path: '/git/credentials',
      tag,
      summary: 'Keep credentials for a host, for later requests without their own (plain text, ~/.config/cove/git-credentials.json)',
      body: GitAuthenticateRequest,
    },
    ({ body }) => git.authenticate(body),
  );
}
