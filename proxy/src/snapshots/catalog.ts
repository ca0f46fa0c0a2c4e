import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { CoveError } from '../../../lib/errors';
import { settle } from '../../../lib/guard';
import { IMAGE_REF } from '../../../wire/sandbox';
import { SnapshotName, type CreateSnapshotRequest, type ListSnapshotsQuery, type PaginatedSnapshots, type SnapshotDto, type SnapshotState } from '../../../wire/snapshots';
import type { Principal } from '../auth/api-keys';
import type { DockerRuntime } from '../runtime/types';
import type { SandboxRecord } from '../sandboxes/repo';
import { now, type Db } from '../store/db';
import { createLiveLogs } from './build-logs';
import { baseImages } from './dockerfile';

interface SnapshotRow {
  id: string;
  name: string;
  owner_key_id: string;
  image: string;
  state: SnapshotState;
  owns_image: number;
  size: number | null;
  entrypoint: string | null;
  error_reason: string | null;
  source_sandbox_id: string | null;
  logs: string;
  created_at: string;
  updated_at: string;
  last_used_at: string | null;
  /** Resources of the snapshot's sandboxes; null: the server's defaults. */
  cpu: number | null;
  memory: number | null;
  disk: number | null;
  /** The entrypoint given at create (JSON), which its sandboxes run; `entrypoint` is then the same, else the image's. */
  run_entrypoint: string | null;
}

/** What a create naming a snapshot gets: its name and image, the resources and entrypoint of its sandboxes. */
export interface ResolvedSnapshot {
  name: string;
  image: string;
  /** Unset for the general snapshot (the default image), whose creates choose their own. */
  resources?: { cpu: number; memory: number; disk: number };
  entrypoint?: string[];
}

interface CatalogOptions {
  db: Db;
  runtime: DockerRuntime;
  /** The default image: listed to every key as the one general snapshot. */
  defaultImage: string;
  /** The resources a sandbox gets when its create names none: what a snapshot's DTO reports. */
  defaults: { cpu: number; memory: number; disk: number };
  /** Sandboxes as recorded now: an image one of them was made from stays. */
  sandboxes: () => SandboxRecord[];
  /** The build contexts keys uploaded (`Image.addLocalFile/addLocalDir`): whether one is there, and its tar bytes. */
  contexts: { has(keyId: string, hash: string): Promise<boolean>; open(keyId: string, hash: string): Promise<AsyncIterable<Buffer>> };
  /** Whether a key may create sandboxes of a local image (not another key's snapshot, not a fork image). */
  mayUse: (principal: Principal, image: string) => Promise<boolean>;
  /** Pulls an image for a key with its registry credentials (registries/); without it, pulls are anonymous. */
  pullImage?: (principal: Principal, image: string, onLine: (line: string) => void) => Promise<void>;
  /** Images Cove builds itself (the desktop image): a snapshot that made one never removes it. */
  keepImage?: (image: string) => boolean;
  /** Refuses resources over the key's per-sandbox maximums (quotas), naming the field. */
  checkSize?: (keyId: string, wanted: { cpu?: number; memory?: number; disk?: number }) => void;
  /** Set when nothing on this server can enforce `disk` (disk mode off): why; snapshots that set it are refused. */
  refuseDisk?: string;
  log: Logger;
}

/** States in which a snapshot is finished with, for good or ill: log followers stop there. */
const SETTLED: ReadonlySet<SnapshotState> = new Set(['active', 'inactive', 'error', 'build_failed']);
/**
 * The image a key's Dockerfile is built into: one per key, Dockerfile and uploaded contexts (a context's hash is of its
 * files' paths and contents, so changed files are another image).
 */
const builtImageName = (keyId: string, dockerfile: string, contextHashes: string[]) =>
  `cove-build:${createHash('sha256').update(`${keyId}\n${dockerfile}${contextHashes.length ? `\n${contextHashes.join(',')}` : ''}`).digest('hex').slice(0, 32)}`;
/** How many context archives one build may name. */
const MAX_CONTEXTS = 100;

