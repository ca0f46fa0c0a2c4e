import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { CoveError } from '../../../lib/errors';
import type { ResetMode } from 'simple-git';
import {
  MAX_DIFF_BYTES,
  type GitAddRemoteRequest,
  type GitAuthenticateRequest,
  type GitConfigQuery,
  type GitConfigResponse,
  type GitConfigureUserRequest,
  type GitInitRequest,
  type GitResetRequest,
  type GitRestoreRequest,
  type GitSetConfigRequest,
  type ListRemotesResponse,
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
import { createCredentialStore } from './credential-store';
import { redactUrl, remoteAccess, requestCredentials, type GitCredentials } from './credentials';
import { LOG_FORMAT, parseBranches, parseLog, parseNumstat, parseStatus } from './parse';
import { createGitRunner, type GitRun, type GitRunOptions } from './runner';

/**
 * simple-git refuses to set config keys that name programs (core.sshCommand, core.hooksPath, alias.*…) unless told.
 * POST /git/config sets them: git runs as the sandbox user, who could write the same line into the file, so nothing
 * is gained that the user did not have.
 */
const CONFIG_WRITE_UNSAFE: GitRunOptions['unsafe'] = {
  allowUnsafeAlias: true,
  allowUnsafeAskPass: true,
  allowUnsafeCommandBinaries: true,
  allowUnsafeCredentialHelper: true,
  allowUnsafeDiffExternal: true,
  allowUnsafeDiffTextConv: true,
  allowUnsafeEditor: true,
  allowUnsafeFilter: true,
  allowUnsafeFsMonitor: true,
  allowUnsafeGitProxy: true,
  allowUnsafeGpgProgram: true,
  allowUnsafeHooksPath: true,
  allowUnsafeInclude: true,
  allowUnsafeMergeDriver: true,
  allowUnsafePack: true,
  allowUnsafePager: true,
  allowUnsafeProtocolOverride: true,
  allowUnsafeSshCommand: true,
  allowUnsafeSubmodule: true,
  allowUnsafeTemplateDir: true,
  allowUnsafeUrlRewrite: true,
};

type ConfigScope = 'global' | 'local' | 'system';

/**
 * The Git capability: clone, init, status, branches, checkout, add, commit, history, reset, restore, remotes, config,
 * pull, push and diff of repositories in the sandbox, by running the git CLI as the sandbox user. Credentials given
 * with a request serve that one command (see credentials.ts); those kept by `authenticate` serve later commands
 * against their host that bring none (see credential-store.ts). Each request names the top directory of its
 * repository; git never searches the directories above it, so a wrong path cannot act on an enclosing repository.
 */
export function createGitService(ctx: SandboxContext) {
  const runner = createGitRunner(ctx);
  const store = createCredentialStore(ctx);
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

  /**
   * Runs git given as its arguments in a repository, with the parent directory as ceiling so that git looks for
   * `.git` here only. Used where simple-git's typed method would change what Cove answers:
   * - status, branch list, history and diff: Cove parses git's machine formats itself (`status --porcelain=v2`, which
   *   has ahead/behind and a gone upstream; `for-each-ref` and `log` with its own format; `diff --numstat -z`), into
   *   the Daytona shapes (parse.ts); simple-git's parsers read other formats into other shapes.
   * - branch create and delete: simple-git adds `-v` and parses a branch list, and its deleteLocalBranch turns a
   *   failure into an error of its own, not git's words, which errors.ts classifies.
   * - commit: author and committer are both set through the environment (simple-git's `--author` sets the author
   *   only), and the hash is read with rev-parse (simple-git parses the summary that `--quiet` leaves out).
   * - pull and push: simple-git's pull turns conflicts into an error of its own, and its push adds `--porcelain`,
   *   which moves git's refusals to stdout in another form; errors.ts classifies git's own words.
   * - rev-parse, for-each-ref and fetch of one commit: plumbing with no typed method, or one that parses output Cove
   *   does not use.
   */
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

  /** Runs simple-git methods in a repository, with the same ceiling as inRepo. */
  function withRepo<T>(
    dir: string,
    what: string,
    task: Parameters<typeof runner.run<T>>[1],
    opts: Pick<GitRunOptions, 'network' | 'unsafe'> & { ref?: string | null; url?: string } = {},
  ): Promise<T> {
    return runner.run(
      {
        cwd: dir,
        context: { what, repo: dir, ref: opts.ref ?? undefined, url: opts.url },
        network: opts.network,
        unsafe: opts.unsafe,
        env: { GIT_CEILING_DIRECTORIES: path.dirname(dir) },
      },
      task,
    );
  }

  /** Whether `dir` is the top of a repository (or a bare one). */
  async function isRepository(dir: string): Promise<boolean> {
    try {
      await inRepo(dir, ['rev-parse', '--git-dir'], 'read the repository');
      return true;
    } catch (err) {
      if ((err as CoveError).code === 'GIT_REPO_NOT_FOUND') return false;
      throw err;
    }
  }

  /**
   * Credentials for a command that talks to a remote: the request's own, or else those kept by POST
   * /git/credentials, which serve only the hosts they name.
   */
  /**
   * A remote named in a pull or push must be one of the repository's: git would take any other word as a URL or a
   * path and fail on the network (a 502) for what is the caller's mistake.
   */
  async function requireRemote(dir: string, name: string | null | undefined): Promise<void> {
    if (!name) return;
    const remotes = await withRepo(dir, 'list remotes', (git) => git.getRemotes());
    if (!remotes.some((r) => r.name === name)) {
      throw new CoveError('NOT_FOUND', `${dir} has no remote named ${JSON.stringify(name)}; add it first (POST /git/remotes)`);
    }
  }

  async function networkAccess(credentials: GitCredentials | undefined, insecureSkipTls?: boolean | null) {
    return { credentials, hosts: credentials ? [] : await store.list(), insecureSkipTls: insecureSkipTls ?? false };
  }

  /** A path git did not find becomes FILE_NOT_FOUND (git's words would read as an unknown branch). */
  function missingPathspec(err: unknown, dir: string): unknown {
    const detail = (err as CoveError).detail ?? '';
    const m = /pathspec '(.*)' did not match any file/.exec(detail);
    return m ? new CoveError('FILE_NOT_FOUND', `No file matches ${m[1]} in ${dir}`, detail) : err;
  }

  /**
   * Where a config command runs: the repository for `local` (which must be one), else the root folder, so that no
   * repository around the work dir is involved.
   */
  async function configTarget(scope: ConfigScope, p?: string | null): Promise<{ cwd: string; repo: string; env: Record<string, string> }> {
    if (scope !== 'local') return { cwd: '/', repo: `${scope} config`, env: {} };
    const dir = await repoDir(p ?? '.');
    return { cwd: dir, repo: dir, env: { GIT_CEILING_DIRECTORIES: path.dirname(dir) } };
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
      const network = await networkAccess(credentials, req.insecure_skip_tls);
      const context = { what: 'clone', repo: target, url, ref: req.branch ?? undefined };
      const options: string[] = [];
      if (req.branch) options.push('--branch', req.branch);
      if (req.depth) options.push('--depth', String(req.depth));
      if (req.commit_id) options.push('--no-checkout');
      options.push('--');
      const existed = await exists(target);
      // Git creates the missing directories (as the sandbox user, which mkdir here would not be). The `--` ends the
      // options: a URL or path beginning with `-` is never read as one.
      await runner.run({ cwd: ctx.workdir, context, network }, (git) => git.clone(url, target, options));
      if (!req.commit_id) return;
      const commit = req.commit_id;
      const checkout = () => withRepo(target, `check out commit ${commit}`, (git) => git.checkout(['--detach', commit, '--']), { ref: commit, url });
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
      await withRepo(dir, `check out ${req.branch}`, (git) => git.checkout([req.branch, '--']), { ref: req.branch });
    },

    async add(req: GitAddRequest): Promise<void> {
      const dir = await repoDir(req.path);
      try {
        // `--`: a file named like an option (`-A`, `--force`) is staged as a file.
        await withRepo(dir, 'stage files', (git) => git.add(['--', ...req.files]));
      } catch (err) {
        throw missingPathspec(err, dir);
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
      await requireRemote(dir, req.remote);
      const args = ['pull', '--no-rebase', '--no-edit'];
      if (req.remote || req.branch) args.push(req.remote ?? 'origin');
      if (req.branch) args.push(req.branch);
      await inRepo(dir, args, 'pull', { network: await networkAccess(credentials), ref: req.branch });
    },

    /**
     * Pushes the current branch (or `branch`) to the branch of the same name on its remote (`origin` unless the
     * branch has another), creating it there when new.
     */
    async push(req: GitPushRequest): Promise<void> {
      const dir = await repoDir(req.path);
      const credentials = requestCredentials(req.username, req.password);
      await requireRemote(dir, req.remote);
      const args = ['push'];
      if (req.set_upstream) args.push('--set-upstream');
      if (req.remote || req.branch) args.push(req.remote ?? 'origin');
      if (req.branch) args.push(req.branch);
      // `current`: a new branch is created on the remote under its own name instead of failing for want of an upstream.
      await inRepo(dir, args, 'push', { network: await networkAccess(credentials), ref: req.branch, config: ['push.default=current'] });
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

    /**
     * `git init`: creates the directory (and its parents) as the sandbox user when missing. A directory that is a
     * repository already is a conflict, not a re-initialisation.
     */
    async init(req: GitInitRequest): Promise<void> {
      const dir = resolve(req.path);
      const info = await stat(dir).catch(() => undefined);
      if (info && !info.isDirectory()) throw new CoveError('FILE_EXISTS', `Cannot create a repository at ${dir}: a file is there`);
      if (info && (await isRepository(dir))) throw new CoveError('CONFLICT', `${dir} is a git repository already`);
      const options = req.initial_branch ? [`--initial-branch=${req.initial_branch}`] : [];
      await runner.run({ cwd: '/', context: { what: 'create a repository', repo: dir, ref: req.initial_branch ?? undefined } }, (git) =>
        git.init(Boolean(req.bare), [...options, '--', dir]),
      );
    },

    /** `git reset --<mode> [target]`, or with files the index entries of those paths only. */
    async reset(req: GitResetRequest): Promise<void> {
      const dir = await repoDir(req.path);
      const target = req.target ? [req.target] : [];
      const what = req.target ? `reset to ${req.target}` : 'reset';
      try {
        await withRepo(dir, what, (git) =>
          req.files?.length
            ? // Paths reset the index only, which is mode mixed; git warns when `--mixed` is spelled out with paths.
              git.reset([...target, '--', ...req.files])
            : git.reset((req.mode ?? 'mixed') as ResetMode, [...target, '--']),
          { ref: req.target },
        );
      } catch (err) {
        throw missingPathspec(err, dir);
      }
    },

    /** `git restore`: the work tree unless `staged` alone is asked; from `source` when given. */
    async restore(req: GitRestoreRequest): Promise<void> {
      const dir = await repoDir(req.path);
      const staged = req.staged ?? false;
      const worktree = req.worktree ?? !staged;
      const args = ['restore'];
      if (staged) args.push('--staged');
      if (worktree) args.push('--worktree');
      if (req.source) args.push(`--source=${req.source}`);
      try {
        await inRepo(dir, [...args, '--', ...req.files], 'restore files', { ref: req.source });
      } catch (err) {
        throw missingPathspec(err, dir);
      }
    },

    /**
     * `git remote add`; with `overwrite`, an existing remote's section is replaced (its remote-tracking branches and
     * the upstreams naming it stay). Credentials in the URL serve the fetch of this request only and are not stored.
     * When the fetch of a new remote fails, the remote is removed again.
     */
    async addRemote(req: GitAddRemoteRequest): Promise<void> {
      const dir = await repoDir(req.path);
      const { url, credentials } = remoteAccess(req.url);
      const opts = { ref: req.name, url };
      const existed = (await withRepo(dir, 'list remotes', (git) => git.getRemotes())).some((r) => r.name === req.name);
      if (existed && req.overwrite) {
        await inRepo(dir, ['config', '--remove-section', `remote.${req.name}`], `replace remote ${req.name}`, opts);
      }
      await withRepo(dir, `add remote ${req.name}`, (git) => git.addRemote(req.name, url), opts);
      if (!req.fetch) return;
      try {
        const network = await networkAccess(credentials);
        // In options form: simple-git's fetch(remote) without a branch drops the remote and fetches the default one.
        await withRepo(dir, `fetch from ${req.name}`, (git) => git.fetch([req.name]), { ...opts, network });
      } catch (err) {
        if (!existed) await withRepo(dir, `remove remote ${req.name}`, (git) => git.removeRemote(req.name)).catch(() => {});
        throw err;
      }
    },

    /** Remotes and their fetch URLs (a password in a URL is shown as `***`). */
    async remotes(p: string): Promise<ListRemotesResponse> {
      const dir = await repoDir(p);
      const remotes = await withRepo(dir, 'list remotes', (git) => git.getRemotes(true));
      return { remotes: remotes.map((r) => ({ name: r.name, url: redactUrl(r.refs.fetch) })) };
    },

    /** `git config --<scope> key value` (global: the sandbox user's ~/.gitconfig). */
    async setConfig(req: GitSetConfigRequest): Promise<void> {
      const scope = req.scope ?? 'global';
      const target = await configTarget(scope, req.path);
      await runner.run(
        { cwd: target.cwd, env: target.env, context: { what: `set ${req.key}`, repo: target.repo }, unsafe: CONFIG_WRITE_UNSAFE },
        (git) => git.addConfig(req.key, req.value, false, scope),
      );
    },

    /** The value of a key in one scope (the last of a multi-valued key); no value when it is not set there. */
    async getConfig(q: GitConfigQuery): Promise<GitConfigResponse> {
      const scope = q.scope ?? 'global';
      const target = await configTarget(scope, q.path);
      // Not simple-git's getConfig: its parser reads a value holding a line break as another key. `--null` ends the
      // value with a NUL; an unset key prints nothing (exit status 1 without a message).
      const out = await runner.raw({
        args: ['config', `--${scope}`, '--null', '--get', q.key],
        cwd: target.cwd,
        env: target.env,
        context: { what: `read ${q.key}`, repo: target.repo },
      });
      return out.endsWith('\0') ? { value: out.slice(0, -1) } : {};
    },

    /** user.name and user.email in one scope. */
    async configureUser(req: GitConfigureUserRequest): Promise<void> {
      const scope = req.scope ?? 'global';
      const target = await configTarget(scope, req.path);
      await runner.run({ cwd: target.cwd, env: target.env, context: { what: 'set the user name and email', repo: target.repo } }, async (git) => {
        await git.addConfig('user.name', req.name, false, scope);
        await git.addConfig('user.email', req.email, false, scope);
      });
    },

    /** Keeps credentials for `protocol://host` (see credential-store.ts); the request's host is stored lower-case. */
    async authenticate(req: GitAuthenticateRequest): Promise<void> {
      await store.save({
        protocol: req.protocol ?? 'https',
        host: (req.host ?? 'github.com').toLowerCase(),
        username: req.username,
        password: req.password,
      });
    },

    close(): Promise<void> {
      runner.close();
      return Promise.resolve();
    },
  };
}
export type GitService = ReturnType<typeof createGitService>;
