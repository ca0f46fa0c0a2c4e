import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import type { UpdateEnvRequest } from '../../../wire/env';
import type { EgressPolicy, EgressPorts } from './egress-policy';
import type { OciRuntime } from './runsc-config';

/** Label every container Cove creates carries (`=1`); the reconciler and `listManaged()` find them by it. */
export const LABEL_MANAGED = 'dev.cove.managed';
/** Label naming the sandbox a container belongs to. */
export const LABEL_SANDBOX = 'dev.cove.sandbox';
/** Label naming the warm-pool class of a container that no sandbox has claimed yet. */
export const LABEL_POOL = 'dev.cove.pool';
/** Image label: the account user code runs as (when the caller names none). */
export const LABEL_USER = 'dev.cove.user';
/** Image label: `baked` when the image's ENTRYPOINT is the agent itself (Cove's own images). */
export const LABEL_AGENT = 'dev.cove.agent';
/** Label naming the OCI runtime a container runs under (`runc` or `runsc`); set by the runtime on every container. */
export const LABEL_RUNTIME = 'dev.cove.runtime';
/** Image label: the API key (id) whose sandbox's file system an image Cove committed holds; only that key may use it. */
export const LABEL_SNAPSHOT_OWNER = 'dev.cove.snapshot.owner';
/** Image label: the instance (see LABEL_INSTANCE) of the server that committed the image; it removes its leftovers. */
export const LABEL_COMMITTED_BY = 'dev.cove.committed-by';
/** Image label: `1` on the image of a fork (its file system at the fork), which goes when the fork does. */
export const LABEL_FORK = 'dev.cove.fork';
/** Label prefix reserved for Cove: on a container these come from Cove only, never from the image. */
export const COVE_LABEL_PREFIX = 'dev.cove.';

/** Container states as the Docker engine reports them. */
export type ContainerState = 'running' | 'exited' | 'created' | 'paused' | 'restarting' | 'dead' | 'removing';

/** What a sandbox container is made of. */
export interface SandboxSpec {
  /** Container name (unique on the engine). */
  name: string;
  /** A local image; the runtime never pulls. */
  image: string;
  /** Added to `dev.cove.managed=1`, e.g. `dev.cove.sandbox=<id>` or `dev.cove.pool=<class>`. */
  labels?: Record<string, string>;
  /** The user's environment (the agent's token never goes there). */
  env?: Record<string, string>;
  /** The agent's bearer token (at least 16 characters). */
  agentToken: string;
  /** Account user code runs as; default: image label dev.cove.user, else the image's USER, else a created `cove`. */
  user?: string;
  /** vCPUs (default 1). */
  cpu?: number;
  /** Memory limit in GiB, swap excluded (default 1). */
  memoryGiB?: number;
  /** Maximum number of processes and threads (default 1024). */
  pids?: number;
  /** What the sandbox may reach (default: open, within the host's guard). In force before user code runs. */
  egress?: EgressPolicy;
  /**
   * GiB the sandbox may write. The engine enforces it when the runtime was made with `storageOpt` (see disk.ts);
   * otherwise the disk watchdog does, from the sandbox's record.
   */
  diskGiB?: number;
  /** Files to put in the new container's writable layer before it first runs (an `exportLayer` stream). */
  layer?: () => Readable;
  /** Named Docker volumes mounted read-write at absolute paths (the engine copies nothing of the image into them). */
  volumes?: VolumeMount[];
  /** What the agent runs as the `entrypoint` session instead of the image's ENTRYPOINT and CMD (a snapshot's own). */
  entrypoint?: string[];
}

/** A named Docker volume mounted in a sandbox. */
export interface VolumeMount {
  /** The Docker volume's name. */
  volume: string;
  /** Absolute path in the container. */
  target: string;
}

/** A container as the runtime sees it. */
export interface ContainerInfo {
  id: string;
  name: string;
  state: ContainerState;
  /** Address on the Cove network; empty while the container is not running. */
  ip: string;
  labels: Record<string, string>;
  /** Exit code of the last run (meaningful when `state` is `exited` or `dead`). */
  exitCode: number;
  /**
   * The kernel's OOM killer acted in the container during its last run (`inspect` only). The engine sets it for any
   * process it killed, not only for PID 1, so read it with the exit code.
   */
  oomKilled?: boolean;
}

/** The Cove bridge network, as created or found by `ensureNetwork()`. */
export interface NetworkInfo {
  id: string;
  name: string;
  /** Host interface of the bridge; the firewall rules match on it. */
  bridge: string;
  subnet: string;
  /** The host's address on the bridge (containers cannot open connections to it). */
  gateway: string;
}

