import { CoveError } from '../../../lib/errors';
import type { SandboxContext } from '../system/context';
import type { SimpleGit, SimpleGitOptions } from 'simple-git';
import {
  credentialConfig,
  credentialEnv,
  hostCredentialConfig,
  hostCredentialEnv,
  scrub,
  type GitCredentials,
  type HostCredentials,
} from './credentials';
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

/** How one git command runs. */
export interface GitRunOptions {
  /** Directory git runs in; it must exist. */
  cwd: string;
  /** For the error message. */
  context: GitFailureContext;
  /**
   * Talks to a remote: stall limits, and the credentials when given. The request's own `credentials` serve every
   * host; without them, the kept `hosts` entries serve the hosts they name.
   */
  network?: { credentials?: GitCredentials; hosts?: readonly HostCredentials[]; insecureSkipTls?: boolean };
  /** Extra environment of this one command. */
  env?: Record<string, string>;
  /** `-c` settings of this one command. */
  config?: string[];
  /** simple-git's guards lifted for this command (setting a config key that names a program, for one). */
  unsafe?: SimpleGitOptions['unsafe'];
}

/** One git command given as its arguments. */
export interface GitRun extends GitRunOptions {
  args: string[];
}

/**
 * Runs git through simple-git as the sandbox user, with the sandbox environment, never a prompt, English messages,
 * and failures turned into CoveErrors. `close()` kills every command still running.
 */
export function createGitRunner(ctx: SandboxContext) {
  const stopping = new AbortController();

  /** The kept credentials a command uses: none when the request brought its own. */
  const hostsOf = (run: GitRunOptions) => (run.network?.credentials ? [] : (run.network?.hosts ?? []));

  function environment(run: GitRunOptions): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(ctx.env)) if (!DROPPED_ENV.test(k)) env[k] = v;
    // Never wait for a person: no terminal prompt, and ssh fails instead of asking for a passphrase or host key.
    env.GIT_TERMINAL_PROMPT = '0';
    if (!env.GIT_SSH_COMMAND && !env.GIT_SSH) env.GIT_SSH_COMMAND = 'ssh -o BatchMode=yes -o ConnectTimeout=30';
    env.GIT_MERGE_AUTOEDIT = 'no';
    // Errors are classified by git's words; a translated git would say them otherwise.
    env.LC_ALL = 'C';
    delete env.LANGUAGE;
    const hosts = hostsOf(run);
    if (run.network?.credentials) Object.assign(env, credentialEnv(run.network.credentials));
    else if (hosts.length) Object.assign(env, hostCredentialEnv(hosts));
    return Object.assign(env, run.env);
  }

  /**
   * Runs `task` with a simple-git instance set up for one command: its methods (init, reset, addRemote…) build the
   * arguments, and a failure becomes a CoveError.
   */
  async function run<T>(opts: GitRunOptions, task: (git: SimpleGit) => Promise<T>): Promise<T> {
    const { simpleGit } = await loadSimpleGit();
    const env = environment(opts);
    const hosts = hostsOf(opts);
    const config: string[] = [...(opts.config ?? [])];
    if (opts.network) config.push(...NETWORK_CONFIG);
    if (opts.network?.insecureSkipTls) config.push('http.sslVerify=false');
    if (opts.network?.credentials) config.push(...credentialConfig());
    else if (hosts.length) config.push(...hostCredentialConfig(hosts));
    const spawnAs: { uid?: number; gid?: number } = {};
    if (ctx.spawnAs.uid !== undefined) spawnAs.uid = ctx.spawnAs.uid;
    if (ctx.spawnAs.gid !== undefined) spawnAs.gid = ctx.spawnAs.gid;
    const git = simpleGit({
      baseDir: opts.cwd,
      config,
      spawnOptions: spawnAs,
      abort: stopping.signal,
      // Every variable here is one the agent chose (the sandbox's own environment and the settings above).
      allowEnvironment: Object.keys(env),
      unsafe: {
        ...opts.unsafe,
        allowUnsafeSshCommand: true,
        allowUnsafeCredentialHelper: Boolean(opts.network?.credentials || hosts.length || opts.unsafe?.allowUnsafeCredentialHelper),
      },
      // Git prints some reasons (merge conflicts) on stdout: keep both streams of a failed command.
      errors: (error, result) =>
        result.exitCode !== 0 && (result.stdErr.length || result.stdOut.length)
          ? Buffer.concat([...result.stdErr, ...result.stdOut])
          : error,
    }).env(env);
    try {
      return await task(git);
    } catch (err) {
      if (stopping.signal.aborted) throw new CoveError('INTERNAL_ERROR', 'The agent is stopping; the git command was killed');
      const message = (err as Error).message ?? String(err);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || /spawn git ENOENT/.test(message)) {
        // The image lacks git (busybox, Alpine, slim images): a request this sandbox cannot serve, not a fault of Cove's.
        throw new CoveError('INVALID_REQUEST', 'git is not installed in this sandbox: no git command on its PATH; install git in the image', `${message} (PATH=${env.PATH ?? ''})`);
      }
      throw gitFailure(scrub(message, opts.network?.credentials, ...hosts), opts.context);
    }
  }

  /** Runs one git command given as its arguments; answers its output. */
  const raw = (r: GitRun): Promise<string> => run(r, (git) => git.raw(r.args));

  return {
    run,
    raw,
    close(): void {
      stopping.abort();
    },
  };
}
