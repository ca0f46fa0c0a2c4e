import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { BUNDLE_MOUNT } from '../../../images/src/bundle';
import { AGENT_PORT } from '../../../wire/agent';
import { demuxLogs, pollAgent } from './agent-ready';
import { createEgressFirewall, hostResolvers } from './egress';
import { OPEN, type EgressPolicy } from './egress-policy';
import { commitConfig } from './commit-config';
import { CONTAINER_EVENTS } from './events';
import { engineMessage, engineStatus, toRuntimeError } from './docker-errors';
import { defaultBridgeName, ensureBridgeNetwork, ensureHostIsolation } from './network';
import { ensureRunsc } from './runsc';
import { tarLayer, untarLayer, writableLayer } from './layer';
import { buildContext, CONTEXT_DOCKERFILE } from './build-context';
import { Readable } from 'node:stream';
import { AGENT_SECRETS_MOUNT, AGENT_TOKEN_FILE, TRUSTED_CA_FILE, chooseUser, containerCreateOptions, NO_COPY, userNameOfUid, validateSpec, type SandboxUser } from './sandbox-config';
import {
  AgentNotReadyError,
  COVE_LABEL_PREFIX,
  ContainerNotFoundError,
  ImageNotFoundError,
  LABEL_MANAGED,
  RuntimeError,
  type ContainerInfo,
  type ContainerState,
  type DockerRuntime,
  type DockerRuntimeOptions,
  type NetworkInfo,
  type SandboxSpec,
} from './types';

/** How many times pause tries a freeze that runc reports as failed before the error reaches the caller. */
const PAUSE_ATTEMPTS = 8;
/**
 * What one image build may use (the engine's build API takes no more than memory and CPU): 2 vCPU and 4 GiB without
 * swap, so an untrusted Dockerfile cannot take the host.
 */
const BUILD_LIMITS = { cpuperiod: 100_000, cpuquota: 200_000, memory: 4 * 1024 ** 3, memswap: 4 * 1024 ** 3 };

/**
 * Creates the Docker runtime: sandboxes are containers on Cove's bridge network whose PID 1 is the agent from the
 * read-only bundle mount. See README.md in this folder for the security settings and the user rule.
 */
