import { CoveError } from '../../../lib/http/errors';
import type { SandboxContext } from '../system/context';
import { credentialConfig, credentialEnv, scrub, type GitCredentials } from './credentials';
import { gitFailure, type GitFailureContext } from './errors';

type SimpleGitModule = typeof import('simple-git');

// simple-git is loaded on the first git request: most agents never run git, and an idle agent should not pay for
// the module in memory.
let loading: Promise<SimpleGitModule> | undefined;
const loadSimpleGit = () => (loading ??= import('simple-git'));

/**
 * Variables dropped from git's environment. The repository-location ones would point every request at one
 * repository whatever its path says; the editor, pager and askpass ones are for people at a terminal, which these
 * commands never have (simple-git also refuses to pass them without opt-ins).
 */
const DROPPED_ENV =
  /^(GIT_(DIR|WORK_TREE|INDEX_FILE|OBJECT_DIRECTORY|ALTERNATE_OBJECT_DIRECTORIES|COMMON_DIR|NAMESPACE|CEILING_DIRECTORIES|ASKPASS|EDITOR|SEQUENCE_EDITOR|PAGER|EXTERNAL_DIFF|PROXY_COMMAND|TEMPLATE_DIR|EXEC_PATH|CONFIG|CONFIG_GLOBAL|CONFIG_SYSTEM|CONFIG_COUNT|CONFIG_PARAMETERS|CONFIG_KEY_\d+|CONFIG_VALUE_\d+)|SSH_ASKPASS|EDITOR|VISUAL|PAGER|PREFIX)$/i;

/**
 * Settings of commands that talk to a remote: a transfer that stalls (under 1 KiB/s for a minute) fails instead of
 * holding the request forever.
 */
const NETWORK_CONFIG = ['http.lowSpeedLimit=1024', 'http.lowSpeedTime=60'];

/** One git command. */
export interface GitRun {
  args: string[];
  /** Directory git runs in; it must exist. */
  cwd: string;
  /** For the error message. */
  context: GitFailureContext;
  /** Talks to a remote: stall limits, and the credentials when given. */
  network?: { credentials?: GitCredentials; insecureSkipTls?: boolean };
  /** Extra environment of this one command. */
  env?: Record<string, string>;
  /** `-c` settings of this one command. */
  config?: string[];
}

/**
 * Runs git through simple-git as the sandbox user, with the sandbox environment, never a prompt, English messages,
 * and failures turned into CoveErrors. `close()` kills every command still running.
 */
export function createGitRunner(ctx: SandboxContext) {
  const stopping = new AbortController();

  function environment(run: GitRun): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(ctx.env)) if (!DROPPED_ENV.test(k)) env[k] = v;
    // Never wait for a person: no terminal prompt, and ssh fails instead of asking for a passphrase or host key.
    env.GIT_TERMINAL_PROMPT = '0';
    if (!env.GIT_SSH_COMMAND && !env.GIT_SSH) env.GIT_SSH_COMMAND = 'ssh -o BatchMode=yes -o ConnectTimeout=30';
    env.GIT_MERGE_AUTOEDIT = 'no';
    // Errors are classified by git's words; a translated git would say them otherwise.
    env.LC_ALL = 'C';
    delete env.LANGUAGE;
    if (run.network?.credentials) Object.assign(env, credentialEnv(run.network.credentials));
    return Object.assign(env, run.env);
  }

  async function raw(run: GitRun): Promise<string> {
    const { simpleGit } = await loadSimpleGit();
    const env = environment(run);
    const config: string[] = [...(run.config ?? [])];
    if (run.network) config.push(...NETWORK_CONFIG);
    if (run.network?.insecureSkipTls) config.push('http.sslVerify=false');
    if (run.network?.credentials) config.push(...credentialConfig());
    const spawnAs: { uid?: number; gid?: number } = {};
    if (ctx.spawnAs.uid !== undefined) spawnAs.uid = ctx.spawnAs.uid;
    if (ctx.spawnAs.gid !== undefined) spawnAs.gid = ctx.spawnAs.gid;
    const git = simpleGit({
      baseDir: run.cwd,
      config,
      spawnOptions: spawnAs,
      abort: stopping.signal,
      // Every variable here is one the agent chose (the sandbox's own environment and the settings above).
      allowEnvironment: Object.keys(env),
      unsafe: {
        allowUnsafeSshCommand: true,
        allowUnsafeCredentialHelper: Boolean(run.network?.credentials),
      },
      // Git prints some reasons (merge conflicts) on stdout: keep both streams of a failed command.
      errors: (error, result) =>
        result.exitCode !== 0 && (result.stdErr.length || result.stdOut.length)
          ? Buffer.concat([...result.stdErr, ...result.stdOut])
          : error,
    }).env(env);
    try {
      return await git.raw(run.args);
    } catch (err) {
      if (stopping.signal.aborted) throw new CoveError('INTERNAL_ERROR', 'The agent is stopping; the git command was killed');
      const message = (err as Error).message ?? String(err);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || /spawn git ENOENT/.test(message)) {
        throw new CoveError('INTERNAL_ERROR', 'git is not installed in this sandbox', message);
      }
      throw gitFailure(scrub(message, run.network?.credentials), run.context);
    }
  }

  return {
    raw,
    close(): void {
      stopping.abort();
    },
  };
}
export type GitRunner = ReturnType<typeof createGitRunner>;
