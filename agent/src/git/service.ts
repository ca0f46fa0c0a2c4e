import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { CoveError } from '../../../lib/http/errors';
import {
  MAX_DIFF_BYTES,
  type GitAddRequest,
  type GitBranchRequest,
  type GitCheckoutRequest,
  type GitCloneRequest,
  type GitCommitInfo,
  type GitCommitRequest,
  type GitCommitResponse,
  type GitDiff,
  type GitDiffQuery,
  type GitPullRequest,
  type GitPushRequest,
  type GitStatus,
  type ListBranchResponse,
} from '../../../wire/git';
import type { SandboxContext } from '../system/context';
import { resolvePath } from '../system/paths';
import { remoteAccess, requestCredentials } from './credentials';
import { LOG_FORMAT, parseBranches, parseLog, parseNumstat, parseStatus } from './parse';
import { createGitRunner, type GitRun } from './runner';

/**
 * The Git capability: clone, status, branches, checkout, add, commit, history, pull, push and diff of repositories
 * in the sandbox, by running the git CLI as the sandbox user. Credentials given with a request serve that one
 * command (see credentials.ts). Each request names the top directory of its repository; git never searches the
 * directories above it, so a wrong path cannot act on an enclosing repository.
 */
export function createGitService(ctx: SandboxContext) {
  const runner = createGitRunner(ctx);
  const resolve = (p: string) => resolvePath(ctx.workdir, p);

  /** The repository directory of a request; it must be a directory (git then says whether it is a repository). */
  async function repoDir(p: string): Promise<string> {
    const dir = resolve(p);
    let isDir = false;
    try {
      isDir = (await stat(dir)).isDirectory();
    } catch {
      throw new CoveError('GIT_REPO_NOT_FOUND', `No git repository at ${dir}: the directory does not exist`);
    }
    if (!isDir) throw new CoveError('GIT_REPO_NOT_FOUND', `No git repository at ${dir}: it is not a directory`);
    return dir;
  }

  /** Runs git in a repository, with the parent directory as ceiling so that git looks for `.git` here only. */
  function inRepo(
    dir: string,
    args: string[],
    what: string,
    opts: Pick<GitRun, 'network' | 'env' | 'config'> & { ref?: string | null; url?: string } = {},
  ): Promise<string> {
    return runner.raw({
      args,
      cwd: dir,
      context: { what, repo: dir, ref: opts.ref ?? undefined, url: opts.url },
      network: opts.network,
      config: opts.config,
      env: { GIT_CEILING_DIRECTORIES: path.dirname(dir), ...opts.env },
    });
  }

  async function exists(p: string): Promise<boolean> {
    try {
      await stat(p);
      return true;
    } catch {
      return false;
    }
  }

  /** Whether a remote-tracking branch of this name exists (a branch pushed without recording its upstream). */
  async function publishedWithoutUpstream(dir: string, branch: string): Promise<boolean> {
    const out = await inRepo(dir, ['for-each-ref', '--count=1', '--format=%(refname)', `refs/remotes/*/${branch}`], 'read the remote branches');
    return out.trim() !== '';
  }

  return {
    /** `git clone`; with commit_id the clone is left at that commit, detached. Nothing of the credentials stays. */
    async clone(req: GitCloneRequest): Promise<void> {
      const target = resolve(req.path);
      const { url, credentials } = remoteAccess(req.url, req.username, req.password);
      const network = { credentials, insecureSkipTls: req.insecure_skip_tls ?? false };
      const context = { what: 'clone', repo: target, url, ref: req.branch ?? undefined };
      const args = ['clone'];
      if (req.branch) args.push('--branch', req.branch);
      if (req.depth) args.push('--depth', String(req.depth));
      if (req.commit_id) args.push('--no-checkout');
      args.push('--', url, target);
      const existed = await exists(target);
      // Git creates the missing directories (as the sandbox user, which mkdir here would not be).
      await runner.raw({ args, cwd: ctx.workdir, context, network });
      if (!req.commit_id) return;
      const commit = req.commit_id;
      const checkout = () =>
        inRepo(target, ['checkout', '--detach', commit, '--'], `check out commit ${commit}`, { ref: commit, url });
      try {
        try {
          await checkout();
        } catch (err) {
          // A shallow clone may not hold the commit: fetch it alone (servers allow wants of reachable commits).
          if (!req.depth || (err as CoveError).code !== 'GIT_BRANCH_NOT_FOUND') throw err;
          await inRepo(target, ['fetch', '--depth', String(req.depth), 'origin', commit], `fetch commit ${commit}`, { ref: commit, url, network });
          await checkout();
        }
      } catch (err) {
        // The request failed: do not leave a clone at the wrong commit behind.
        if (!existed) await rm(target, { recursive: true, force: true });
        throw err;
      }
    },

    async status(p: string): Promise<GitStatus> {
      const dir = await repoDir(p);
      const parsed = parseStatus(await inRepo(dir, ['status', '--porcelain=v2', '--branch', '-z'], 'read the status'));
      const { upstreamGone, ...status } = parsed;
      let branchPublished = status.upstream !== undefined && !upstreamGone;
      if (!branchPublished && !status.detached) branchPublished = await publishedWithoutUpstream(dir, status.currentBranch);
      return { ...status, branchPublished };
    },

    async branches(p: string): Promise<ListBranchResponse> {
      const dir = await repoDir(p);
      return parseBranches(await inRepo(dir, ['for-each-ref', '--format=%(HEAD)%(refname:short)', 'refs/heads'], 'list branches'));
    },

    /** Creates a branch at HEAD without checking it out (Daytona's "create a new branch"). */
    async createBranch(req: GitBranchRequest): Promise<void> {
      const dir = await repoDir(req.path);
      await inRepo(dir, ['branch', req.name], `create branch ${req.name}`, { ref: req.name });
    },

    /** Deletes a local branch, merged or not: the request asks for exactly that. */
    async deleteBranch(req: GitBranchRequest): Promise<void> {
      const dir = await repoDir(req.path);
      await inRepo(dir, ['branch', '-D', req.name], `delete branch ${req.name}`, { ref: req.name });
    },

    /** Checks out a branch (a remote branch gets a local tracking branch) or a commit (detached). */
    async checkout(req: GitCheckoutRequest): Promise<void> {
      const dir = await repoDir(req.path);
      // The trailing `--` makes git read the name as a branch or commit only, never as a file to restore.
      await inRepo(dir, ['checkout', req.branch, '--'], `check out ${req.branch}`, { ref: req.branch });
    },

    async add(req: GitAddRequest): Promise<void> {
      const dir = await repoDir(req.path);
      try {
        await inRepo(dir, ['add', '--', ...req.files], 'stage files');
      } catch (err) {
        const detail = (err as CoveError).detail ?? '';
        const m = /pathspec '(.*)' did not match any files/.exec(detail);
        if (m) throw new CoveError('FILE_NOT_FOUND', `No file matches ${m[1]} in ${dir}`, detail);
        throw err;
      }
    },

    /** Commits what is staged, as author and committer `author <email>`; answers the new commit's full hash. */
    async commit(req: GitCommitRequest): Promise<GitCommitResponse> {
      const dir = await repoDir(req.path);
      const args = ['commit', '--quiet', '--no-edit', '-m', req.message];
      if (req.allow_empty) args.push('--allow-empty');
      const env = {
        GIT_AUTHOR_NAME: req.author,
        GIT_AUTHOR_EMAIL: req.email,
        GIT_COMMITTER_NAME: req.author,
        GIT_COMMITTER_EMAIL: req.email,
      };
      await inRepo(dir, args, 'commit', { env });
      const hash = (await inRepo(dir, ['rev-parse', 'HEAD'], 'read the new commit')).trim();
      return { hash };
    },

    /** Commits reachable from HEAD, newest first; an empty list before the first commit. */
    async history(p: string, limit?: number): Promise<GitCommitInfo[]> {
      const dir = await repoDir(p);
      // HEAD is checked first: `git log` on an unborn branch fails, and an empty history is the answer there.
      const head = await inRepo(dir, ['rev-parse', '--verify', '--quiet', 'HEAD'], 'read HEAD').catch((err) => {
        if ((err as CoveError).code === 'GIT_REPO_NOT_FOUND') throw err;
        return '';
      });
      if (!head.trim()) return [];
      const args = ['log', LOG_FORMAT];
      if (limit) args.push(`--max-count=${limit}`);
      return parseLog(await inRepo(dir, [...args, '--'], 'read the history'));
    },

    /** Fetches and merges (never rebases) the upstream, or `remote`/`branch` when named. */
    async pull(req: GitPullRequest): Promise<void> {
      const dir = await repoDir(req.path);
      const credentials = requestCredentials(req.username, req.password);
      const args = ['pull', '--no-rebase', '--no-edit'];
      if (req.remote || req.branch) args.push(req.remote ?? 'origin');
      if (req.branch) args.push(req.branch);
      await inRepo(dir, args, 'pull', { network: { credentials }, ref: req.branch });
    },

    /**
     * Pushes the current branch (or `branch`) to the branch of the same name on its remote (`origin` unless the
     * branch has another), creating it there when new.
     */
    async push(req: GitPushRequest): Promise<void> {
      const dir = await repoDir(req.path);
      const credentials = requestCredentials(req.username, req.password);
      const args = ['push'];
      if (req.set_upstream) args.push('--set-upstream');
      if (req.remote || req.branch) args.push(req.remote ?? 'origin');
      if (req.branch) args.push(req.branch);
      // `current`: a new branch is created on the remote under its own name instead of failing for want of an upstream.
      await inRepo(dir, args, 'push', { network: { credentials }, ref: req.branch, config: ['push.default=current'] });
    },

    /** The unified diff and per-file line counts of the work tree against the index, or of the index (`staged`). */
    async diff(q: GitDiffQuery): Promise<GitDiff> {
      const dir = await repoDir(q.path);
      const scope = [...(q.staged ? ['--cached'] : []), '--', ...(q.file ? [q.file] : [])];
      const [text, numstat] = await Promise.all([
        inRepo(dir, ['diff', '--no-color', '--no-ext-diff', ...scope], 'diff'),
        inRepo(dir, ['diff', '--numstat', '-z', '--no-ext-diff', ...scope], 'diff'),
      ]);
      const bytes = Buffer.byteLength(text);
      const truncated = bytes > MAX_DIFF_BYTES;
      const diff = truncated ? Buffer.from(text).subarray(0, MAX_DIFF_BYTES).toString('utf8') : text;
      return { diff, files: parseNumstat(numstat), truncated };
    },

    async close(): Promise<void> {
      runner.close();
    },
  };
}
export type GitService = ReturnType<typeof createGitService>;
