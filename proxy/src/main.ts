import path from 'node:path';
import { createHash } from 'node:crypto';
import Dockerode from 'dockerode';
import pino from 'pino';
import { buildImages, DESKTOP_IMAGE, SANDBOX_IMAGE } from '../../images/src/build';
import { ensureCommands } from '../../images/src/host';
import { CoveError } from '../../lib/errors';
import { AGENT_VERSION } from '../../wire/agent';
import { readProxyConfig, SERVE_USAGE } from './config';
import { createKeysService, type Principal } from './auth/api-keys';
import { createPools, type SnapshotPoolSpec, type SnapshotPoolTarget } from './pool/pools';
import { describeLimits } from './quotas/limits';
import { createQuotaService } from './quotas/service';
import { createDockerRuntime } from './runtime/docker-runtime';
import { createExitTracker, followContainerEvents } from './runtime/events';
import { createLifecycleScheduler } from './lifecycle/scheduler';
import { LABEL_MANAGED } from './runtime/types';
import { createDiskWatchdog, describeDiskMode, detectDiskMode } from './runtime/disk';
import { createSandboxRepo } from './sandboxes/repo';
import { createDirectoryStore } from './archive/store';
import { createSandboxService, DEFAULTS, LABEL_INSTANCE } from './sandboxes/service';
import { EVENTS_PATH, startProxyServer, TOOLBOX_BASE } from './server';
import { createSnapshotService } from './snapshots/service';
import { createVolumeService } from './volumes/service';
import { createSnapshotCatalog } from './snapshots/catalog';
import { createObjectStorage } from './object-storage/service';
import { createRegistryService } from './registries/service';
import { openDatabase } from './store/db';
import { createToolboxAccess } from './toolbox/access';
import { createToolboxForwarder } from './toolbox/forward';
import { createCors } from './http/cors';
import { createEventsGateway } from './events/gateway';
import { eventOf } from './events/service';
import { createSigningKeys } from './auth/signing';
import { installLastResort, setErrorReporter, settle } from '../../lib/guard';
import { createCredentialCheck } from './preview/credentials';
import { createPreviewHandler } from './preview/handler';
import { createPreviewTokens } from './auth/preview-tokens';
import { createSshAccess } from './auth/ssh-tokens';
import { startSshGateway, type SshGateway } from './ssh/gateway';
import { createMetrics } from './metrics/registry';
import { startMetricsListener } from './metrics/routes';
import { loadEgressCa } from './egress/ca';
import { createEgressLog } from './egress/log';
import { startEgressServices, type EgressServices } from './egress/service';
import { loadSecretKey } from './secrets/crypto';
import { createSecretService } from './secrets/service';
import type { EgressSandbox } from './egress/types';

/** Printed on stdout once the proxy serves; supervisors and tests wait for it. */
const SERVE_READY_PREFIX = 'cove listening on ';

/**
 * `cove serve`: reads config once, builds missing images, reconciles state with the containers that exist, fills
 * the warm pool and serves until SIGTERM/SIGINT — leaving sandboxes running for the next start to adopt.
 */
