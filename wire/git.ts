import { z } from 'zod';
import { queryBool } from './common';

/**
 * Wire shapes of the Git capability (Daytona toolbox `/git/*`). Field names follow the Daytona SDK's toolbox client
 * (`GitCloneRequest`, `GitStatus`, `FileStatus`, `ListBranchResponse`, `GitCommitRequest`, `GitCommitInfo`… of
 * `@daytona/toolbox-api-client`), which is what SDK users send and parse. `GET /git/diff` is Cove's own.
 *
 * Every `path` names the top directory of a repository (a clone's target for `/git/clone`); relative paths start at
 * the sandbox work dir. Optional fields accept `null`, which clients in other languages send for "not set".
 */

const path = z.string().min(1, 'must not be empty').describe('Repository directory; relative to the sandbox work dir');

/** A branch or other ref name given by a client. A leading `-` would read as an option to git. */
const refName = (what: string) =>
  z
    .string()
    .min(1, 'must not be empty')
    .refine((v) => !v.startsWith('-'), `a ${what} must not start with "-"`)
    .refine((v) => !/[\0\n\r]/.test(v), `a ${what} must not contain NUL or line breaks`);

/** A user name or password for the remote: handed to git's credential protocol, which is line based. */
const credentialText = z.string().refine((v) => !/[\0\n\r]/.test(v), 'must not contain NUL or line breaks');
const credential = credentialText.nullish();

export const GitCloneRequest = z.object({
  url: refName('URL').describe('Remote URL (https, http, ssh, git or file); credentials in it are used, never stored'),
  path,
  branch: refName('branch').nullish().describe('Branch to check out; the remote default when absent'),
  commit_id: refName('commit').nullish().describe('Commit to leave checked out (detached HEAD)'),
  username: credential.describe('User name for the remote; used for this request only'),
  password: credential.describe('Password or token for the remote; used for this request only'),
  depth: z.number().int().min(1).nullish().describe('Shallow clone of this many commits'),
  insecure_skip_tls: z.boolean().nullish().describe('Skip TLS certificate checks for this request'),
});
export type GitCloneRequest = z.infer<typeof GitCloneRequest>;

/** `?path=` of the read-only routes. */
export const GitRepoQuery = z.object({ path });
export type GitRepoQuery = z.infer<typeof GitRepoQuery>;

export const GitHistoryQuery = z.object({
  path,
  /** Cove's own: at most this many commits, newest first (Daytona returns all). */
  limit: z.coerce.number().int().min(1).optional(),
});
export type GitHistoryQuery = z.infer<typeof GitHistoryQuery>;

/** File states as the Daytona SDK names them (`Status` of the toolbox client). */
const GIT_FILE_STATES = [
  'Unmodified',
  'Untracked',
  'Modified',
  'Added',
  'Deleted',
  'Renamed',
  'Copied',
  'Updated but unmerged',
] as const;
export const GitFileState = z.enum(GIT_FILE_STATES);
export type GitFileState = z.infer<typeof GitFileState>;

export const FileStatus = z.object({
  name: z.string().describe('Path relative to the repository top'),
  staging: GitFileState.describe('State in the index against HEAD'),
  worktree: GitFileState.describe('State in the work tree against the index'),
  extra: z.string().describe('The previous path of a rename or copy; empty otherwise'),
});
export type FileStatus = z.infer<typeof FileStatus>;

export const GitStatus = z.object({
  currentBranch: z.string().describe('Branch checked out; `HEAD` when detached'),
  ahead: z.number().int().describe('Commits on the branch that its upstream lacks (0 without upstream)'),
  behind: z.number().int().describe('Commits on the upstream that the branch lacks (0 without upstream)'),
  branchPublished: z.boolean().describe('Whether the remote has the branch (an upstream, or a remote branch of its name)'),
  detached: z.boolean(),
  upstream: z.string().optional().describe('The upstream branch, e.g. `origin/main`'),
  fileStatus: z.array(FileStatus),
});
export type GitStatus = z.infer<typeof GitStatus>;

export const ListBranchResponse = z.object({
  branches: z.array(z.string()).describe('Local branches'),
  current: z.string().optional().describe('The branch checked out, absent when HEAD is detached'),
});
export type ListBranchResponse = z.infer<typeof ListBranchResponse>;

/** Create (`POST /git/branches`, which does not check it out) or delete (`DELETE /git/branches`) a branch. */
export const GitBranchRequest = z.object({ path, name: refName('branch') });
export type GitBranchRequest = z.infer<typeof GitBranchRequest>;

export const GitCheckoutRequest = z.object({
  path,
  branch: refName('branch').describe('Branch (a remote one gets a local tracking branch) or commit'),
});
export type GitCheckoutRequest = z.infer<typeof GitCheckoutRequest>;