/** Options of `createDockerRuntime()`. */
export interface DockerRuntimeOptions {
  /** The agent bundle folder (bind-mounted read-only at /opt/cove). */
  bundleDir: string;
  /** Docker network of the sandboxes (default `cove`). */
  network?: string;
  /** Host interface name of the bridge (default `<network>0` when that fits in 15 characters). */
  bridgeName?: string;
  /** Port the agent listens on inside every sandbox (default 2280). */
  agentPort?: number;
  /** Engine client (default: the local socket). */
  docker?: Dockerode;
  /** Host folder for agent tokens while their containers start (default: a folder in the OS temp dir). */
  secretsDir?: string;
  /** Let sandboxes reach private ranges (RFC 1918, CGNAT); link-local and the host stay out of reach. */
  allowPrivateEgress?: boolean;
  /** A CA certificate (PEM) every sandbox trusts: Cove's egress CA, installed by the agent (`--trust-ca`). */
  trustedCa?: string;
  /**
   * The engine limits container sizes (disk mode `storage-opt`): containers of specs with `diskGiB` get
   * `HostConfig.StorageOpt.size`; `countsImage` when that size must include the image's (btrfs).
   */
  storageOpt?: { countsImage: boolean };
  /** OCI runtime of every container (default `runc`); `runsc` runs sandboxes under gVisor (see ensureOciRuntime). */
  ociRuntime?: OciRuntime;
}

/**
 * The proxy's container runtime. Knows nothing of HTTP beyond polling the agent's `/version`. Every method is safe to
 * call concurrently.
 */
export interface DockerRuntime {
  readonly network: string;
  readonly agentPort: number;
  /** The OCI runtime every container of this runtime runs under. */
  readonly ociRuntime: OciRuntime;
  /**
   * Makes sure the engine can run it (once per process): for runsc, registers Debian's runsc with the engine when it
   * is not registered yet. Throws a RuntimeError (RUNTIME_SETUP) saying what to run when it cannot.
   */
  ensureOciRuntime(): Promise<'builtin' | 'present' | 'registered'>;
  /** Creates the Cove network (once) and installs the host-isolation firewall rules (idempotent). */
  ensureNetwork(): Promise<NetworkInfo>;
  /** Creates and starts a sandbox container; resolves once it runs (not once its agent answers: see waitForAgent). */
  createSandbox(spec: SandboxSpec): Promise<{ containerId: string; ip: string; /** the account user code runs as */ user: string }>;
  /**
   * Polls the agent's `GET /version` until it answers 200 (with `hold`: until it answers at all, having read its token). Throws AgentNotReadyError on timeout, or as soon as the
   * container is seen exited, with the container's last log lines.
   */
  /** Changes the environment the agent at `ip` starts processes with (its `POST /env`). */
  updateAgentEnv(ip: string, token: string, change: UpdateEnvRequest): Promise<void>;
  waitForAgent(ip: string, token: string, timeoutMs: number, containerId?: string, opts?: { /** stop once the agent listens, before any request with the token: the image's entrypoint stays held */ hold?: boolean }): Promise<void>;
  /** Starts a stopped container (its agent gets `agentToken`) with its egress policy in force; its address may change. */
  start(containerId: string, agentToken: string, egress?: EgressPolicy): Promise<{ ip: string }>;
  /**
   * Forgets that a container (which ended without the runtime stopping it) had `ip`: the address's egress rules are
   * emptied, unless another container holds the address by now.
   */
  releaseAddress(containerId: string, ip: string): Promise<void>;
  /** Changes the egress policy of a running container at `ip`; resolves once the kernel enforces it. */
  setEgress(containerId: string, ip: string, egress: EgressPolicy): Promise<void>;
  /** Says where Cove's egress services listen on the gateway: policies that redirect send traffic there. */
  setEgressPorts(ports: EgressPorts): void;
  /** Changes a container's CPU and memory limits in place (running or not). */
  resize(containerId: string, limits: { cpu: number; memoryGiB: number }): Promise<void>;
  /** Freezes every process of a running container (cgroup freezer); memory is kept. */
  pause(containerId: string): Promise<void>;
  /** Thaws a paused container. */
  unpause(containerId: string): Promise<void>;
  /** SIGTERM (the agent forwards it to user processes), SIGKILL after `timeoutS` (default 10). */
  stop(containerId: string, timeoutS?: number): Promise<void>;
  /**
   * The container's own files (its writable layer: what it added, changed and deleted in its image) as a tar stream,
   * while it does not run; `createSandbox` with `layer` puts them back. RuntimeError UNSUPPORTED where the engine's
   * storage cannot be read from this host (another storage driver, a remote engine).
   */
  exportLayer(containerId: string): Promise<Readable>;
  /** Force-removes a container and its anonymous volumes; no error when it is already gone. */
  remove(containerId: string): Promise<void>;
  /** The container's state, address and labels, or undefined when it does not exist. */
  inspect(containerId: string): Promise<ContainerInfo | undefined>;
  /** Every container labelled `dev.cove.managed=1`, running or not. */
  listManaged(): Promise<ContainerInfo[]>;
  /** Memory in use by the container (cgroup usage minus inactive page cache, as `docker stats` shows it), bytes. */
  memoryUsage(containerId: string): Promise<number>;
  /** Whether the image is present locally. */
  imageExists(name: string): Promise<boolean>;
  /** A local image's id, labels, size (bytes) and entrypoint, or undefined when there is no image of that name. */
  imageInfo(name: string): Promise<{ id: string; labels: Record<string, string>; size?: number; entrypoint?: string[] | null } | undefined>;
  /**
   * Pulls an image from its registry through the engine (with `auth` when given, sent as `X-Registry-Auth`, else
   * anonymously), handing each progress line to `onLine`; rejects with the engine's reason when the pull fails.
   */
  pullImage(ref: string, onLine: (line: string) => void, auth?: RegistryAuth): Promise<void>;
  /**
   * Builds `dockerfile` into the image `tag` with the engine's layer cache; the build context is the files of the
   * `contexts` tar archives (opened one after another as the engine reads them; none: an empty context). Its steps run
   * on the sandboxes' network under their firewall, within fixed CPU and memory limits; each line of the build's
   * output goes to `onLine`. Rejects with the failing step's message, or why a context archive is unusable.
   */
  buildImage(
    dockerfile: string,
    tag: string,
    labels: Record<string, string>,
    onLine: (line: string) => void,
    contexts?: (() => Promise<AsyncIterable<Buffer>>)[],
  ): Promise<void>;
  /**
   * Makes a container's file system (its image's and what it wrote, never its mounts) a new local image tagged
   * `repo:tag`, pausing a running container while its writes are read. The image is configured as the container's
   * image was (see commit-config.ts), with `labels` added.
   */
  commit(containerId: string, target: { repo: string; tag: string; labels: Record<string, string> }): Promise<{ imageId: string }>;
  /** Local images carrying every given label, with their tags; `dangling`: only those without a tag. */
  imagesLabelled(labels: Record<string, string>, opts?: { dangling?: boolean }): Promise<{ id: string; tags: string[] }[]>;
  /**
   * Removes an image name (a tag or an id), and the image with its last name. False when the engine kept the image: a
   * container uses it (the name stays), or an image was committed on top of it (it stays, nameless, until that one is
   * removed). True too when there was no such name.
   */
  removeImage(name: string): Promise<boolean>;
  /** Tags the image a container was made from as `ref`: the image stays, whatever becomes of its other names. */
  holdImage(containerId: string, ref: string): Promise<void>;
  /** Removes the name `ref` (from `holdImage`); the image itself goes only if nothing else names or uses it. */
  untagImage(ref: string): Promise<void>;
  /**
   * Creates a named volume (local driver) carrying `dev.cove.managed=1` and `labels`, whose root every user may write
   * (mode 1777, as /tmp: the sticky bit keeps users from deleting each other's files), set by a short-lived container
   * of `image` (it needs `chmod`), run as root without network. Resolves once the volume is ready to mount.
   */
  createVolume(name: string, labels: Record<string, string>, image: string): Promise<void>;
  /** Removes a named volume; no error when it is gone. RuntimeError CONFLICT while a container uses it. */
  removeVolume(name: string): Promise<void>;
  /** Names of the volumes carrying every given label. */
  volumesLabelled(labels: Record<string, string>): Promise<string[]>;
  /**
   * The engine's stream of container events (newline-delimited JSON: start, die, oom, kill, destroy) for containers
   * carrying every given label. It ends when the engine goes away; see events.ts for following it.
   */
  containerEvents(labels: Record<string, string>): Promise<NodeJS.ReadableStream>;
}