export async function runServe(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return;
  }
  let config;
  try {
    config = readProxyConfig(argv, process.env, process.cwd());
  } catch (err) {
    // The reason alone: under a page of usage it would scroll out of sight (and out of a supervisor's last lines).
    process.stderr.write(`cove serve: ${(err as Error).message}\nRun "cove serve --help" for the options.\n`);
    process.exitCode = 2;
    return;
  }
  delete process.env.COVE_API_KEY;
  delete process.env.COVE_SECRET_KEY;
  const log = pino({ level: config.logLevel, base: undefined, redact: ['req.headers.authorization'] });
  setErrorReporter(({ id, where, err }) => log.error({ id, where, err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, 'unexpected error'));
  installLastResort('cove serve');

  const images = await buildImages({ log: (line) => process.stderr.write(`[images] ${line}\n`) });
  // The desktop image (computer use) is in no registry: it is built on its first use, its progress the pull's lines.
  const isDesktop = (image: string) => image === DESKTOP_IMAGE || `${image}:latest` === DESKTOP_IMAGE;
  const buildDesktop = async (onLine: (line: string) => void) => {
    try {
      await buildImages({ desktop: true, log: (line) => (onLine(line), process.stderr.write(`[images] ${line}\n`)) });
    } catch (err) {
      throw new CoveError('IMAGE_NOT_FOUND', `Image ${DESKTOP_IMAGE} is not on this host and could not be built: ${(err as Error).message}`);
    }
  };
  const db = openDatabase(config.dataDir);
  const keys = createKeysService(db);
  if (config.apiKey) keys.ensureAdmin(config.apiKey);
  else if (!keys.hasAdmin()) {
    const { key } = keys.create({ name: 'admin', admin: true });
    // Shown once, on stdout for the operator; never written to the log.
    process.stdout.write(`Admin API key (shown once; keep it): ${key}\n`);
  }

  // Secrets' values are sealed with this key (secrets/crypto.ts): one that does not open them stops the start here.
  const secrets = createSecretService({ db, key: loadSecretKey(config.dataDir, config.secretKey), log });

  const instance = createHash('sha256').update(config.dataDir).digest('hex').slice(0, 12);
  // The engine named by DOCKER_HOST, else the local socket: one client for the runtime and the disk checks.
  const docker = new Dockerode();
  const disk = await detectDiskMode({ docker, image: SANDBOX_IMAGE, labels: { [LABEL_INSTANCE]: instance } });
  process.stdout.write(`disk limits: ${describeDiskMode(disk, config.diskCheckInterval)}\n`);
  process.stdout.write(`quotas: ${describeLimits(config.limits)}\n`);
  // Cove's egress CA (egress/ca.ts): every sandbox trusts it, so requests to a mounted secret's hosts can carry its value.
  const egressCa = await loadEgressCa(config.dataDir);
  const runtime = createDockerRuntime({
    bundleDir: images.bundleDir,
    trustedCa: egressCa.certPem,
    secretsDir: path.join(config.dataDir, 'agent-secrets'),
    network: config.network,
    allowPrivateEgress: config.allowPrivateEgress,
    docker,
    storageOpt: disk.kind === 'storage-opt' ? { countsImage: disk.countsImage } : undefined,
    ociRuntime: config.runtime,
  });
  // Before anything starts a container: a runtime the engine cannot run is a clear error now, not a failing pool.
  if ((await runtime.ensureOciRuntime()) === 'registered') {
    process.stderr.write('[runtime] registered runsc (gVisor) with the Docker engine: added to its daemon.json, dockerd reloaded\n');
  }
  const bridge = await runtime.ensureNetwork();
  // The egress proxy and DNS (egress/), on the bridge's gateway: what domain allow-lists go through. Sandboxes are
  // looked up once the sandbox service exists; until then every request is refused.
  const egressLog = createEgressLog();
  let egressAt: (ip: string) => EgressSandbox | undefined = () => undefined;
  let egress: EgressServices | undefined;
  try {
    egress = await startEgressServices({
      gateway: bridge.gateway,
      subnet: bridge.subnet,
      allowPrivate: config.allowPrivateEgress,
      dnsServers: config.dnsServers,
      sandboxAt: (ip) => egressAt(ip),
      ca: egressCa,
      log: egressLog,
      logger: log,
    });
    runtime.setEgressPorts(egress.ports);
  } catch (err) {
    log.error({ err: (err as Error).message, gateway: bridge.gateway }, 'the egress proxy could not start: domain allow-lists are refused');
  }
  // Known for sure only once the server listens (port 0 picks one).
  let publicUrl = (config.publicUrl ?? `http://localhost:${config.port}`).replace(/\/$/, '');
  const toolboxUrl = () => `${publicUrl}${TOOLBOX_BASE}`;
  /** A snapshot pool's members now: its snapshot's image, resources and entrypoint (see pool/pools.ts). */
  const snapshotPoolTarget = (spec: SnapshotPoolSpec): SnapshotPoolTarget => {
    let owners: string[] | undefined;
    if (spec.key !== undefined) {
      const named = keys.list().filter((k) => !k.revokedAt && (k.id === spec.key || k.name === spec.key));
      if (named.length === 0) return { waiting: `no API key has the id or name ${spec.key}` };
      if (named.length > 1 && !named.some((k) => k.id === spec.key)) return { waiting: `several API keys are named ${spec.key}: name the key by its id (cove keys list)` };
      owners = named.some((k) => k.id === spec.key) ? [spec.key] : named.map((k) => k.id);
    }
    const found = catalog.forPool(spec.snapshot, owners);
    if ('waiting' in found) return found;
    const { cpu, memory, disk: diskGiB } = found.resources!;
    return {
      poolClass: { image: found.image, cpu, memoryGiB: memory, diskGiB: disk.kind === 'storage-opt' ? diskGiB : undefined, ...(found.entrypoint ? { entrypoint: found.entrypoint } : {}) },
    };
  };
  const pool =
    config.pool > 0 || config.snapshotPools.length
      ? createPools({
          runtime,
          db,
          labels: { [LABEL_INSTANCE]: instance },
          log,
          defaultPool:
            config.pool > 0
              ? {
                  size: config.pool,
                  // Where the engine limits sizes, members are made with the default size, and only creates of it are hits.
                  poolClass: { image: config.image, cpu: DEFAULTS.cpu, memoryGiB: DEFAULTS.memory, diskGiB: disk.kind === 'storage-opt' ? DEFAULTS.disk : undefined },
                  // Another default image may have an entrypoint of its own: it starts when a create claims the member.
                  hold: config.image !== SANDBOX_IMAGE,
                }
              : undefined,
          snapshotPools: config.snapshotPools,
          resolve: snapshotPoolTarget,
          // A deleted snapshot's image goes once no sandbox and no pool member uses it.
          onDrained: () => settle('collect the images of deleted snapshots', catalog.collect()),
        })
      : undefined;
  const previewTokens = createPreviewTokens(db);
  const sshAccess = createSshAccess(db);
  const signing = createSigningKeys(db);
  const sandboxRepo = createSandboxRepo(db);
  // Prometheus metrics (metrics/): sandboxes and pools are read at each scrape, the rest counted as it happens.
  const metrics = createMetrics({ sandboxStates: () => sandboxRepo.all().map((r) => r.state), pools: () => pool?.status() ?? [] });
  // Archives are zstd files; tar and zstd are installed here when missing (as root), like the image tools.
  ensureCommands({ tar: 'tar', zstd: 'zstd' }, (line) => process.stderr.write(`[archive] ${line}\n`));
  const archives = createDirectoryStore(path.join(config.dataDir, 'archives'));
  archives.sweep();
  const quotas = createQuotaService({ db, defaults: config.limits });
  // Build contexts the SDK uploads (addLocalFile/addLocalDir), S3-compatible, under the data dir.
  const objectStorage = createObjectStorage({ dataDir: config.dataDir, publicUrl: () => publicUrl, log });
  await objectStorage.start();
  const volumes = createVolumeService({
    db,
    runtime,
    labels: { [LABEL_INSTANCE]: instance },
    image: SANDBOX_IMAGE,
    sandboxOf: (id) => sandboxes.find(id),
    log,
  });
  const registries = createRegistryService({ db, runtime, log });
  /** Whether a key may use a local image: not another key's snapshot or fork, nor one pulled with another key's credentials. */
  const mayUseImage = async (principal: Principal, image: string) => (await snapshots.mayUse(principal, image)) && (await registries.mayUse(principal, image));
  /** Images pulled for sandbox creates go once no sandbox or snapshot uses them. */
  const everyKey: Principal = { keyId: '', admin: true };
  const collectPulls = () =>
    registries.collect((image) => sandboxes.records().some((r) => r.image === image) || catalog.list(everyKey, { limit: Number.MAX_SAFE_INTEGER }).items.some((s) => s.imageName === image));
  const sandboxes = createSandboxService({
    repo: sandboxRepo,
    runtime,
    pool,
    quotas,
    archives,
    image: config.image,
    defaultUser: 'cove',
    toolboxUrl,
    agentVersion: AGENT_VERSION,
    instance,
    allowPrivateEgress: config.allowPrivateEgress,
    egressLog: egress ? egressLog : undefined,
    refuseDisk: disk.kind === 'off' ? disk.why : undefined,
    diskFixed: disk.kind === 'storage-opt',
    minuteMs: config.minuteMs,
    onTimersChanged: () => timers.kick(),
    onDeleted: (id) => {
      previewTokens.removeForSandbox(id);
      sshAccess.removeForSandbox(id);
      signing.removeForSandbox(id);
      volumes.forget(id);
      egressLog.drop(id);
      secrets.unmountAll(id);
      // A deleted fork's image goes with it, as does a replaced snapshot this sandbox still ran from.
      settle('collect committed images', snapshots.collectImages());
      settle('collect the images of deleted snapshots', catalog.collect());
      settle('collect the images pulled for sandboxes', collectPulls());
    },
    mayUseImage,
    volumes,
    secrets,
    resolveSnapshot: (principal, name) => catalog.resolve(principal, name),
    prepareBuild: (principal, dockerfile, contextHashes) => catalog.prepareBuild(principal, dockerfile, contextHashes),
    onBuildDiscarded: () => settle('collect the images of deleted snapshots', catalog.collect()),
    pullImage: (principal, image) => (isDesktop(image) ? buildDesktop(() => {}) : registries.pullForSandbox(principal, image)),
    metrics,
    log,
  });
  const catalog = createSnapshotCatalog({
    db,
    runtime,
    defaultImage: config.image,
    defaults: DEFAULTS,
    sandboxes: () => sandboxes.records(),
    contexts: { has: (keyId, hash) => objectStorage.hasContext(keyId, hash), open: (keyId, hash) => objectStorage.openContext(keyId, hash) },
    mayUse: mayUseImage,
    pullImage: (principal, image, onLine) => (isDesktop(image) ? buildDesktop(onLine) : registries.pull(principal, image, onLine)),
    keepImage: isDesktop,
    checkSize: (keyId, wanted) => quotas.checkSize(keyId, wanted),
    refuseDisk: disk.kind === 'off' ? disk.why : undefined,
    log,
  });
  egressAt = (ip) => sandboxes.egressAt(ip);
  const snapshots = createSnapshotService({ sandboxes, runtime, quotas, instance, catalog, log });
  const { poolContainers, removed } = await sandboxes.reconcile();
  if (removed.length) log.info({ removed: removed.length }, 'removed containers no sandbox owns');
  await volumes.settle().catch((err: Error) => log.error({ err: err.message }, 'could not settle the volumes'));
  // Forks deleted while the server was down (or a fork it stopped in the middle of) leave their images.
  await snapshots.collectImages().catch((err: Error) => log.error({ err: err.message }, 'could not remove the images Cove committed that nothing uses'));
  await catalog.recover().catch((err: Error) => log.error({ err: err.message }, 'could not recover the snapshots'));
  await collectPulls().catch((err: Error) => log.error({ err: err.message }, 'could not remove the images pulled for sandboxes that nothing uses'));
  if (pool) await pool.start(poolContainers);
  else for (const c of poolContainers) await runtime.remove(c.id).catch(() => {});
  const watchdog =
    disk.kind === 'watchdog'
      ? createDiskWatchdog({
          docker,
          intervalMs: config.diskCheckInterval * 1000,
          sandboxes: () =>
            sandboxRepo
              .all()
              .filter((r) => r.state === 'started' && r.containerId)
              .map((r) => ({ id: r.id, containerId: r.containerId!, diskGiB: r.disk, updatedAt: r.updatedAt })),
          stop: (id, containerId, reason) => sandboxes.stopBecause(id, containerId, reason),
          log,
        })
      : undefined;
  watchdog?.start();
  // Auto-stop, auto-delete (ephemeral) and ttl: one scheduler over the records, so it survives restarts.
  const timers = createLifecycleScheduler({
    records: () => sandboxes.records(),
    act: (id, action) =>
      action === 'stop'
        ? sandboxes.stopByTimer(id)
        : action === 'pause'
          ? sandboxes.pauseByTimer(id)
          : action === 'archive'
            ? sandboxes.archiveByTimer(id)
            : sandboxes.deleteByTimer(id),
    minuteMs: config.minuteMs,
    log,
  });
  timers.start();

  // From here on a container that ends without Cove asking is noticed as it happens (runtime/events.ts); each
  // (re)connection to the engine's events reconciles again, for what happened while nobody listened.
  const exits = createExitTracker({
    onEnd: (end) => {
      if (pool?.forget(end.containerId)) return;
      settle('sandbox container ended', sandboxes.containerEnded(end));
    },
    onOomKills: (containerId, _labels, oomEvents) =>
      log.warn(
        { sandboxId: sandboxes.ofContainer(containerId)?.id, container: containerId.slice(0, 12), oomEvents },
        "out of memory in a sandbox: the kernel's OOM killer ended processes of its user code; the sandbox lives on",
      ),
  });
  const events = followContainerEvents({
    open: () => runtime.containerEvents({ [LABEL_MANAGED]: '1', [LABEL_INSTANCE]: instance }),
    onEvent: (event) => exits.feed(event),
    onConnected: async () => {
      await sandboxes.reconcile({ live: true });
      await pool?.verify();
    },
    log,
  });

  // The API keeps serving when the SSH port is taken (another Cove on this host): SSH is then off, and says so.
  let ssh: SshGateway | undefined;
  let sshNote: string;
  try {
    ssh = await startSshGateway({ host: config.host, port: config.sshPort, dataDir: config.dataDir, access: sshAccess, sandboxes, metrics, log });
    sshNote = `SSH port ${ssh.port}`;
  } catch (err) {
    sshNote = `SSH off: ${(err as Error).message}`;
    log.error({ err: (err as Error).message, port: config.sshPort }, 'the SSH gateway could not start');
  }
  const sshHost = () => new URL(publicUrl).hostname.replace(/^\[|\]$/g, '');

  // State events to SDKs (Socket.IO): every state change the repo writes from here on, to the keys that may see it.
  const cors = createCors(config.corsOrigins);
  const stateEvents = createEventsGateway({ path: EVENTS_PATH, keys, allowsOrigin: cors.allowsOrigin, log });
  sandboxRepo.onChange((change) => {
    // Nobody to tell: the event (a DTO, its encoding) is not built.
    if (stateEvents.listening()) stateEvents.publish(eventOf(change, sandboxes.toDto));
  });

  const server = await startProxyServer({
    host: config.host,
    port: config.port,
    keys,
    sandboxes,
    snapshots,
    volumes,
    catalog,
    objectStorage,
    registries,
    secrets,
    pool,
    forwarder: createToolboxForwarder({ onActivity: (id) => sandboxes.touch(id), onRequest: (id) => sandboxes.busyWith(id) }),
    toolboxAccess: createToolboxAccess({ keys, sandboxes, signing, previewTokens }),
    cors,
    events: stateEvents,
    signing,
    preview: createPreviewHandler({
      sandboxes,
      keys,
      tokens: previewTokens,
      credentials: createCredentialCheck({ keys, tokens: previewTokens, ssh: sshAccess }),
      secure: publicUrl.startsWith('https:'),
      metrics,
    }),
    previewTokens,
    previewDomain: config.previewDomain,
    publicUrl: () => publicUrl,
    toolboxUrl,
    version: AGENT_VERSION,
    ssh: { access: sshAccess, endpoint: () => ({ host: sshHost(), port: ssh?.port ?? config.sshPort }) },
    metrics,
    log,
  });
  if (!config.publicUrl) publicUrl = `http://localhost:${server.port}`;
  const runtimeNote = config.runtime === 'runsc' ? 'runtime runsc (gVisor)' : 'runtime runc';
  // `--metrics-listen`: /metrics without authentication on the operator's address. Like SSH, one that cannot listen
  // leaves the rest serving, and the ready line says so.
  let metricsListener: Awaited<ReturnType<typeof startMetricsListener>> | undefined;
  let metricsNote = '';
  if (config.metricsListen) {
    try {
      metricsListener = await startMetricsListener({ ...config.metricsListen, metrics });
      metricsNote = `, metrics on ${metricsListener.url}`;
    } catch (err) {
      metricsNote = `, metrics listener off: ${(err as Error).message}`;
      log.error({ err: (err as Error).message, listen: config.metricsListen }, 'the metrics listener could not start');
    }
  }
  process.stdout.write(`${SERVE_READY_PREFIX}${server.url} (API ${publicUrl}/api, ${runtimeNote}, ${sshNote}${metricsNote})\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`cove stopping (${signal}): sandboxes keep running for the next start\n`);
    events.close();
    timers.close();
    pool?.close();
    watchdog?.close();
    void ssh?.close();
    void egress?.close();
    void metricsListener?.close();
    server
      .close()
      .catch(() => {})
      .finally(() => {
        db.close();
        process.stdout.write('cove stopped\n');
        process.exit(0);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