export const GitAddRequest = z.object({
  path,
  files: z
    .array(z.string().min(1, 'must not be empty'))
    .min(1, 'name at least one file (`.` stages everything)')
    .describe('Paths relative to the repository top'),
});
export type GitAddRequest = z.infer<typeof GitAddRequest>;

export const GitCommitRequest = z.object({
  path,
  message: z.string().min(1, 'must not be empty'),
  author: z.string().min(1, 'must not be empty').describe('Author and committer name'),
  email: z.string().min(1, 'must not be empty').describe('Author and committer email'),
  allow_empty: z.boolean().nullish().describe('Commit even when nothing is staged'),
});
export type GitCommitRequest = z.infer<typeof GitCommitRequest>;

export const GitCommitResponse = z.object({ hash: z.string().describe('Full hash of the new commit') });
export type GitCommitResponse = z.infer<typeof GitCommitResponse>;

export const GitCommitInfo = z.object({
  hash: z.string(),
  author: z.string(),
  email: z.string(),
  message: z.string().describe('Full message, without its trailing newline'),
  timestamp: z.string().describe('Author date, ISO 8601 with offset'),
});
export type GitCommitInfo = z.infer<typeof GitCommitInfo>;

export const GitHistory = z.array(GitCommitInfo).describe('Commits reachable from HEAD, newest first');
export type GitHistory = z.infer<typeof GitHistory>;

/** Pull (merges, never rebases) and push. The SDK sends `branch`, `remote` and (push) `set_upstream` too. */
export const GitPullRequest = z.object({
  path,
  username: credential,
  password: credential,
  branch: refName('branch').nullish().describe("Remote branch; the current branch's upstream when absent"),
  remote: refName('remote').nullish().describe('Remote name; `origin` when absent'),
});
export type GitPullRequest = z.infer<typeof GitPullRequest>;

export const GitPushRequest = GitPullRequest.extend({
  branch: refName('branch').nullish().describe('Branch to push; the current branch when absent'),
  set_upstream: z.boolean().nullish().describe('Record the pushed branch as upstream'),
});
export type GitPushRequest = z.infer<typeof GitPushRequest>;

/** Most bytes of diff text one answer carries; beyond it the text is cut and `truncated` is set. */
export const MAX_DIFF_BYTES = 10 * 1024 * 1024;

export const GitDiffQuery = z.object({
  path,
  staged: queryBool.describe('Index against HEAD instead of work tree against index'),
  file: z.string().min(1).optional().describe('Only this path (relative to the repository top)'),
});
export type GitDiffQuery = z.infer<typeof GitDiffQuery>;

/** Lines added and deleted in one file (`git diff --numstat`). */
export const GitDiffFile = z.object({
  name: z.string(),
  /** Previous path when git saw a rename. */
  oldName: z.string().optional(),
  added: z.number().int(),
  deleted: z.number().int(),
  /** Binary files have no line counts (both 0). */
  binary: z.boolean(),
});
export type GitDiffFile = z.infer<typeof GitDiffFile>;

/** `GET /git/diff` (Cove's own): the unified diff and per-file counts. Untracked files are not in a diff. */
export const GitDiff = z.object({
  diff: z.string().describe('Unified diff text, as `git diff` prints it without colour'),
  files: z.array(GitDiffFile),
  truncated: z.boolean().describe(`Whether the text was cut at ${MAX_DIFF_BYTES} bytes (files stays complete)`),
});
export type GitDiff = z.infer<typeof GitDiff>;

/**
 * A name git accepts for a branch or a remote (the rules of `git check-ref-format`), checked here so that a bad name
 * is a 400 naming its field rather than git's own refusal.
 */