/** The longest Dockerfile a snapshot is built from. */
const MAX_DOCKERFILE = 64 * 1024;

/** A stable UUID-shaped id for a name (the general snapshot's, which has no row). */
function idOf(name: string): string {
  const h = createHash('sha256').update(`cove-general-snapshot:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** `name` with `:latest` when it has neither tag nor digest, as the engine pulls one image and not every tag. */
function withTag(ref: string): string {
  if (ref.includes('@')) return ref;
  return ref.lastIndexOf(':') > ref.lastIndexOf('/') ? ref : `${ref}:latest`;
}

/** GB of an image size in bytes, to three decimals. */
const gb = (bytes: number | undefined): number | null => (bytes === undefined ? null : Math.round((bytes / 1024 ** 3) * 1000) / 1000);

/**
 * Daytona's snapshots (`daytona.snapshot.*`): named images per API key that creates accept as `snapshot`. A snapshot
 * is made of an image on this host (active at once) or one the engine pulls (`pulling`, then `active` or `error` with
 * the engine's reason; the progress lines are its logs), or recorded when `sandbox.createSnapshot` copies a sandbox
 * (`sourceSandboxId`). Admin keys see every key's; the default image is the general snapshot every key sees. Deleting
 * one removes its record at once (sandboxes made from it keep running, as in Daytona) and its image once no sandbox
 * needs it, when Cove pulled or committed that image; Cove never removes an image it did not make.
 */
export function createSnapshotCatalog(opts: CatalogOptions) {
  const { db, runtime, log } = opts;
  /** Logs of snapshots being pulled or built, and who follows them. */
  const live = createLiveLogs();

  const byId = db.prepare<[string], SnapshotRow>(`SELECT * FROM snapshots WHERE id = ? AND state != 'removing'`);
  const ownNamed = db.prepare<[string, string], SnapshotRow>(`SELECT * FROM snapshots WHERE owner_key_id = ? AND name = ? AND state != 'removing'`);
  const anyNamed = db.prepare<[string], SnapshotRow>(`SELECT * FROM snapshots WHERE name = ? AND state != 'removing' LIMIT 2`);
  const visible = db.prepare<[string, number], SnapshotRow>(`SELECT * FROM snapshots WHERE state != 'removing' AND (owner_key_id = ? OR ?) ORDER BY created_at DESC, id`);
  const deleteRow = db.prepare<[string]>('DELETE FROM snapshots WHERE id = ?');
  const insert = db.prepare(
    `INSERT INTO snapshots (id, name, owner_key_id, image, state, owns_image, size, entrypoint, error_reason, source_sandbox_id, logs, created_at, updated_at, last_used_at, cpu, memory, disk, run_entrypoint)
     VALUES (@id, @name, @owner_key_id, @image, @state, @owns_image, @size, @entrypoint, @error_reason, @source_sandbox_id, @logs, @created_at, @updated_at, @last_used_at, @cpu, @memory, @disk, @run_entrypoint)`,
  );

  function update(id: string, fields: Partial<Omit<SnapshotRow, 'id'>>): void {
    const keys = Object.keys(fields);
    db.prepare(`UPDATE snapshots SET ${keys.map((k) => `${k} = @${k}`).join(', ')}, updated_at = @updated_at WHERE id = @id`).run({ ...fields, updated_at: now(), id });
  }

  function general(): SnapshotDto {
    const time = new Date(0).toISOString();
    return {
      id: idOf(opts.defaultImage),
      organizationId: '',
      general: true,
      name: opts.defaultImage,
      imageName: opts.defaultImage,
      state: 'active',
      size: null,
      entrypoint: null,
      cpu: opts.defaults.cpu,
      gpu: 0,
      mem: opts.defaults.memory,
      disk: opts.defaults.disk,
      errorReason: null,
      createdAt: time,
      updatedAt: time,
      lastUsedAt: null,
      sourceSandboxId: null,
      sandboxClass: 'container',
    };
  }

  /** A snapshot's resources as its DTO says them: its own, else the defaults every create without its own gets. */
  const resourcesOf = (r: SnapshotRow) => ({ cpu: r.cpu ?? opts.defaults.cpu, gpu: 0, mem: r.memory ?? opts.defaults.memory, disk: r.disk ?? opts.defaults.disk });

  function dtoOf(r: SnapshotRow): SnapshotDto {
    return {
      id: r.id,
      organizationId: r.owner_key_id,
      general: false,
      name: r.name,
      imageName: r.image,
      state: r.state,
      size: r.size,
      entrypoint: r.run_entrypoint || r.entrypoint ? (JSON.parse((r.run_entrypoint ?? r.entrypoint)!) as string[]) : null,
      ...resourcesOf(r),
      errorReason: r.error_reason,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      lastUsedAt: r.last_used_at,
      sourceSandboxId: r.source_sandbox_id,
      sandboxClass: 'container',
    };
  }

  /** The caller's snapshot of that id or name (any key's for an admin key), or a 404 that reveals no other key's. */
  function find(principal: Principal, idOrName: string): SnapshotRow {
    const row = byId.get(idOrName);
    if (row && (principal.admin || row.owner_key_id === principal.keyId)) return row;
    const own = ownNamed.get(principal.keyId, idOrName);
    if (own) return own;
    if (principal.admin) {
      const named = anyNamed.all(idOrName);
      if (named.length > 1) throw new CoveError('CONFLICT', `Several snapshots of different API keys are named ${idOrName}; ask for the one you mean by its id`);
      if (named.length === 1) return named[0];
    }
    throw new CoveError('NOT_FOUND', `Snapshot ${idOrName} not found`);
  }

  const isGeneral = (idOrName: string) => idOrName === opts.defaultImage || idOrName === idOf(opts.defaultImage);

  const appendLog = (id: string, line: string) => live.append(id, line);

  /** Ends a pull's logs: kept in the row, followers told the end. */
  const settleLogs = (id: string) =>
    live.end(id, (logs) => {
      if (byId.get(id)) update(id, { logs });
    });

  /**
   * Makes a snapshot's image (a pull or a build), its output lines the snapshot's logs: `active` once the image is
   * on this host, else `failed` with the reason. A snapshot deleted meanwhile loses what was made.
   */
  async function make(row: SnapshotRow, how: { verb: 'pulled' | 'built'; failed: SnapshotState; run: (onLine: (line: string) => void) => Promise<void> }): Promise<void> {
    live.begin(row.id);
    let state: Partial<SnapshotRow>;
    try {
      await how.run((line) => appendLog(row.id, line));
      const info = await runtime.imageInfo(row.image);
      if (!info) throw new Error(`the engine reported ${row.image} ${how.verb}, but it is not on this host`);
      state = { state: 'active', size: gb(info.size), entrypoint: info.entrypoint ? JSON.stringify(info.entrypoint) : null };
      appendLog(row.id, `${how.verb === 'pulled' ? 'Pulled' : 'Built'} ${row.image}`);
    } catch (err) {
      const reason = (err as Error).message;
      appendLog(row.id, reason);
      state = { state: how.failed, error_reason: reason, owns_image: 0 };
    }
    if (byId.get(row.id)) update(row.id, state);
    // Deleted while it was made: what was made goes too.
    else if (state.state !== 'active' || (await removeIfUnused(row.image, row.id))) deleteRow.run(row.id);
    settleLogs(row.id);
    log.info({ snapshot: row.name, image: row.image, state: state.state }, `snapshot image ${how.verb}`);
  }

  /** Pulls an image with the key's registry credentials (anonymously without registries). */
  const pullAs = (principal: Principal, image: string, onLine: (line: string) => void) => (opts.pullImage ? opts.pullImage(principal, image, onLine) : runtime.pullImage(image, onLine));

  const pull = (row: SnapshotRow, principal: Principal) => make(row, { verb: 'pulled', failed: 'error', run: (onLine) => pullAs(principal, row.image, onLine) });

  /**
   * The images a Dockerfile builds from that are not on this host yet (the build pulls them first, with the key's
   * credentials). One that is here must be one the key may use: a Dockerfile cannot start from another key's snapshot,
   * fork or privately pulled image. A 400 says what is wrong.
   */
  async function checkBases(principal: Principal, dockerfile: string): Promise<string[]> {
    let bases: string[];
    try {
      bases = baseImages(dockerfile);
    } catch (err) {
      throw new CoveError('INVALID_REQUEST', `buildInfo.dockerfileContent: ${(err as Error).message}`);
    }
    const missing: string[] = [];
    for (const base of bases) {
      const ref = withTag(base);
      if (!(await runtime.imageInfo(ref))) missing.push(ref);
      else if (!(await opts.mayUse(principal, ref))) throw new CoveError('INVALID_REQUEST', `The Dockerfile builds from ${base}, an image of another API key; it cannot be used`);
    }
    return missing;
  }

  /** Pulls the bases a build needs, then builds. */
  async function pullAndBuild(principal: Principal, image: string, dockerfile: string, contextHashes: string[], missing: string[], onLine: (line: string) => void): Promise<void> {
    for (const base of missing) {
      onLine(`Pulling ${base}`);
      await pullAs(principal, base, onLine);
    }
    await buildInto(principal.keyId, image, dockerfile, contextHashes, onLine);
  }

  /** Images being built now, and by how many builds: collect leaves them (their record is there before the image). */
  const building = new Map<string, number>();
  const recordBuilt = db.prepare<[string, string, string]>('INSERT OR IGNORE INTO built_images (image, owner_key_id, created_at) VALUES (?, ?, ?)');
  const builtOwner = db.prepare<[string], { owner_key_id: string }>('SELECT owner_key_id FROM built_images WHERE image = ?');

  /**
   * Builds a Dockerfile with a key's uploaded contexts into `image`, recorded as this server's build for that key
   * first (no labels: the engine's builder would add them as one more step).
   */
  async function buildInto(keyId: string, image: string, dockerfile: string, contextHashes: string[], onLine: (line: string) => void): Promise<void> {
    building.set(image, (building.get(image) ?? 0) + 1);
    try {
      recordBuilt.run(image, keyId, now());
      await runtime.buildImage(dockerfile, image, {}, onLine, contextHashes.map((hash) => () => opts.contexts.open(keyId, hash)));
    } finally {
      const left = building.get(image)! - 1;
      if (left > 0) building.set(image, left);
      else building.delete(image);
    }
  }

  /** Builds a snapshot's Dockerfile (pulling its missing bases first); a failed build ends `build_failed`. */
  const build = (row: SnapshotRow, principal: Principal, dockerfile: string, contextHashes: string[], missing: string[]) =>
    make(row, { verb: 'built', failed: 'build_failed', run: (onLine) => pullAndBuild(principal, row.image, dockerfile, contextHashes, missing, onLine) });

  /** Refuses context hashes that are malformed, too many, or not uploaded by this key; the distinct ones, in order. */
  async function checkContexts(keyId: string, hashes: string[]): Promise<string[]> {
    const distinct = [...new Set(hashes)];
    if (distinct.length > MAX_CONTEXTS) throw new CoveError('INVALID_REQUEST', `buildInfo.contextHashes: at most ${MAX_CONTEXTS} contexts per image`);
    for (const hash of distinct) {
      if (!/^[0-9a-f]{32}$/.test(hash)) throw new CoveError('INVALID_REQUEST', `buildInfo.contextHashes: ${JSON.stringify(hash.slice(0, 80))} is not a context hash (32 hex digits)`);
      if (!(await opts.contexts.has(keyId, hash))) {
        throw new CoveError('INVALID_REQUEST', `buildInfo.contextHashes: no build context ${hash} was uploaded with this API key (the SDK uploads it through /api/object-storage/push-access)`);
      }
    }
    return distinct;
  }

  /** Removes an image Cove made once neither a sandbox nor another snapshot needs it; false when it must stay. */
  async function removeIfUnused(image: string, exceptId: string): Promise<boolean> {
    if (opts.sandboxes().some((s) => s.image === image)) return false;
    if (opts.keepImage?.(image)) return true;
    const others = db.prepare<[string, string], { n: number }>(`SELECT count(*) AS n FROM snapshots WHERE image = ? AND id != ? AND state != 'removing'`).get(image, exceptId)!.n;
    if (others > 0) return true;
    return runtime.removeImage(image).catch((err: Error) => {
      log.error({ image, err: err.message }, 'could not remove the image of a deleted snapshot');
      return false;
    });
  }

  /** What a sandbox of a snapshot runs: its image, resources (its own, else the defaults) and entrypoint when given. */
  const runsAs = (row: SnapshotRow): ResolvedSnapshot => ({
    name: row.name,
    image: row.image,
    resources: { cpu: row.cpu ?? opts.defaults.cpu, memory: row.memory ?? opts.defaults.memory, disk: row.disk ?? opts.defaults.disk },
    ...(row.run_entrypoint ? { entrypoint: JSON.parse(row.run_entrypoint) as string[] } : {}),
  });

  return {
    /**
     * Makes a snapshot of an image: active at once when the image is on this host, else pulled in the background
     * (answered `pulling`). A one-line `FROM image` Dockerfile is read as that image. Resources (within the key's
     * per-sandbox maximums) and an entrypoint are kept for the snapshot's sandboxes; GPUs are refused.
     */
    async create(principal: Principal, req: CreateSnapshotRequest): Promise<SnapshotDto> {
      const parsed = SnapshotName.safeParse(req.name);
      if (!parsed.success) throw new CoveError('INVALID_REQUEST', `Invalid snapshot name ${JSON.stringify(req.name.slice(0, 100))}: ${parsed.error.issues[0].message}`);
      const name = parsed.data;
      let imageName = req.imageName?.trim();
      let dockerfile: string | undefined;
      let contextHashes: string[] = [];
      let missingBases: string[] = [];
      if (req.buildInfo) {
        const content = req.buildInfo.dockerfileContent.trim();
        if (!content) throw new CoveError('INVALID_REQUEST', 'buildInfo.dockerfileContent is empty');
        if (content.length > MAX_DOCKERFILE) throw new CoveError('INVALID_REQUEST', `buildInfo.dockerfileContent is over ${MAX_DOCKERFILE / 1024} KiB`);
        const from = /^FROM\s+(\S+)\s*$/i.exec(content);
        if (from) imageName = from[1];
        else {
          dockerfile = content;
          contextHashes = await checkContexts(principal.keyId, req.buildInfo.contextHashes ?? []);
          missingBases = await checkBases(principal, content);
          // One image per key, Dockerfile and contexts: a second snapshot of the same is active at once (and the
          // engine's layer cache serves the steps any key built before).
          imageName = builtImageName(principal.keyId, content, contextHashes);
        }
      }
      if (!imageName) throw new CoveError('INVALID_REQUEST', 'A snapshot needs an image: give image (imageName) as the name of an image');
      if (imageName.length > 255 || !IMAGE_REF.test(imageName)) throw new CoveError('INVALID_REQUEST', `Invalid image name ${JSON.stringify(imageName.slice(0, 200))}: an image reference such as name:tag or registry/name:tag`);
      if (req.gpu || req.gpuType?.length) throw new CoveError('INVALID_REQUEST', 'GPUs are not supported by this Cove server');
      // Sandboxes of the snapshot get these; one over the key's per-sandbox maximums could never be created.
      if (req.disk !== undefined && opts.refuseDisk) throw new CoveError('INVALID_REQUEST', `disk cannot be enforced by this Cove server (${opts.refuseDisk}); leave it out`);
      opts.checkSize?.(principal.keyId, { cpu: req.cpu, memory: req.memory, disk: req.disk });
      if (req.entrypoint?.some((a) => a.includes('\0'))) throw new CoveError('INVALID_REQUEST', 'entrypoint: an argument holds a NUL character');
      const runEntrypoint = req.entrypoint?.length ? JSON.stringify(req.entrypoint) : null;
      // The one region (Daytona's target) a Cove server has; the SDK sends its target here.
      if (req.regionId !== undefined && req.regionId !== 'local') throw new CoveError('INVALID_REQUEST', `regionId ${req.regionId.slice(0, 40)}: this Cove server has one region, local`);
      if (req.sandboxClass && req.sandboxClass !== 'container') throw new CoveError('INVALID_REQUEST', `sandboxClass ${req.sandboxClass} is not supported: Cove's sandboxes are containers`);
      if (isGeneral(name) || ownNamed.get(principal.keyId, name)) throw new CoveError('CONFLICT', `A snapshot named ${name} already exists`);

      const image = withTag(imageName);
      const info = await runtime.imageInfo(image);
      const fresh = info ? 'active' : dockerfile ? 'building' : 'pulling';
      if (info && !(await opts.mayUse(principal, image))) {
        throw new CoveError('INVALID_REQUEST', `Image ${image} is a snapshot or fork image of another API key; it cannot be used`);
      }
      const time = now();
      const row: SnapshotRow = {
        id: randomUUID(),
        name,
        owner_key_id: principal.keyId,
        image,
        state: fresh,
        owns_image: info ? 0 : 1,
        size: info ? gb(info.size) : null,
        entrypoint: info?.entrypoint ? JSON.stringify(info.entrypoint) : null,
        error_reason: null,
        source_sandbox_id: null,
        logs: info ? `${image} is on this host: nothing to ${dockerfile ? 'build' : 'pull'}` : '',
        created_at: time,
        updated_at: time,
        last_used_at: null,
        cpu: req.cpu ?? null,
        memory: req.memory ?? null,
        disk: req.disk ?? null,
        run_entrypoint: runEntrypoint,
      };
      insert.run(row);
      log.info({ snapshot: name, image, state: row.state }, 'snapshot created');
      if (!info) settle('snapshot image', dockerfile ? build(row, principal, dockerfile, contextHashes, missingBases) : pull(row, principal));
      return dtoOf(row);
    },

    /**
     * Checks a Dockerfile of a sandbox create (`create({ image: Image… })`) and the key's uploaded contexts it names
     * (a 400 says what is wrong, nothing is made); answers the key's image for it, and `build` when that image is not
     * on this host yet: it builds it (pulling missing bases first), as a snapshot's is, its output lines to `onLine`.
     */
    async prepareBuild(principal: Principal, dockerfile: string, hashes: string[]): Promise<{ image: string; build?: (onLine: (line: string) => void) => Promise<void> }> {
      if (dockerfile.length > MAX_DOCKERFILE) throw new CoveError('INVALID_REQUEST', `buildInfo.dockerfileContent is over ${MAX_DOCKERFILE / 1024} KiB`);
      const contextHashes = await checkContexts(principal.keyId, hashes);
      const missing = await checkBases(principal, dockerfile);
      const image = builtImageName(principal.keyId, dockerfile, contextHashes);
      if (await runtime.imageInfo(image)) return { image };
      return {
        image,
        build: async (onLine) => {
          await pullAndBuild(principal, image, dockerfile, contextHashes, missing, onLine);
          if (!(await runtime.imageInfo(image))) throw new Error(`the engine reported ${image} built, but it is not on this host`);
          log.info({ image }, 'image built for a sandbox');
        },
      };
    },

    /** Numbered pages of the snapshots the caller sees: the general one first, then its own, newest first. */
    list(principal: Principal, q: ListSnapshotsQuery): PaginatedSnapshots {
      let items = [general(), ...visible.all(principal.keyId, principal.admin ? 1 : 0).map(dtoOf)];
      if (q.name) items = items.filter((s) => s.name.toLowerCase().includes(q.name!.toLowerCase()));
      if (q.sourceSandboxId) items = items.filter((s) => s.sourceSandboxId === q.sourceSandboxId);
      if (q.sort) {
        const key = q.sort;
        const sign = q.order === 'asc' ? 1 : -1;
        items.sort((a, b) => sign * String(a[key] ?? '').localeCompare(String(b[key] ?? '')));
      } else if (q.order === 'asc') items.reverse();
      const limit = q.limit ?? 100;
      const page = q.page ?? 1;
      return { items: items.slice((page - 1) * limit, page * limit), total: items.length, page, totalPages: Math.ceil(items.length / limit) };
    },

    get(principal: Principal, idOrName: string): SnapshotDto {
      return isGeneral(idOrName) ? general() : dtoOf(find(principal, idOrName));
    },

    /**
     * Deletes a snapshot: its record at once (its name is free, sandboxes made from it keep running), and the image
     * when Cove pulled or committed it and nothing needs it any more; until then the row waits in `removing`.
     */
    async remove(principal: Principal, idOrName: string): Promise<void> {
      if (isGeneral(idOrName)) throw new CoveError('FORBIDDEN', `${opts.defaultImage} is the general snapshot of this server; it cannot be deleted`);
      const row = find(principal, idOrName);
      if (!row.owns_image) {
        deleteRow.run(row.id);
      } else {
        update(row.id, { state: 'removing' });
        // A pull or build under way ends by removing what it made (see pull, build).
        if (row.state !== 'pulling' && row.state !== 'building' && !(await removeIfUnused(row.image, row.id))) return;
        deleteRow.run(row.id);
      }
      settleLogs(row.id);
      log.info({ snapshot: row.name, image: row.image }, 'snapshot deleted');
    },

    /** `activate` (`inactive` → `active`) and `deactivate` (`active` → `inactive`: creates refuse it). */
    setActive(principal: Principal, idOrName: string, active: boolean): SnapshotDto {
      if (isGeneral(idOrName)) throw new CoveError('FORBIDDEN', `${opts.defaultImage} is the general snapshot of this server; it is always active`);
      const row = find(principal, idOrName);
      const [from, to] = active ? (['inactive', 'active'] as const) : (['active', 'inactive'] as const);
      if (row.state === to) return dtoOf(row);
      if (row.state !== from) throw new CoveError('INVALID_REQUEST', `Snapshot ${row.name} is ${row.state}; only an ${from} snapshot can be ${active ? 'activated' : 'deactivated'}`);
      update(row.id, { state: to });
      return dtoOf(byId.get(row.id)!);
    },

    /**
     * The snapshot's logs (pull progress) as text; with `follow`, a stream that ends when the snapshot is active or
     * failed.
     */
    logs(principal: Principal, idOrName: string, follow: boolean): ReadableStream<Uint8Array> {
      const dto = this.get(principal, idOrName);
      const past = dto.general || live.has(dto.id) ? '' : find(principal, idOrName).logs;
      return live.stream(dto.id, past, follow && !SETTLED.has(dto.state));
    },

    /**
     * The snapshot a create's `snapshot` names, when it names a snapshot of the caller's (any key's for an admin key)
     * or the general one; undefined for a name that is no snapshot (creates then read it as a local image). A snapshot
     * that is not active is refused, naming its state.
     */
    resolve(principal: Principal, name: string): ResolvedSnapshot | undefined {
      if (isGeneral(name)) return { name: opts.defaultImage, image: opts.defaultImage };
      let row = ownNamed.get(principal.keyId, name);
      if (!row && principal.admin) {
        const named = anyNamed.all(name);
        if (named.length === 1) row = named[0];
      }
      if (!row) return undefined;
      if (row.state !== 'active') {
        const why = row.state === 'inactive' ? '; activate it first' : row.state === 'error' ? `: ${row.error_reason ?? 'no reason recorded'}` : '; wait until it is active';
        throw new CoveError('INVALID_REQUEST', `Snapshot ${row.name} is ${row.state}${why}`);
      }
      update(row.id, { last_used_at: now() });
      return runsAs(row);
    },

    /**
     * The snapshot a warm pool is configured for (`--pool NAME=N`): the one of that name among `ownerKeyIds`' (every
     * key's when not given), when exactly one exists and is active; otherwise why the pool waits.
     */
    forPool(name: string, ownerKeyIds?: string[]): ResolvedSnapshot | { waiting: string } {
      const rows = db.prepare<[string], SnapshotRow>(`SELECT * FROM snapshots WHERE name = ? AND state != 'removing'`).all(name).filter((r) => !ownerKeyIds || ownerKeyIds.includes(r.owner_key_id));
      if (rows.length === 0) return { waiting: `no snapshot named ${name}${ownerKeyIds ? ' of that API key' : ''} exists yet` };
      if (rows.length > 1) return { waiting: `API keys ${rows.map((r) => r.owner_key_id).join(', ')} each have a snapshot named ${name}: name one as ${name}@KEY (a key's id or name)` };
      if (rows[0].state !== 'active') return { waiting: `snapshot ${name} is ${rows[0].state}` };
      return runsAs(rows[0]);
    },

    /**
     * Refuses a `sandbox.createSnapshot` name that is a snapshot of the caller's made another way (from an image):
     * the two would answer to one name.
     */
    checkCopyName(principal: Principal, name: string): void {
      const row = ownNamed.get(principal.keyId, name);
      // The general snapshot's name is an image's that is no key's snapshot: the copy's own check refuses it.
      if (row && row.source_sandbox_id === null) {
        throw new CoveError('CONFLICT', `A snapshot named ${name} already exists (made from the image ${row.image}); delete it first or choose another name`);
      }
    },

    /** Records (or replaces) the snapshot `sandbox.createSnapshot` made: an image Cove committed, active. */
    recordCopy(principal: Principal, name: string, image: string, sourceSandboxId: string, size: number | undefined): void {
      const time = now();
      const existing = ownNamed.get(principal.keyId, name);
      if (existing) {
        update(existing.id, { image, state: 'active', source_sandbox_id: sourceSandboxId, size: gb(size), error_reason: null });
        return;
      }
      insert.run({
        id: randomUUID(),
        name,
        owner_key_id: principal.keyId,
        image,
        state: 'active',
        owns_image: 1,
        size: gb(size),
        entrypoint: null,
        error_reason: null,
        source_sandbox_id: sourceSandboxId,
        logs: `Copied the file system of sandbox ${sourceSandboxId}`,
        created_at: time,
        updated_at: time,
        last_used_at: null,
        cpu: null,
        memory: null,
        disk: null,
        run_entrypoint: null,
      } satisfies SnapshotRow);
    },

    /** At start: pulls a restart cut short end in `error`, builds in `build_failed`; deleted snapshots' images are removed when unused. */
    async recover(): Promise<void> {
      db.prepare(`UPDATE snapshots SET state = 'error', error_reason = 'Cove restarted while the image was being pulled; delete the snapshot and create it again', updated_at = ? WHERE state IN ('pending', 'pulling')`).run(now());
      db.prepare(`UPDATE snapshots SET state = 'build_failed', error_reason = 'Cove restarted while the image was being built; delete the snapshot and create it again', updated_at = ? WHERE state = 'building'`).run(now());
      await this.collect();
    },

    /** The API key an image this server built from a Dockerfile is for; undefined for any other image. */
    builtFor(image: string): string | undefined {
      return builtOwner.get(image)?.owner_key_id;
    },

    /** Removes the images of deleted snapshots that no sandbox needs any more, and their rows. */
    async collect(): Promise<void> {
      const removing = db.prepare<[], SnapshotRow>(`SELECT * FROM snapshots WHERE state = 'removing'`).all();
      for (const row of removing) {
        if (await removeIfUnused(row.image, row.id)) deleteRow.run(row.id);
      }
      // Images built for sandbox creates (no snapshot holds them) go once no sandbox or snapshot uses them.
      const used = new Set([...opts.sandboxes().map((r) => r.image), ...db.prepare<[], { image: string }>(`SELECT image FROM snapshots`).all().map((r) => r.image)]);
      for (const { image } of db.prepare<[], { image: string }>('SELECT image FROM built_images').all()) {
        if (used.has(image) || building.has(image)) continue;
        if (await runtime.removeImage(image).catch(() => false)) db.prepare('DELETE FROM built_images WHERE image = ?').run(image);
      }
    },
  };
}
export type SnapshotCatalog = ReturnType<typeof createSnapshotCatalog>;