export function createDockerRuntime(opts: DockerRuntimeOptions): DockerRuntime {
  const docker = opts.docker ?? new Dockerode();
  const network = opts.network ?? 'cove';
  const bridge = opts.bridgeName ?? defaultBridgeName(network);
  const agentPort = opts.agentPort ?? AGENT_PORT;
  const bundleDir = path.resolve(opts.bundleDir);
  const ociRuntime = opts.ociRuntime ?? 'runc';
  const secretsRoot = path.resolve(opts.secretsDir ?? path.join(os.tmpdir(), 'cove-agent-secrets'));

  /** The host folder of one agent's token, named by a hash of the token (so start() needs no lookup). */
  const secretsDirOf = (token: string): string => path.join(secretsRoot, createHash('sha256').update(token).digest('hex').slice(0, 24));
  /**
   * Puts the token where the agent reads it at start; only root on the host can read it. The file work here is
   * asynchronous: next to the engine creating containers, one synchronous create or unlink took milliseconds of the
   * server's event loop.
   */
  async function writeToken(token: string): Promise<void> {
    const dir = secretsDirOf(token);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(path.join(dir, AGENT_TOKEN_FILE), token, { mode: 0o600 });
    if (opts.trustedCa) await writeFile(path.join(dir, TRUSTED_CA_FILE), opts.trustedCa, { mode: 0o600 });
  }
  /** Deletes the token file once the agent has read it: from then on nothing in the container can. */
  const eraseToken = (token: string): Promise<void> => rm(path.join(secretsDirOf(token), AGENT_TOKEN_FILE), { force: true });

  const egress = createEgressFirewall({ bridge, allowPrivate: opts.allowPrivateEgress ?? false, resolvers: hostResolvers() });

  let networkReady: Promise<NetworkInfo> | undefined;
  let ociRuntimeReady: Promise<'builtin' | 'present' | 'registered'> | undefined;
  /** Last known container of each address, so waitForAgent can show the right logs. */
  const containerOfIp = new Map<string, string>();
  /** /etc/passwd of images (by image id), for images whose USER is a bare uid. */
  const passwdOfImage = new Map<string, Promise<string>>();

  function ensureNetwork(): Promise<NetworkInfo> {
    // One setup per process, shared by concurrent creates; a failure is not cached so the next call retries.
    networkReady ??= (async () => {
      const info = await ensureBridgeNetwork(docker, network, bridge);
      await ensureHostIsolation(info.bridge);
      await egress.ensure();
      return info;
    })().catch((err) => {
      networkReady = undefined;
      throw err;
    });
    return networkReady;
  }

  function ensureOciRuntime(): Promise<'builtin' | 'present' | 'registered'> {
    // runc is the engine's own. Once per process, like the network; a failure is not cached.
    ociRuntimeReady ??= (ociRuntime === 'runc' ? Promise.resolve('builtin' as const) : ensureRunsc(docker)).catch((err) => {
      ociRuntimeReady = undefined;
      throw err;
    });
    return ociRuntimeReady;
  }

  async function inspectImage(name: string): Promise<Dockerode.ImageInspectInfo> {
    try {
      return await docker.getImage(name).inspect();
    } catch (err) {
      if (engineStatus(err) === 404) throw new ImageNotFoundError(name);
      throw toRuntimeError(err, `inspect the image ${name}`);
    }
  }

  /** Reads /etc/passwd from an image through a created (never started, network-less) container. */
  function imagePasswd(image: Dockerode.ImageInspectInfo): Promise<string> {
    let cached = passwdOfImage.get(image.Id);
    if (!cached) {
      cached = (async () => {
        const container = await docker.createContainer({ Image: image.Id, Entrypoint: ['/nonexistent'], Cmd: [], NetworkDisabled: true });
        try {
          const stream = await container.getArchive({ path: '/etc/passwd' });
          const chunks: Buffer[] = [];
          for await (const chunk of stream) chunks.push(chunk as Buffer);
          return firstFileOfTar(Buffer.concat(chunks));
        } catch (err) {
          if (engineStatus(err) === 404) return '';
          throw err;
        } finally {
          await container.remove({ force: true }).catch(() => {});
        }
      })();
      cached.catch(() => passwdOfImage.delete(image.Id));
      passwdOfImage.set(image.Id, cached);
    }
    return cached;
  }

  async function userName(user: SandboxUser, image: Dockerode.ImageInspectInfo, spec: SandboxSpec): Promise<string> {
    if ('name' in user) return user.name;
    const name = userNameOfUid(await imagePasswd(image).catch((err) => { throw toRuntimeError(err, `read /etc/passwd of ${spec.image}`); }), user.uid);
    if (!name) {
      throw new RuntimeError(
        'USER_NOT_FOUND',
        `The image ${spec.image} runs as uid ${user.uid}, which has no /etc/passwd entry; name a user for the sandbox ` +
          'or label the image with dev.cove.user',
      );
    }
    return name;
  }

  function ipOf(settings: { Networks?: Record<string, { IPAddress?: string }> } | undefined): string {
    return settings?.Networks?.[network]?.IPAddress ?? '';
  }

  function toInfo(c: Dockerode.ContainerInspectInfo): ContainerInfo {
    return {
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      state: c.State.Status as ContainerState,
      ip: c.State.Running ? ipOf(c.NetworkSettings) : '',
      labels: ownLabels(c.Config.Labels),
      exitCode: c.State.ExitCode,
      oomKilled: c.State.OOMKilled,
    };
  }

  async function inspect(containerId: string): Promise<ContainerInfo | undefined> {
    try {
      return toInfo(await docker.getContainer(containerId).inspect());
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw toRuntimeError(err, `inspect the container ${containerId}`);
    }
  }

  async function logTail(containerId: string, lines = 30): Promise<string> {
    try {
      const buf = await docker.getContainer(containerId).logs({ stdout: true, stderr: true, tail: lines, follow: false });
      return demuxLogs(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf))).trim();
    } catch {
      return '';
    }
  }

  /** Where a container is: the address the runtime last saw it at. */
  const ipOfContainer = (containerId: string): string | undefined => {
    for (const [ip, id] of containerOfIp) if (id === containerId || id.startsWith(containerId)) return ip;
    return undefined;
  };

  /**
   * Whether a container other than `containerId` has `ip` on the bridge now. Other Cove servers on this host share the
   * bridge and the per-address chains: once a container is gone its address may be another server's sandbox's, whose
   * rules must not be emptied. Asked right before the rules would be written; the other server writes its sandbox's
   * after its container started, so only a start and its rules landing within that one write can still cross it.
   */
  async function heldByAnother(ip: string, containerId: string): Promise<boolean> {
    const info = await docker
      .getNetwork(network)
      .inspect()
      .catch(() => undefined);
    const containers = (info?.Containers ?? {}) as Record<string, { IPv4Address?: string }>;
    return Object.entries(containers).some(([id, c]) => c.IPv4Address?.split('/')[0] === ip && !id.startsWith(containerId) && !containerId.startsWith(id));
  }

  /** Empties the egress chain of the address a container had (stopped or removed: it is no sandbox's any more). */
  async function forgetAddress(containerId: string): Promise<void> {
    const ip = ipOfContainer(containerId);
    if (!ip) return;
    containerOfIp.delete(ip);
    await egress.apply(ip, undefined, () => heldByAnother(ip, containerId));
  }

  async function start(containerId: string, agentToken: string, policy: EgressPolicy = OPEN): Promise<{ ip: string }> {
    await writeToken(agentToken);
    const container = docker.getContainer(containerId);
    try {
      await container.start();
    } catch (err) {
      const status = engineStatus(err);
      if (status === 404) throw new ContainerNotFoundError(containerId);
      // 304: already running, which is what the caller wants.
      if (status !== 304) throw toRuntimeError(err, `start the container ${containerId}`);
    }
    const info = await inspect(containerId);
    if (!info) throw new ContainerNotFoundError(containerId);
    if (info.state !== 'running') {
      // The agent is PID 1: the container stopping at once means the agent refused to start (e.g. unknown user).
      throw agentExited(`The sandbox container ${info.name} exited with code ${info.exitCode} right after it started`, await logTail(containerId));
    }
    if (info.ip) {
      containerOfIp.set(info.ip, info.id);
      // In force before anything of the user's runs: the agent holds the image's entrypoint until the proxy's first
      // request (waitForAgent), which comes after this.
      await egress.apply(info.ip, policy);
    }
    return { ip: info.ip };
  }

  async function remove(containerId: string): Promise<void> {
    // Its token folder goes with it (found from the mount, so that removing needs nothing else).
    const mounts = await docker
      .getContainer(containerId)
      .inspect()
      .then((c) => c.Mounts ?? [])
      .catch(() => [] as Dockerode.ContainerInspectInfo['Mounts']);
    const secrets = mounts.find((m) => m.Destination === AGENT_SECRETS_MOUNT)?.Source;
    if (secrets && path.dirname(path.resolve(secrets)) === secretsRoot) await rm(secrets, { recursive: true, force: true });
    try {
      await docker.getContainer(containerId).remove({ force: true, v: true });
    } catch (err) {
      const status = engineStatus(err);
      // 404: already gone; 409 "removal already in progress": someone else is doing it.
      if (status !== 404 && !(status === 409 && /already in progress/i.test(engineMessage(err)))) {
        throw toRuntimeError(err, `remove the container ${containerId}`);
      }
    }
    await forgetAddress(containerId);
  }

  return {
    network,
    agentPort,
    ociRuntime,
    ensureOciRuntime,
    ensureNetwork,

    async createSandbox(spec) {
      validateSpec(spec);
      if (!existsSync(path.join(bundleDir, 'bin/node'))) {
        // Docker would create an empty folder for a missing bind source, and every sandbox would fail obscurely.
        throw new RuntimeError('INVALID_SPEC', `The agent bundle is missing at ${bundleDir} (to mount at ${BUNDLE_MOUNT}): run \`cove images build\``);
      }
      const [, , image] = await Promise.all([ensureNetwork(), ensureOciRuntime(), inspectImage(spec.image)]);
      const chosen = chooseUser(spec, image);
      const user = await userName(chosen, image, spec);
      const createUser = 'create' in chosen && chosen.create === true;
      await writeToken(spec.agentToken);
      const options = containerCreateOptions({
        spec,
        image,
        user,
        createUser,
        bundleDir,
        secretsDir: secretsDirOf(spec.agentToken),
        network,
        agentPort,
        storageOpt: opts.storageOpt,
        runtime: ociRuntime,
        trustCa: !!opts.trustedCa,
      });
      let container: Dockerode.Container;
      try {
        container = await docker.createContainer(options);
      } catch (err) {
        await rm(secretsDirOf(spec.agentToken), { recursive: true, force: true });
        const status = engineStatus(err);
        if (status === 404 && /image/i.test(engineMessage(err))) throw new ImageNotFoundError(spec.image);
        if (status === 409) throw new RuntimeError('CONFLICT', `A container named ${spec.name} already exists`, engineMessage(err), { cause: err });
        throw toRuntimeError(err, `create the container ${spec.name}`);
      }
      try {
        if (spec.layer) await untarLayer(writableLayer(await container.inspect()), spec.layer());
        const { ip } = await start(container.id, spec.agentToken, spec.egress);
        return { containerId: container.id, ip, user };
      } catch (err) {
        // A container that never ran is no use to anyone: do not leave it for the reconciler.
        await remove(container.id).catch(() => {});
        throw err;
      }
    },

    async updateAgentEnv(ip, token, change) {
      let res: Response;
      try {
        res = await fetch(`http://${ip}:${agentPort}/env`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(change),
          signal: AbortSignal.timeout(10_000),
        });
      } catch (err) {
        throw new RuntimeError('AGENT_NOT_READY', `The agent at ${ip}:${agentPort} could not be reached: ${(err as Error).message}`);
      }
      if (!res.ok) throw new RuntimeError('AGENT_NOT_READY', `The agent at ${ip}:${agentPort} refused the environment change: ${res.status} ${(await res.text()).slice(0, 300)}`);
    },

    async waitForAgent(ip, token, timeoutMs, containerId, waitOpts) {
      const id = containerId ?? containerOfIp.get(ip);
      const started = Date.now();
      const failure = await pollAgent({
        ip,
        port: agentPort,
        token,
        timeoutMs,
        whenListening: () => eraseToken(token),
        untilListening: waitOpts?.hold,
        checkAlive: id
          ? async () => {
              const info = await inspect(id);
              if (!info || info.state === 'running') return;
              throw agentExited(
                `The sandbox container ${info.name} ${info.state === 'exited' ? `exited with code ${info.exitCode}` : `is ${info.state}`} before its agent answered`,
                await logTail(id),
              );
            }
          : undefined,
      });
      if (!failure) return;
      const logs = id ? await logTail(id) : '';
      const why =
        failure === 'unauthorized'
          ? `The agent at ${ip}:${agentPort} rejects the token it was given`
          : `The agent at ${ip}:${agentPort} did not answer within ${Date.now() - started} ms`;
      throw agentExited(why, logs);
    },

    start,

    async stop(containerId, timeoutS = 10) {
      try {
        await docker.getContainer(containerId).stop({ t: timeoutS });
      } catch (err) {
        const status = engineStatus(err);
        if (status === 404) throw new ContainerNotFoundError(containerId);
        if (status !== 304) throw toRuntimeError(err, `stop the container ${containerId}`);
      }
      await forgetAddress(containerId);
    },

    async resize(containerId, limits) {
      const memory = Math.round(limits.memoryGiB * 1024 ** 3);
      try {
        await docker.getContainer(containerId).update({ NanoCpus: Math.round(limits.cpu * 1e9), Memory: memory, MemorySwap: memory });
      } catch (err) {
        if (engineStatus(err) === 404) throw new ContainerNotFoundError(containerId);
        throw toRuntimeError(err, `resize the container ${containerId}`);
      }
    },

    async exportLayer(containerId) {
      let info: Dockerode.ContainerInspectInfo;
      try {
        info = await docker.getContainer(containerId).inspect();
      } catch (err) {
        if (engineStatus(err) === 404) throw new ContainerNotFoundError(containerId);
        throw toRuntimeError(err, `inspect the container ${containerId}`);
      }
      if (info.State.Running) throw new RuntimeError('CONFLICT', `The container ${containerId} is running; its files can be read once it is stopped`);
      return tarLayer(writableLayer(info));
    },

    async pause(containerId) {
      // runc gives up on a cgroup v1 freeze that races with processes forking ("unable to freeze") and thaws the
      // container again; a few more tries, spaced out, freeze a busy one.
      for (let attempt = 1; ; attempt++) {
        try {
          await docker.getContainer(containerId).pause();
          return;
        } catch (err) {
          if (engineStatus(err) === 404) throw new ContainerNotFoundError(containerId);
          // 409 "already paused" is what the caller wants.
          if (engineStatus(err) === 409 && /already paused/i.test(engineMessage(err))) return;
          if (attempt < PAUSE_ATTEMPTS && /unable to freeze/i.test(engineMessage(err))) {
            await new Promise((r) => setTimeout(r, 20 * attempt));
            continue;
          }
          throw toRuntimeError(err, `pause the container ${containerId}`);
        }
      }
    },

    async unpause(containerId) {
      try {
        await docker.getContainer(containerId).unpause();
      } catch (err) {
        if (engineStatus(err) === 404) throw new ContainerNotFoundError(containerId);
        if (!(engineStatus(err) === 409 && /not paused/i.test(engineMessage(err)))) throw toRuntimeError(err, `unpause the container ${containerId}`);
      }
    },

    async releaseAddress(containerId, ip) {
      const holder = containerOfIp.get(ip);
      // Another container started at that address since: its rules are its own.
      if (holder && holder !== containerId && !holder.startsWith(containerId)) return;
      containerOfIp.delete(ip);
      await egress.apply(ip, undefined, () => heldByAnother(ip, containerId));
    },

    async setEgress(containerId, ip, policy) {
      containerOfIp.set(ip, containerId);
      await egress.apply(ip, policy);
    },

    setEgressPorts: (ports) => egress.setPorts(ports),

    remove,
    inspect,

    async listManaged() {
      let list: Dockerode.ContainerInfo[];
      try {
        list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_MANAGED}=1`] } });
      } catch (err) {
        throw toRuntimeError(err, 'list containers');
      }
      return list.map((c) => ({
        id: c.Id,
        name: (c.Names[0] ?? '').replace(/^\//, ''),
        state: c.State as ContainerState,
        ip: c.State === 'running' ? ipOf(c.NetworkSettings as { Networks?: Record<string, { IPAddress?: string }> }) : '',
        labels: ownLabels(c.Labels),
        // The list does not carry exit codes; its Status text does ("Exited (137) 2 minutes ago").
        exitCode: Number(/Exited \((\d+)\)/.exec(c.Status)?.[1] ?? 0),
      }));
    },

    async memoryUsage(containerId) {
      let stats: Dockerode.ContainerStats;
      try {
        stats = await docker.getContainer(containerId).stats({ stream: false, 'one-shot': true });
      } catch (err) {
        if (engineStatus(err) === 404) throw new ContainerNotFoundError(containerId);
        throw toRuntimeError(err, `read the memory use of ${containerId}`);
      }
      const mem = stats.memory_stats as { usage?: number; stats?: Record<string, number> } | undefined;
      if (!mem?.usage) return 0;
      // Like `docker stats`: page cache the kernel can drop at once is not the sandbox's memory.
      const inactive = mem.stats?.total_inactive_file ?? mem.stats?.inactive_file ?? 0;
      return Math.max(0, mem.usage - inactive);
    },

    async containerEvents(labels) {
      try {
        return await docker.getEvents({
          filters: { type: ['container'], event: [...CONTAINER_EVENTS], label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
        });
      } catch (err) {
        throw toRuntimeError(err, 'follow the engine\'s events');
      }
    },

    async createVolume(name, labels, image) {
      try {
        await docker.createVolume({ Name: name, Driver: 'local', Labels: { ...labels, [LABEL_MANAGED]: '1' } });
      } catch (err) {
        throw toRuntimeError(err, `create the volume ${name}`);
      }
      // A new volume's root belongs to root, mode 755: no sandbox user could write it. One container, Cove's own
      // command, run as root without network or capabilities, makes it writable by all (sticky, as /tmp).
      let helper: Dockerode.Container | undefined;
      try {
        const created: Dockerode.Container = await docker.createContainer({
          Image: image,
          Labels: { ...labels, [LABEL_MANAGED]: '1' },
          User: '0:0',
          Entrypoint: ['chmod', '1777', '/volume'],
          Cmd: [],
          NetworkDisabled: true,
          HostConfig: {
            Runtime: 'runc',
            NetworkMode: 'none',
            CapDrop: ['ALL'],
            SecurityOpt: ['no-new-privileges'],
            Mounts: [{ Type: 'volume', Source: name, Target: '/volume', VolumeOptions: NO_COPY }],
          },
        });
        helper = created;
        await created.start();
        const { StatusCode } = (await created.wait()) as { StatusCode: number };
        if (StatusCode !== 0) {
          const logs = (await created.logs({ stdout: true, stderr: true, tail: 5 }).catch(() => '')).toString();
          throw new RuntimeError('DOCKER_ERROR', `Could not make the volume ${name} writable: chmod in ${image} exited with code ${StatusCode}`, logs);
        }
      } catch (err) {
        await helper?.remove({ force: true }).catch(() => {});
        helper = undefined;
        await docker.getVolume(name).remove().catch(() => {});
        if (engineStatus(err) === 404 && /image/i.test(engineMessage(err))) throw new ImageNotFoundError(image);
        throw toRuntimeError(err, `prepare the volume ${name}`);
      } finally {
        await helper?.remove({ force: true }).catch(() => {});
      }
    },

    async removeVolume(name) {
      try {
        await docker.getVolume(name).remove();
      } catch (err) {
        const status = engineStatus(err);
        if (status === 404) return;
        if (status === 409) throw new RuntimeError('CONFLICT', `The volume ${name} is in use by a container`, engineMessage(err), { cause: err });
        throw toRuntimeError(err, `remove the volume ${name}`);
      }
    },

    async volumesLabelled(labels) {
      try {
        const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
        const { Volumes } = await docker.listVolumes({ filters: { label } });
        return (Volumes ?? []).map((v) => v.Name);
      } catch (err) {
        throw toRuntimeError(err, 'list volumes');
      }
    },

    async imageExists(name) {
      try {
        await docker.getImage(name).inspect();
        return true;
      } catch (err) {
        if (engineStatus(err) === 404) return false;
        throw toRuntimeError(err, `inspect the image ${name}`);
      }
    },

    async imageInfo(name) {
      try {
        const image = await docker.getImage(name).inspect();
        const entrypoint = image.Config?.Entrypoint;
        return { id: image.Id, labels: image.Config?.Labels ?? {}, size: image.Size, entrypoint: typeof entrypoint === 'string' ? [entrypoint] : (entrypoint ?? null) };
      } catch (err) {
        if (engineStatus(err) === 404) return undefined;
        throw toRuntimeError(err, `inspect the image ${name}`);
      }
    },

    async pullImage(ref, onLine, auth) {
      let stream: NodeJS.ReadableStream;
      try {
        // dockerode sends authconfig as X-Registry-Auth (base64url JSON), never in the URL.
        stream = await docker.pull(ref, auth ? { authconfig: { ...auth } } : {});
      } catch (err) {
        throw toRuntimeError(err, `pull ${ref}`);
      }
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(
          stream,
          (err: Error | null) => (err ? reject(new RuntimeError('DOCKER_ERROR', `Docker failed to pull ${ref}: ${err.message}`)) : resolve()),
          (event: { status?: string; id?: string; progress?: string; error?: string }) => {
            const text = event.error ?? [event.id, event.status, event.progress].filter(Boolean).join(' ');
            if (text) onLine(text);
          },
        );
      });
    },

    async buildImage(dockerfile, tag, labels, onLine, contexts = []) {
      let stream: NodeJS.ReadableStream;
      // Its RUN steps join the sandboxes' network, under the same firewall: what a sandbox cannot reach (the host,
      // other sandboxes, cloud metadata, private ranges unless allowed), a build cannot either.
      await ensureNetwork();
      // A context archive that is not a whole tar ends the upload to the engine; its reason is the build's.
      let contextError: string | undefined;
      const context = Readable.from(
        (async function* () {
          try {
            yield* buildContext(dockerfile, contexts);
          } catch (err) {
            contextError = (err as Error).message;
            throw err;
          }
        })(),
      );
      try {
        stream = await docker.buildImage(context, {
          t: tag,
          labels,
          dockerfile: CONTEXT_DOCKERFILE,
          networkmode: network,
          forcerm: true,
          ...BUILD_LIMITS,
        });
      } catch (err) {
        if (contextError) throw new RuntimeError('DOCKER_ERROR', `The build failed: ${contextError}`);
        throw toRuntimeError(err, `build ${tag}`);
      }
      await new Promise<void>((resolve, reject) => {
        let failure: string | undefined;
        docker.modem.followProgress(
          stream,
          (err: Error | null) => {
            const why = contextError ?? failure ?? err?.message;
            if (why) reject(new RuntimeError('DOCKER_ERROR', `The build failed: ${why}`));
            else resolve();
          },
          (event: { stream?: string; status?: string; error?: string; errorDetail?: { message?: string } }) => {
            if (event.error) failure = event.errorDetail?.message ?? event.error;
            const text = (event.error ?? event.stream ?? event.status ?? '').replace(/\n$/, '');
            for (const line of text.split('\n')) if (line.trim()) onLine(line);
          },
        );
      });
    },

    async commit(containerId, target) {
      let container: Dockerode.ContainerInspectInfo;
      try {
        container = await docker.getContainer(containerId).inspect();
      } catch (err) {
        if (engineStatus(err) === 404) throw new ContainerNotFoundError(containerId);
        throw toRuntimeError(err, `inspect the container ${containerId}`);
      }
      // The image the container was made from, by id: its name may point elsewhere by now.
      const image = await inspectImage(container.Image);
      const config = commitConfig(image.Config, container.Config, target.labels);
      try {
        const result = (await docker.getContainer(containerId).commit({
          _query: { container: containerId, repo: target.repo, tag: target.tag, pause: true },
          _body: config,
        })) as { Id: string };
        return { imageId: result.Id };
      } catch (err) {
        if (engineStatus(err) === 404) throw new ContainerNotFoundError(containerId);
        throw toRuntimeError(err, `commit the container ${containerId} as ${target.repo}:${target.tag}`);
      }
    },

    async imagesLabelled(labels, { dangling = false } = {}) {
      let images: Dockerode.ImageInfo[];
      try {
        const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
        images = await docker.listImages({ filters: { label, ...(dangling ? { dangling: ['true'] } : {}) } });
      } catch (err) {
        throw toRuntimeError(err, 'list images');
      }
      return images.map((i) => ({ id: i.Id, tags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>') }));
    },

    async holdImage(containerId, ref) {
      const [repo, tag] = ref.split(':');
      try {
        const { Image } = await docker.getContainer(containerId).inspect();
        await docker.getImage(Image).tag({ repo, tag });
      } catch (err) {
        if (engineStatus(err) === 404) throw new ContainerNotFoundError(containerId);
        throw toRuntimeError(err, `keep the image of the container ${containerId}`);
      }
    },

    async untagImage(ref) {
      try {
        // force: a tag of an image a container uses is removed, and the image stays; noprune keeps its parents.
        await docker.getImage(ref).remove({ force: true, noprune: true });
      } catch (err) {
        if (engineStatus(err) !== 404) throw toRuntimeError(err, `remove the image name ${ref}`);
      }
    },

    async removeImage(name) {
      try {
        await docker.getImage(name).remove({ force: false, noprune: false });
        return true;
      } catch (err) {
        const status = engineStatus(err);
        if (status === 404) return true;
        if (status === 409) return false;
        throw toRuntimeError(err, `remove the image ${name}`);
      }
    },
  };
}

/** An AgentNotReadyError whose message ends with the container's last log lines, the usual key to why. */
function agentExited(why: string, logs: string): AgentNotReadyError {
  return new AgentNotReadyError('AGENT_NOT_READY', logs ? `${why}; its last log lines:\n${logs}` : why, logs || undefined);
}

/** A container's labels without the dev.cove.* ones blanked at creation (inherited from its image, see sandbox-config). */
function ownLabels(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels ?? {})) if (!(key.startsWith(COVE_LABEL_PREFIX) && value === '')) out[key] = value;
  return out;
}

/** The content of the first regular file of a tar archive ('' when it is not one, e.g. a symlink). */
function firstFileOfTar(tar: Buffer): string {
  if (tar.length < 512) return '';
  const type = String.fromCharCode(tar[156]);
  if (type !== '0' && type !== '\0') return '';
  const size = parseInt(tar.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim(), 8) || 0;
  return tar.subarray(512, 512 + size).toString('utf8');
}
