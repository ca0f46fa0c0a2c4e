import path from 'node:path';
import type Dockerode from 'dockerode';
import { AGENT_COMMAND, BUNDLE_MOUNT } from '../../../images/src/bundle';
import type { OciRuntime } from './runsc-config';
import {
  COVE_LABEL_PREFIX,
  LABEL_AGENT,
  LABEL_MANAGED,
  LABEL_RUNTIME,
  LABEL_USER,
  RuntimeError,
  type SandboxSpec,
} from './types';

/**
 * A volume mount's options: copy nothing of the image into the volume. (The engine reads only the fields given; the
 * typings ask for all of them.)
 */
export const NO_COPY = { NoCopy: true } as NonNullable<Dockerode.MountSettings['VolumeOptions']>;

/** The only capabilities a sandbox keeps (Docker's default set minus AUDIT_WRITE, MKNOD, NET_RAW, SETFCAP, SETPCAP, SYS_CHROOT). */
export const SANDBOX_CAPABILITIES = [
  'CHOWN', // the agent hands uploaded files to the sandbox user; package managers chown what they unpack
  'DAC_OVERRIDE', // the agent (root) reads and writes files whatever their mode, as the files API promises
  'FOWNER', // chmod/utime on files the agent does not own (permissions API, tar/cp -p as root)
  'FSETID', // keep setgid bits when root writes group-shared folders
  'KILL', // signal user processes that run under another uid (stop, PTY and session kill)
  'SETGID', // run user code as the sandbox user: setgid/setgroups
  'SETUID', // … and setuid
  'NET_BIND_SERVICE', // user dev servers on ports below 1024 (preview URLs of :80 servers)
] as const;

/**
 * Host tasks one process inside gVisor costs under runsc's ptrace platform (measured: about 8 threads of the Sentry
 * and its stubs per sleeping process), with room to spare: the host's pids limit of a runsc sandbox is its process
 * limit times this, a backstop behind gVisor's own per-user process limit.
 */
export const RUNSC_HOST_TASKS_PER_PROCESS = 16;

/**
 * Where the agent finds its token: a file in a per-container host folder mounted read-only. The runtime writes it
 * before each start and deletes it as soon as the agent listens (it has read it by then), before the first request
 * that lets anything of the user's run. Never in the environment: PID 1 (Docker's init) would keep it in its own,
 * which root user code can read.
 */
export const AGENT_SECRETS_MOUNT = '/run/cove';
export const AGENT_TOKEN_FILE = 'agent-token';
/** The CA every sandbox trusts (Cove's egress CA), beside the token; the agent installs it at start. */
export const TRUSTED_CA_FILE = 'egress-ca.pem';
/** The variable a user might pass that would name the agent's token; never set on a container. */
const TOKEN_ENV = 'COVE_AGENT_TOKEN';

/**
 * Who runs user code, as decided from the spec and the image. `uid` is set when only a number is known; `create`
 * when the account is Cove's default one, which the agent adds to images that lack it.
 */
export type SandboxUser = { name: string; create?: boolean } | { uid: number };

/** The account user code runs as in an image that names none: never root unless asked. */
const DEFAULT_SANDBOX_USER = 'cove';

/**
 * The account user code runs as: the spec's `user`; else the image label `dev.cove.user`; else the image's USER
 * (its name part; a number is resolved later against the image's /etc/passwd; 0 or root means root); else Cove's
 * non-root default account, created in the container when the image lacks it.
 */
export function chooseUser(spec: Pick<SandboxSpec, 'user'>, image: Dockerode.ImageInspectInfo): SandboxUser {
  const explicit = spec.user?.trim() || image.Config?.Labels?.[LABEL_USER]?.trim();
  if (explicit) return { name: explicit };
  const configured = (image.Config?.User ?? '').split(':')[0].trim();
  if (!configured) return { name: DEFAULT_SANDBOX_USER, create: true };
  if (/^\d+$/.test(configured)) return Number(configured) === 0 ? { name: 'root' } : { uid: Number(configured) };
  return { name: configured };
}

/** The name of `uid` in an /etc/passwd text, if any. */
export function userNameOfUid(passwd: string, uid: number): string | undefined {
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 3 && Number(fields[2]) === uid && fields[2] !== '') return fields[0];
  }
  return undefined;
}

