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
const credential = z
  .string()
  .refine((v) => !/[\0\n\r]/.test(v), 'must not contain NUL or line breaks')
  .nullish();

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
export const GIT_FILE_STATES = [
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