const gitName = (what: string) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(255, 'must be at most 255 characters')
    .superRefine((v, ctx) => {
      const bad = (why: string) => ctx.addIssue({ code: 'custom', message: `not a valid ${what} name: ${why}` });
      if (v.startsWith('-')) return bad('it must not start with "-"');
      if (/[\x00-\x20\x7f~^:?*[\\]/.test(v)) return bad('it must not contain spaces, control characters or any of ~ ^ : ? * [ \\');
      if (v.includes('..') || v.includes('@{') || v === '@') return bad('it must not contain ".." or "@{", nor be "@"');
      if (v.startsWith('/') || v.endsWith('/') || v.includes('//')) return bad('it must not start or end with "/" or contain "//"');
      if (v.endsWith('.') || v.split('/').some((part) => part.startsWith('.') || part.endsWith('.lock'))) {
        return bad('no part may start with "." or end with ".lock", and it must not end with "."');
      }
    });

/** Paths of files inside the repository (relative to its top), for reset and restore. */
const repoFiles = z
  .array(z.string().min(1, 'must not be empty').refine((v) => !v.includes('\0'), 'must not contain NUL'))
  .describe('Paths relative to the repository top');

/** `POST /git/init` (Daytona's 201, no body). Creates the directory when missing; an existing repository is a 409. */
export const GitInitRequest = z.object({
  path: path.describe('Directory of the new repository; relative to the sandbox work dir'),
  bare: z.boolean().nullish().describe('A repository without a work tree'),
  initial_branch: gitName('branch').nullish().describe("Name of the first branch; git's default (init.defaultBranch) when absent"),
});
export type GitInitRequest = z.infer<typeof GitInitRequest>;

const GIT_RESET_MODES = ['soft', 'mixed', 'hard', 'merge', 'keep'] as const;
const GitResetMode = z.enum(GIT_RESET_MODES);
type GitResetMode = z.infer<typeof GitResetMode>;

/** `POST /git/reset`: `git reset --<mode> [target] [-- files]`. */
export const GitResetRequest = z
  .object({
    path,
    mode: GitResetMode.nullish().describe('`mixed` when absent'),
    target: refName('revision').nullish().describe('Commit, branch or other revision to reset to; HEAD when absent'),
    files: repoFiles.nullish().describe('Reset only these paths in the index (mode mixed only); the work tree is untouched'),
  })
  .superRefine((req, ctx) => {
    if (req.files?.length && req.mode && req.mode !== 'mixed') {
      ctx.addIssue({ code: 'custom', path: ['files'], message: `files can be reset with mode mixed only, not ${req.mode}` });
    }
  });
export type GitResetRequest = z.infer<typeof GitResetRequest>;

/**
 * `POST /git/restore`: `git restore`. Neither `staged` nor `worktree` given restores the work tree; one given
 * restores that side only (as git does); both false is a 400.
 */
export const GitRestoreRequest = z
  .object({
    path,
    files: repoFiles.min(1, 'name at least one file (`.` restores everything)'),
    staged: z.boolean().nullish().describe('Restore the index (unstage)'),
    worktree: z.boolean().nullish().describe('Restore the work tree (discard changes)'),
    source: refName('revision').nullish().describe('Take the contents from this revision (the index, or HEAD for staged, when absent)'),
  })
  .superRefine((req, ctx) => {
    if (req.staged === false && req.worktree === false) {
      ctx.addIssue({ code: 'custom', path: ['worktree'], message: 'staged and worktree are both false: nothing to restore' });
    } else if (req.staged === false && req.worktree == null) {
      ctx.addIssue({ code: 'custom', path: ['staged'], message: 'staged is false and worktree is not set: nothing to restore' });
    } else if (req.worktree === false && req.staged == null) {
      ctx.addIssue({ code: 'custom', path: ['worktree'], message: 'worktree is false and staged is not set: nothing to restore' });
    }
  });
export type GitRestoreRequest = z.infer<typeof GitRestoreRequest>;

/** URL schemes git may fetch from here. Others (`ext::`, helpers of remote-* programs) are refused. */
const REMOTE_SCHEMES = ['https', 'http', 'ssh', 'git', 'file', 'git+ssh', 'ssh+git'];

/** A remote URL: a URL of a scheme above, an scp-like `[user@]host:path`, or a path of a local repository. */
const remoteUrl = z
  .string()
  .min(1, 'must not be empty')
  .max(4096, 'must be at most 4096 characters')
  .superRefine((v, ctx) => {
    const bad = (why: string) => ctx.addIssue({ code: 'custom', message: `not a usable remote URL: ${why}` });
    if (v.startsWith('-')) return bad('it must not start with "-"');
    if (/[\x00-\x20\x7f]/.test(v)) return bad('it must not contain spaces or control characters');
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(v)?.[1]?.toLowerCase();
    if (scheme !== undefined) {
      if (!REMOTE_SCHEMES.includes(scheme)) return bad(`scheme ${scheme} is not one of ${REMOTE_SCHEMES.join(', ')}`);
      try {
        new URL(v);
      } catch {
        return bad('it does not parse as a URL');
      }
      return;
    }
    if (v.includes('::')) return bad('transport helpers (`name::address`) are not allowed');
  });

/** `POST /git/remotes` (Daytona's 201, no body). */
export const GitAddRemoteRequest = z.object({
  path,
  name: gitName('remote').describe('Remote name, e.g. `origin` or `upstream`'),
  url: remoteUrl.describe('Remote URL; credentials in it are used for the fetch of this request only, never stored'),
  fetch: z.boolean().nullish().describe('Fetch from the remote at once (credentials stored by POST /git/credentials apply)'),
  overwrite: z.boolean().nullish().describe('Replace the settings of an existing remote of this name; without it that is a 409'),
});
export type GitAddRemoteRequest = z.infer<typeof GitAddRemoteRequest>;

const GitRemote = z.object({
  name: z.string(),
  url: z.string().describe('Fetch URL, with any password in it replaced by `***`'),
});
type GitRemote = z.infer<typeof GitRemote>;

/** `GET /git/remotes?path=`. */
export const ListRemotesResponse = z.object({ remotes: z.array(GitRemote).describe('Remotes by name') });
export type ListRemotesResponse = z.infer<typeof ListRemotesResponse>;

const GIT_CONFIG_SCOPES = ['global', 'local', 'system'] as const;

/** `global` (the sandbox user's ~/.gitconfig) when absent; an empty value counts as absent, as in Daytona. */
const configScope = z.preprocess(
  (v) => (v === '' ? undefined : v),
  z.enum(GIT_CONFIG_SCOPES).nullish().describe('global (the sandbox user, default), local (the repository at path) or system'),
);

/** `section.name` or `section.subsection.name`, as git accepts it (the subsection may hold any character but NUL and newline). */
const configKey = z
  .string()
  .min(1, 'must not be empty')
  .max(1024, 'must be at most 1024 characters')
  .refine((v) => !v.startsWith('-'), 'must not start with "-"')
  .regex(
    /^[A-Za-z0-9-]+(\.[^\0\n]+)?\.[A-Za-z][A-Za-z0-9-]*$/,
    'not a valid git config key: expected section.name or section.subsection.name (letters, digits and "-" in section and name)',
  );

const configPath = path.nullish().describe('Repository directory; required for scope local, ignored otherwise');

const requirePathForLocal = (req: { scope?: string | null; path?: string | null }, ctx: z.RefinementCtx) => {
  if (req.scope === 'local' && !req.path) ctx.addIssue({ code: 'custom', path: ['path'], message: 'is required when scope is local' });
};

/** `POST /git/config`: `git config --<scope> key value`. */
export const GitSetConfigRequest = z
  .object({
    key: configKey,
    value: z.string().refine((v) => !v.includes('\0'), 'must not contain NUL'),
    scope: configScope,
    path: configPath,
  })
  .superRefine(requirePathForLocal);
export type GitSetConfigRequest = z.infer<typeof GitSetConfigRequest>;

/** `GET /git/config?key=&scope=&path=`. */
export const GitConfigQuery = z
  .object({ key: configKey, scope: configScope, path: configPath })
  .superRefine(requirePathForLocal);
export type GitConfigQuery = z.infer<typeof GitConfigQuery>;

/** The value git reads for the key in that scope (the last one of a multi-valued key); absent when not set. */
export const GitConfigResponse = z.object({ value: z.string().optional() });
export type GitConfigResponse = z.infer<typeof GitConfigResponse>;

/** A user name or email for commits: git drops `<`, `>` and line breaks, so they are refused. */
const identityField = z
  .string()
  .min(1, 'must not be empty')
  .refine((v) => !/[\0\n\r<>]/.test(v), 'must not contain NUL, line breaks, "<" or ">"');

/** `POST /git/config/user`: user.name and user.email. */
export const GitConfigureUserRequest = z
  .object({ name: identityField, email: identityField, scope: configScope, path: configPath })
  .superRefine(requirePathForLocal);
export type GitConfigureUserRequest = z.infer<typeof GitConfigureUserRequest>;

const GIT_CREDENTIAL_PROTOCOLS = ['https', 'http'] as const;

/**
 * `POST /git/credentials` (the SDK's `dangerouslyAuthenticate`): credentials kept for later clones, pulls, pushes and
 * fetches through the agent against `protocol://host`, for requests that carry none of their own. The agent keeps
 * them in plain text in `~/.config/cove/git-credentials.json` of the sandbox user (mode 0600); deleting that file
 * forgets them. Git run by other programs in the sandbox does not read that file.
 */
export const GitAuthenticateRequest = z.object({
  username: credentialText.min(1, 'must not be empty'),
  password: credentialText.min(1, 'must not be empty'),
  host: z
    .string()
    .regex(
      /^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/,
      'must be a host name or address, with an optional :port (e.g. github.com or git.example.com:8443)',
    )
    .nullish()
    .describe('Host, with :port when not the default; github.com when absent'),
  protocol: z.enum(GIT_CREDENTIAL_PROTOCOLS).nullish().describe('https when absent'),
});
export type GitAuthenticateRequest = z.infer<typeof GitAuthenticateRequest>;
