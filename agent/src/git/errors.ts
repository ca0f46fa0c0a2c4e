import { CoveError } from '../../../lib/errors';
import type { ErrorCode } from '../../../wire/errors';

/** What the failed command was doing, for the sentence people read. */
export interface GitFailureContext {
  /** The operation, as a verb phrase: "clone", "push", "check out feature". */
  what: string;
  /** Repository directory (or clone target). */
  repo: string;
  /** Remote URL, without credentials. */
  url?: string;
  /** The branch or commit the request named. */
  ref?: string;
}

interface Rule {
  test: RegExp;
  code: ErrorCode;
  say: (c: GitFailureContext) => string;
}

const remote = (c: GitFailureContext) => (c.url ? ` ${c.url}` : '');

// Git's own words (the agent runs git with LC_ALL=C, so they are English). Order matters: a 403 is "unable to
// access" too, and an authentication failure must not read as a transport failure.
const RULES: Rule[] = [
  {
    test: /not a git repository|must be run in a work tree|--local can only be used inside a git repository/i,
    code: 'GIT_REPO_NOT_FOUND',
    say: (c) => `${c.repo} is not the top directory of a git repository`,
  },
  {
    test: /Authentication failed|could not read (Username|Password)|terminal prompts disabled|returned error: 40[13]\b|Access denied|Permission denied \(publickey|Host key verification failed/i,
    code: 'GIT_AUTH_FAILED',
    say: (c) => `The remote${remote(c)} refused the credentials (or needs some) to ${c.what}`,
  },
  {
    test: /Repository not found|does not appear to be a git repository|returned error: 404\b|repository '.*' not found|No such repository/i,
    code: 'GIT_REPO_NOT_FOUND',
    say: (c) => `The remote repository${remote(c)} was not found`,
  },
  {
    test: /Could not resolve (host|proxy)|Failed to connect|Connection refused|Connection timed out|Couldn't connect|Network is unreachable|No route to host|SSL|certificate|Operation too slow|Operation timed out|RPC failed|early EOF|the remote end hung up unexpectedly|unable to access|returned error: 5\d\d\b|Connection reset/i,
    code: 'GIT_TRANSPORT_FAILED',
    say: (c) => `Could not reach the remote${remote(c)} to ${c.what}`,
  },
  {
    test: /\[remote rejected\]|hook declined|protected branch/i,
    code: 'GIT_REMOTE_REJECTED',
    say: (c) => `The remote${remote(c)} refused the ${c.what} (a hook, branch protection or quota)`,
  },
  {
    test: /\[rejected\]|non-fast-forward|Updates were rejected|fetch first/i,
    code: 'GIT_PUSH_REJECTED',
    say: () => 'The remote has commits this branch lacks: pull them first, then push again',
  },
  {
    test: /^CONFLICT \(|Automatic merge failed|you have unmerged files|unmerged paths|Merging is not possible/im,
    code: 'GIT_MERGE_CONFLICT',
    say: (c) =>
      `Merge conflicts stopped the ${c.what}: resolve them and commit, or abort the merge (git merge --abort)`,
  },
  {
    test: /would be overwritten by|Please commit your changes or stash them|untracked working tree files would be|not uptodate\. Cannot merge/i,
    code: 'GIT_DIRTY_WORKTREE',
    say: (c) => `Local changes in ${c.repo} would be overwritten by the ${c.what}: commit or discard them first`,
  },
  {
    test: /could not resolve HEAD|ambiguous argument 'HEAD'|Failed to resolve 'HEAD'/i,
    code: 'CONFLICT',
    say: (c) => `Cannot ${c.what}: the current branch has no commit yet`,
  },
  {
    test: /remote .* already exists/i,
    code: 'CONFLICT',
    say: (c) => `A remote named "${c.ref}" already exists in ${c.repo}: set overwrite to replace it`,
  },
  {
    test: /Failed to resolve '.*' as a valid (revision|ref)|could not resolve |Remote branch .* not found|couldn't find remote ref|invalid reference|did not match any file\(s\) known to git|branch '.*' not found|unknown revision|not a valid object name|not a commit|reference is not a tree|bad revision|not our ref/i,
    code: 'GIT_BRANCH_NOT_FOUND',
    say: (c) => `No branch or commit ${c.ref ? `"${c.ref}" ` : ''}found to ${c.what}`,
  },
  {
    test: /a branch named .* already exists/i,
    code: 'GIT_BRANCH_EXISTS',
    say: (c) => `A branch named "${c.ref}" already exists in ${c.repo}`,
  },
  {
    test: /destination path .* already exists and is not an empty directory/i,
    code: 'FILE_EXISTS',
    say: (c) => `Cannot clone into ${c.repo}: it exists and is not empty`,
  },
  {
    test: /is not a valid (branch|ref) name|not a valid branch name/i,
    code: 'INVALID_REQUEST',
    say: (c) => `"${c.ref}" is not a valid branch name`,
  },
  {
    test: /nothing to commit|no changes added to commit|nothing added to commit/i,
    code: 'CONFLICT',
    say: () => 'Nothing to commit: stage changes with add first, or set allow_empty',
  },
  {
    test: /Cannot delete branch .* (checked out|used by worktree)/i,
    code: 'CONFLICT',
    say: (c) => `Cannot delete "${c.ref}": it is checked out; check out another branch first`,
  },
  {
    test: /no tracking information|no upstream branch|You are not currently on a branch/i,
    code: 'CONFLICT',
    say: (c) => `Cannot ${c.what}: the current branch has no upstream (name a branch) or HEAD is detached`,
  },
  {
    test: /Not possible to fast-forward|divergent branches/i,
    code: 'CONFLICT',
    say: (c) => `Cannot ${c.what}: the branches have diverged and the repository allows fast-forward only`,
  },
  {
    test: /dubious ownership/i,
    code: 'FILE_ACCESS_DENIED',
    say: (c) => `${c.repo} belongs to another user; git refuses to work in it`,
  },
  {
    test: /Permission denied|Operation not permitted|Read-only file system/i,
    code: 'FILE_ACCESS_DENIED',
    say: (c) => `Permission denied while trying to ${c.what} in ${c.repo}`,
  },
  {
    test: /Please tell me who you are|identity unknown|unable to auto-detect email/i,
    code: 'INVALID_REQUEST',
    say: (c) => `Cannot ${c.what}: git needs a user name and email (git config user.name / user.email)`,
  },
];

/** The line of git's output that says what went wrong, for messages of failures no rule knows. */
function reasonLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^(fatal|error):/.test(l))?.replace(/^(fatal|error):\s*/, '') ?? lines.at(-1) ?? 'no output';
}

/**
 * Turns git's output of a failed command into a CoveError with a Daytona git code where one fits. `text` must already
 * be free of credentials; it becomes the detail. Failures no rule knows are 400 with git's own reason: the request
 * asked for something git refused.
 */
export function gitFailure(text: string, context: GitFailureContext): CoveError {
  const detail = text.trim();
  for (const rule of RULES) {
    if (rule.test.test(detail)) return new CoveError(rule.code, rule.say(context), detail);
  }
  return new CoveError('INVALID_REQUEST', `git could not ${context.what}: ${reasonLine(detail)}`, detail);
}
