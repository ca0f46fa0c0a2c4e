/**
 * Credentials for one git operation. They reach git only through the environment of that one child process and a
 * credential helper that reads it, so they never appear in argv (the process list), `.git/config`, the remote URL,
 * a credential store, or an error message.
 */

/** Credentials for the remote of one request. */
export interface GitCredentials {
  username: string;
  password: string;
}

/** What a request gave: explicit fields win over credentials embedded in the URL. */
interface RemoteAccess {
  /** The URL without any `user:password@`, safe to store and to log. */
  url: string;
  credentials?: GitCredentials;
}

// GitHub, GitLab and most hosts accept a token with any user name; git needs one to send Basic auth.
const DEFAULT_USERNAME = 'git';

const USERNAME_VAR = 'COVE_GIT_USERNAME';
const PASSWORD_VAR = 'COVE_GIT_PASSWORD';

/**
 * Splits credentials out of a URL (`https://user:token@host/repo.git`) so that git never stores them as the remote
 * URL, and merges them with the request's own fields.
 */
export function remoteAccess(rawUrl: string, username?: string | null, password?: string | null): RemoteAccess {
  let url = rawUrl;
  let fromUrl: Partial<GitCredentials> = {};
  // Only URLs with a scheme carry user info git would send as credentials; scp-like `git@host:repo` names an SSH
  // account, which stays.
  if (/^https?:\/\//i.test(rawUrl)) {
    try {
      const parsed = new URL(rawUrl);
      if (parsed.username || parsed.password) {
        fromUrl = { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
        parsed.username = '';
        parsed.password = '';
        url = parsed.toString();
      }
    } catch {
      /* not a URL Node can parse: git will say what is wrong with it */
    }
  }
  return { url, credentials: requestCredentials(username || fromUrl.username, password || fromUrl.password) };
}

/** The credentials of a request's `username`/`password`, or none. */
export function requestCredentials(username?: string | null, password?: string | null): GitCredentials | undefined {
  if (!username && !password) return undefined;
  return { username: username || DEFAULT_USERNAME, password: password ?? '' };
}

/**
 * `-c` settings that make git take the credentials from the environment. The first, empty `credential.helper`
 * clears every helper configured for the user, so none is asked first and none stores these credentials after
 * success; ours answers `get` only. Only variable names appear in argv.
 */
export function credentialConfig(): string[] {
  const helper = `!f() { test "$1" = get || return 0; printf 'username=%s\\n' "$${USERNAME_VAR}"; printf 'password=%s\\n' "$${PASSWORD_VAR}"; }; f`;
  return ['credential.helper=', `credential.helper=${helper}`];
}

/** The environment entries for the one child process that uses the credentials. */
export function credentialEnv(credentials: GitCredentials): Record<string, string> {
  return { [USERNAME_VAR]: credentials.username, [PASSWORD_VAR]: credentials.password };
}

/** Credentials kept for every request to `protocol://host` (see credential-store.ts). */
export interface HostCredentials extends GitCredentials {
  protocol: 'http' | 'https';
  /** Host name or address, with `:port` when the URL names one. */
  host: string;
}

/**
 * `-c` settings for kept credentials: per host, git's own URL matching (`credential.<url>.helper`) picks the entry
 * whose `protocol://host` the remote URL has. For a matching URL the empty value first clears the helpers configured
 * for the user, so none is asked before ours and none stores the secret afterwards; URLs of other hosts keep them.
 * Each helper reads its own numbered variables; only their names and the host appear in argv.
 */
export function hostCredentialConfig(entries: readonly HostCredentials[]): string[] {
  return entries.flatMap((entry, i) => {
    const scope = `credential.${entry.protocol}://${entry.host}.helper`;
    const helper = `!f() { test "$1" = get || return 0; printf 'username=%s\\n' "$${USERNAME_VAR}_${i}"; printf 'password=%s\\n' "$${PASSWORD_VAR}_${i}"; }; f`;
    return [`${scope}=`, `${scope}=${helper}`];
  });
}

/** The environment entries that the helpers of hostCredentialConfig read. */
export function hostCredentialEnv(entries: readonly HostCredentials[]): Record<string, string> {
  const env: Record<string, string> = {};
  entries.forEach((entry, i) => {
    env[`${USERNAME_VAR}_${i}`] = entry.username;
    env[`${PASSWORD_VAR}_${i}`] = entry.password;
  });
  return env;
}

/** Removes the password from a URL's user info, keeping the user name: what a listing may show. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@:]*):[^/@]*@/i, '$1$2:***@');
}

/**
 * Removes credentials from text that leaves the agent (error messages, logs): user info in URLs and, when known,
 * the secret itself wherever it appears.
 */
export function scrub(text: string, ...credentials: (GitCredentials | undefined)[]): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]+@/gi, '$1***@');
  for (const c of credentials) if (c?.password && c.password.length >= 3) out = out.split(c.password).join('***');
  return out;
}