/**
 * The image's own ENTRYPOINT + CMD, which the agent runs as the `entrypoint` session; none for images whose
 * ENTRYPOINT is the agent itself (label dev.cove.agent=baked).
 */
export function imageEntrypoint(image: Dockerode.ImageInspectInfo): string[] {
  if (image.Config?.Labels?.[LABEL_AGENT] === 'baked') return [];
  return [...(image.Config?.Entrypoint ?? []), ...(image.Config?.Cmd ?? [])];
}

/** The container's command (under Docker's init): the mounted agent, then the image's entrypoint after `--`. */
export function agentCommand(opts: { user: string; createUser?: boolean; workdir?: string; port: number; entrypoint: string[]; trustCa?: boolean }): string[] {
  return [
    ...AGENT_COMMAND,
    '--token-file',
    `${AGENT_SECRETS_MOUNT}/${AGENT_TOKEN_FILE}`,
    '--port',
    String(opts.port),
    '--user',
    opts.user,
    ...(opts.createUser ? ['--create-user'] : []),
    ...(opts.workdir ? ['--workdir', opts.workdir] : []),
    ...(opts.trustCa ? ['--trust-ca', `${AGENT_SECRETS_MOUNT}/${TRUSTED_CA_FILE}`] : []),
    // The image's entrypoint waits for the proxy's first request, which comes once the egress policy is in force.
    ...(opts.entrypoint.length ? ['--hold-entrypoint', '--', ...opts.entrypoint] : []),
  ];
}

/**
 * The working directory of user code: the image's WORKDIR when it sets one (its CMD usually expects to start there),
 * else undefined and the agent uses the user's home from the image's /etc/passwd.
 */
export function chooseWorkdir(image: Dockerode.ImageInspectInfo): string | undefined {
  const dir = image.Config?.WorkingDir?.trim();
  return dir && dir !== '/' ? dir : undefined;
}

/** Validates the parts of a spec that the engine would otherwise reject with a less helpful message. */
export function validateSpec(spec: SandboxSpec): void {
  const bad = (why: string) => new RuntimeError('INVALID_SPEC', `Invalid sandbox spec ${spec.name}: ${why}`);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(spec.name)) throw bad('the name may hold only letters, digits, _ . -');
  if (!spec.image) throw bad('no image');
  if (!spec.agentToken || spec.agentToken.length < 16) throw bad('the agent token must be at least 16 characters');
  for (const [key, value] of [['cpu', spec.cpu], ['memoryGiB', spec.memoryGiB], ['pids', spec.pids], ['diskGiB', spec.diskGiB]] as const) {
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) throw bad(`${key} must be a positive number`);
  }
  for (const key of Object.keys(spec.env ?? {})) {
    if (!key || key.includes('=') || key.includes('\0')) throw bad(`invalid environment variable name ${JSON.stringify(key)}`);
  }
  for (const v of spec.volumes ?? []) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(v.volume)) throw bad(`invalid volume name ${JSON.stringify(v.volume)}`);
    if (!v.target.startsWith('/') || v.target.includes(':')) throw bad(`invalid mount path ${JSON.stringify(v.target)}`);
  }
  if (spec.user !== undefined && !/^[a-z_][a-z0-9_.-]*\$?$/i.test(spec.user)) throw bad(`invalid user name ${JSON.stringify(spec.user)}`);
}

