import type { Router } from '../../../lib/http/router';
import {
  GitAddRequest,
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
}