/** Why a runtime operation failed; the HTTP layer maps these to statuses. */
type RuntimeErrorCode =
  | 'DOCKER_UNAVAILABLE'
  | 'DOCKER_ERROR'
  | 'IMAGE_NOT_FOUND'
  | 'CONTAINER_NOT_FOUND'
  | 'CONFLICT'
  | 'INVALID_SPEC'
  | 'USER_NOT_FOUND'
  | 'NETWORK_SETUP'
  | 'RUNTIME_SETUP'
  | 'UNSUPPORTED'
  | 'AGENT_NOT_READY';

/** Every error the runtime throws. `detail` holds the technical text (engine message, log lines). */
export class RuntimeError extends Error {
  override name = 'RuntimeError';
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The image is not on this host (the runtime never pulls). */
export class ImageNotFoundError extends RuntimeError {
  override name = 'ImageNotFoundError';
  constructor(readonly image: string) {
    super(
      'IMAGE_NOT_FOUND',
      `Image ${image} is not present on this host. Build Cove's images with \`cove images build\`, or build/load ` +
        `this image with \`docker build\`/\`docker load\` (this host does not pull from registries).`,
    );
  }
}

/** The container does not exist. */
export class ContainerNotFoundError extends RuntimeError {
  override name = 'ContainerNotFoundError';
  constructor(readonly containerId: string) {
    super('CONTAINER_NOT_FOUND', `Container ${containerId} does not exist`);
  }
}

/** The agent did not answer in time, or its container stopped. `detail` carries the container's last log lines. */
export class AgentNotReadyError extends RuntimeError {
  override name = 'AgentNotReadyError';
}

/** Credentials of a registry for the engine (its `X-Registry-Auth`): never logged, never in an error. */
export interface RegistryAuth {
  username: string;
  password: string;
  /** The registry's `host[:port]` (Docker Hub's `https://index.docker.io/v1/`). */
  serveraddress: string;
}