/** Everything `createContainer` needs for a sandbox; pure, so it can be read (and tested) in one place. */
export function containerCreateOptions(opts: {
  spec: SandboxSpec;
  image: Dockerode.ImageInspectInfo;
  user: string;
  /** The agent adds `user`'s account when the image lacks it. */
  createUser?: boolean;
  bundleDir: string;
  /** The host folder that holds this container's agent token while it starts (mounted read-only). */
  secretsDir: string;
  network: string;
  agentPort: number;
  /** The engine limits sizes (see DockerRuntimeOptions.storageOpt). */
  storageOpt?: { countsImage: boolean };
  /** Named on every container, runc included: an engine whose default runtime is another one must not pick for us. */
  runtime: OciRuntime;
  /** The secrets folder holds a CA for the agent to install (TRUSTED_CA_FILE). */
  trustCa?: boolean;
}): Dockerode.ContainerCreateOptions {
  const { spec, image } = opts;
  const memory = Math.round((spec.memoryGiB ?? 1) * 1024 ** 3);
  const pids = spec.pids ?? 1024;
  const labels: Record<string, string> = {};
  // Containers inherit their image's labels. Cove's own labels on a container must come from Cove alone (an image
  // labelled dev.cove.sandbox=<someone else's id> must not confuse the reconciler): blank the image's ones.
  for (const key of Object.keys(image.Config?.Labels ?? {})) if (key.startsWith(COVE_LABEL_PREFIX)) labels[key] = '';
  Object.assign(labels, spec.labels, { [LABEL_MANAGED]: '1', [LABEL_RUNTIME]: opts.runtime });
  const env = Object.entries(spec.env ?? {})
    .filter(([key]) => key !== TOKEN_ENV)
    .map(([key, value]) => `${key}=${value}`);

  return {
    name: spec.name,
    Image: spec.image,
    Labels: labels,
    Env: env,
    // The agent must be root to run user code as any account; it drops to `user` for everything it spawns.
    User: '0:0',
    Entrypoint: agentCommand({
      user: opts.user,
      createUser: opts.createUser,
      workdir: chooseWorkdir(image),
      port: opts.agentPort,
      entrypoint: spec.entrypoint ?? imageEntrypoint(image),
      trustCa: opts.trustCa,
    }),
    // Setting Entrypoint already stops Docker from appending the image's CMD; say so explicitly anyway.
    Cmd: [],
    // The agent stops on SIGTERM (the init passes it on); an image's STOPSIGNAL (e.g. SIGQUIT for nginx) is meant for
    // its own process.
    StopSignal: 'SIGTERM',
    HostConfig: {
      Runtime: opts.runtime,
      Binds: [`${path.resolve(opts.bundleDir)}:${BUNDLE_MOUNT}:ro`, `${path.resolve(opts.secretsDir)}:${AGENT_SECRETS_MOUNT}:ro`],
      // Named volumes, read-write; NoCopy: an empty volume stays empty (the engine would otherwise copy what the image
      // has at the path into it, and its owner and mode over the root Cove made writable).
      ...(spec.volumes?.length
        ? { Mounts: spec.volumes.map((v) => ({ Type: 'volume' as const, Source: v.volume, Target: v.target, ReadOnly: false, VolumeOptions: NO_COPY })) }
        : {}),
      NetworkMode: opts.network,
      Privileged: false,
      CapDrop: ['ALL'],
      CapAdd: [...SANDBOX_CAPABILITIES],
      SecurityOpt: ['no-new-privileges'],
      NanoCpus: Math.round((spec.cpu ?? 1) * 1e9),
      Memory: memory,
      MemorySwap: memory, // equal to Memory: no swap, so the limit is the limit
      // Under runc the pids cgroup counts the sandbox's processes and threads, and fork fails at the limit. Under runsc
      // it counts the Sentry's host threads (several per sandbox process), and reaching it kills the whole sandbox:
      // there the limit is RLIMIT_NPROC inside gVisor (fork fails with EAGAIN, per user, so the agent's own root
      // processes are counted apart from user code), with the cgroup as a backstop. Under runc RLIMIT_NPROC would count
      // every process of that uid on the host, so it is not set.
      ...(opts.runtime === 'runsc'
        ? { PidsLimit: pids * RUNSC_HOST_TASKS_PER_PROCESS, Ulimits: [{ Name: 'nproc', Soft: pids, Hard: pids }] }
        : { PidsLimit: pids }),
      RestartPolicy: { Name: 'no' }, // the proxy decides what runs; a crashed sandbox is reported, not restarted
      // Docker's init (tini) is PID 1: it reaps every orphan user code leaves behind and passes signals to the agent.
      Init: true,
      // Sandboxes are long-lived and chatty; keep their engine logs bounded.
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
      ...(opts.storageOpt && spec.diskGiB ? { StorageOpt: { size: storageSize(spec.diskGiB, opts.storageOpt.countsImage ? (image.Size ?? 0) : 0) } } : {}),
    },
  };
}

/**
 * The engine's size option for a sandbox that may write `diskGiB`: "3G" (overlay2 on xfs limits the writable layer
 * alone), or, where the engine counts the image's files too (btrfs), that many bytes plus the image's.
 */
export function storageSize(diskGiB: number, imageBytes: number): string {
  return imageBytes > 0 ? String(Math.round(diskGiB * 1024 ** 3 + imageBytes)) : `${diskGiB}G`;
}
