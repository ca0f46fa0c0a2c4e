import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { CoveError } from '../../../lib/errors';
import type { CreateRegistryRequest, RegistryDto, RegistryType, UpdateRegistryRequest } from '../../../wire/registries';
import type { Principal } from '../auth/api-keys';
import { RuntimeError, type DockerRuntime, type RegistryAuth } from '../runtime/types';
import { now, type Db } from '../store/db';
import { coverage, parseRegistryUrl, placeOfImage, projectProblem, serverAddress, type RegistryPlace } from './refs';

interface RegistryServiceOptions {
  db: Db;
  runtime: Pick<DockerRuntime, 'pullImage' | 'removeImage'>;
  log: Logger;
}

interface Row {
  id: string;
  name: string;
  owner_key_id: string;
  url: string;
  username: string;
  password: string;
  project: string;
  registry_type: RegistryType;
  is_default: number;
  created_at: string;
  updated_at: string;
}

/** Registries one API key may hold, as in Daytona. */
const MAX_PER_KEY = 100;

/** The DTO of a row: everything but the password. */
const toDto = (r: Row): RegistryDto => ({
  id: r.id,
  name: r.name,
  url: r.url,
  username: r.username,
  project: r.project,
  registryType: r.registry_type,
  organizationId: r.owner_key_id,
  isDefault: r.is_default === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** The host and path prefix (URL path, then project) a registry's credentials cover. */
function placeOf(r: Pick<Row, 'url' | 'project'>): RegistryPlace | undefined {
  const url = parseRegistryUrl(r.url);
  if ('problem' in url) return undefined;
  return { host: url.host, path: [url.path, r.project].filter(Boolean).join('/') };
}

/** A create's or update's url and project, checked and normalized (`host[:port][/path]`); a 400 names the field. */
function checkedPlace(url: string, project: string | undefined): { url: string; project: string } {
  const parsed = parseRegistryUrl(url);
  if ('problem' in parsed) throw new CoveError('INVALID_REQUEST', `url: ${JSON.stringify(url.slice(0, 200))} is not a registry URL: ${parsed.problem}`);
  const cleanProject = (project ?? '').trim().replace(/^\/+|\/+$/g, '');
  const bad = projectProblem(cleanProject);
  if (bad) throw new CoveError('INVALID_REQUEST', `project: ${bad}`);
  return { url: parsed.path ? `${parsed.host}/${parsed.path}` : parsed.host, project: cleanProject };
}

function checkedName(name: string): string {
  const trimmed = name.trim();
  if (!trimmed) throw new CoveError('INVALID_REQUEST', 'name: a registry needs a name');
  return trimmed;
}

/**
 * Container registries (Daytona's `/docker-registry`): credentials per API key (admin keys see every key's) that the
 * engine's pulls use when an image's registry host (and path, for a registry with a path or project) matches. The
 * caller's own registries come first, then the default ones, which an admin key names and whose credentials serve
 * every key's pulls from their host. Passwords are stored for the engine and never answered nor logged. An image
 * pulled with a key's own credentials is that key's: another key gets it only once a pull with its own credentials
 * (or the default's, or none) succeeds. Knows nothing of HTTP.
 */
export function createRegistryService(opts: RegistryServiceOptions) {
  const { db, runtime, log } = opts;
  const q = {
    get: db.prepare<[string], Row>('SELECT * FROM registries WHERE id = ?'),
    all: db.prepare<[], Row>('SELECT * FROM registries ORDER BY created_at DESC, id'),
    owned: db.prepare<[string], Row>('SELECT * FROM registries WHERE owner_key_id = ? ORDER BY created_at DESC, id'),
    count: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM registries WHERE owner_key_id = ?'),
    defaults: db.prepare<[], Row>('SELECT * FROM registries WHERE is_default = 1 ORDER BY created_at, id'),
    insert: db.prepare(
      `INSERT INTO registries (id, name, owner_key_id, url, username, password, project, registry_type, is_default, created_at, updated_at)
       VALUES (@id, @name, @owner_key_id, @url, @username, @password, @project, @registry_type, 0, @created_at, @created_at)`,
    ),
    update: db.prepare(`UPDATE registries SET name = @name, url = @url, username = @username, password = @password, project = @project, updated_at = @updated_at WHERE id = @id`),
    setDefault: db.prepare<[number, string, string]>('UPDATE registries SET is_default = ?, updated_at = ? WHERE id = ?'),
    remove: db.prepare<[string]>('DELETE FROM registries WHERE id = ?'),
    holders: db.prepare<[string], { key_id: string }>('SELECT key_id FROM private_images WHERE image = ?'),
    hold: db.prepare<[string, string]>('INSERT OR IGNORE INTO private_images (image, key_id) VALUES (?, ?)'),
    sandboxPull: db.prepare<[string]>('INSERT OR IGNORE INTO sandbox_pulls (image) VALUES (?)'),
    sandboxPulls: db.prepare<[], { image: string }>('SELECT image FROM sandbox_pulls'),
    dropSandboxPull: db.prepare<[string]>('DELETE FROM sandbox_pulls WHERE image = ?'),
  };

  /** The caller's registry of that id (any key's for an admin key), or a 404 that reveals no other key's. */
  function visible(principal: Principal, id: string): Row {
    const row = q.get.get(id);
    if (!row || !(principal.admin || row.owner_key_id === principal.keyId)) throw new CoveError('NOT_FOUND', `Registry ${id.slice(0, 200)} not found`);
    return row;
  }

  /** The most specific registry among `rows` that covers the image, if any. */
  function best(rows: Row[], image: RegistryPlace): Row | undefined {
    let found: Row | undefined;
    let score = -1;
    for (const row of rows) {
      const place = placeOf(row);
      const s = place ? coverage(place, image) : -1;
      if (s > score) [found, score] = [row, s];
    }
    return found;
  }

  /** The registry whose credentials pull `image` for the caller: its own first, then a default one. */
  function chosen(principal: Principal, image: string): Row | undefined {
    const place = placeOfImage(image);
    return best(q.owned.all(principal.keyId), place) ?? best(q.defaults.all(), place);
  }

  const authOf = (row: Row): RegistryAuth => ({ username: row.username, password: row.password, serveraddress: serverAddress(placeOf(row)!.host) });

  /**
   * Pulls an image for the caller with the credentials that match it; rejects with the engine's reason and which
   * credentials were used (a registry's name, never its password). A pull with the key's own credentials makes the
   * image one that other keys must pull themselves (see mayUse).
   */
  async function pull(principal: Principal, image: string, onLine: (line: string) => void): Promise<void> {
    const row = chosen(principal, image);
    try {
      await runtime.pullImage(image, onLine, row ? authOf(row) : undefined);
    } catch (err) {
      const how = row ? `with the credentials of registry ${row.name} (${row.url})` : `anonymously: no registry of this API key, nor a default one, matches ${placeOfImage(image).host}`;
      const code = err instanceof RuntimeError ? err.code : 'DOCKER_ERROR';
      // docker-modem's "(HTTP code 500) server error - " says nothing the engine's own words do not.
      const reason = (err as Error).message.replace(/\(HTTP code \d+\) [a-z ]+ - /, '').trim();
      throw new RuntimeError(code, `${reason} (pulled ${how})`);
    }
    const own = row && row.owner_key_id === principal.keyId && !row.is_default;
    if (own || q.holders.all(image).length) q.hold.run(image, principal.keyId);
    log.info({ image, registryId: row?.id }, 'image pulled');
  }

  /**
   * Makes a registry the default one for its host (admin keys only): its credentials then serve the pulls of every
   * key that has no registry of its own for the image. The previous default of that host stops being one.
   */
  function setDefault(principal: Principal, id: string): RegistryDto {
    const row = visible(principal, id);
    if (!principal.admin) throw new CoveError('FORBIDDEN', "Only an admin key may make a registry the default (its credentials serve every key's pulls)");
    const host = placeOf(row)?.host;
    const time = now();
    db.transaction(() => {
      for (const other of q.defaults.all()) if (placeOf(other)?.host === host) q.setDefault.run(0, time, other.id);
      q.setDefault.run(1, time, row.id);
    })();
    log.info({ registryId: row.id }, 'registry made the default for its host');
    return toDto(q.get.get(row.id)!);
  }

  return {
    create(principal: Principal, req: CreateRegistryRequest): RegistryDto {
      const name = checkedName(req.name);
      if (req.registryType !== undefined && req.registryType !== 'organization') {
        throw new CoveError('INVALID_REQUEST', `registryType ${JSON.stringify(req.registryType.slice(0, 40))}: only organization registries can be created (a Cove server has no internal, transient or backup registries)`);
      }
      if (req.isDefault && !principal.admin) throw new CoveError('FORBIDDEN', "isDefault: only an admin key may make a default registry (its credentials serve every key's pulls)");
      const place = checkedPlace(req.url, req.project);
      if (!req.username.trim()) throw new CoveError('INVALID_REQUEST', 'username: a registry needs a username');
      if (!req.password) throw new CoveError('INVALID_REQUEST', 'password: a registry needs a password (or token)');
      if (q.count.get(principal.keyId)!.n >= MAX_PER_KEY) throw new CoveError('FORBIDDEN', `An API key may have at most ${MAX_PER_KEY} registries; delete one first`);
      const id = randomUUID();
      q.insert.run({ id, name, owner_key_id: principal.keyId, ...place, username: req.username.trim(), password: req.password, registry_type: 'organization', created_at: now() });
      if (req.isDefault) setDefault(principal, id);
      log.info({ registryId: id, url: place.url }, 'registry created');
      return toDto(q.get.get(id)!);
    },

    /** The registries a principal may see: its own, or every one for an admin key; newest first. */
    list: (principal: Principal): RegistryDto[] => (principal.admin ? q.all.all() : q.owned.all(principal.keyId)).map(toDto),

    get: (principal: Principal, id: string): RegistryDto => toDto(visible(principal, id)),

    update(principal: Principal, id: string, req: UpdateRegistryRequest): RegistryDto {
      const row = visible(principal, id);
      const name = checkedName(req.name);
      const place = checkedPlace(req.url, req.project ?? row.project);
      if (!req.username.trim()) throw new CoveError('INVALID_REQUEST', 'username: a registry needs a username');
      q.update.run({ id: row.id, name, ...place, username: req.username.trim(), password: req.password || row.password, updated_at: now() });
      log.info({ registryId: row.id, url: place.url }, 'registry updated');
      return toDto(q.get.get(row.id)!);
    },

    remove(principal: Principal, id: string): void {
      const row = visible(principal, id);
      q.remove.run(row.id);
      log.info({ registryId: row.id }, 'registry deleted');
    },

    setDefault,

    pull,

    /**
     * Whether the caller may use an image that is on this host: yes, unless another key pulled it with its own
     * credentials; then only once a pull with the caller's (own, default, or none) succeeds, else a 400 with the
     * registry's reason. Admin keys may use every image.
     */
    async mayUse(principal: Principal, image: string): Promise<boolean> {
      if (principal.admin) return true;
      const holders = q.holders.all(image).map((r) => r.key_id);
      if (!holders.length || holders.includes(principal.keyId)) return true;
      try {
        await pull(principal, image, () => {});
      } catch (err) {
        if (err instanceof RuntimeError && err.code === 'DOCKER_UNAVAILABLE') throw new CoveError('RUNTIME_UNAVAILABLE', (err as Error).message);
        throw new CoveError('INVALID_REQUEST', `Image ${image} was pulled with another API key's registry credentials, and pulling it with yours failed: ${(err as Error).message}`);
      }
      q.hold.run(image, principal.keyId);
      return true;
    },

    /**
     * Pulls the image of a sandbox create that is not on this host (with the caller's credentials); it is removed
     * again once no sandbox or snapshot uses it (collect). A failed pull is a 400 with the engine's reason.
     */
    async pullForSandbox(principal: Principal, image: string): Promise<void> {
      try {
        await pull(principal, image, () => {});
      } catch (err) {
        if (err instanceof RuntimeError && err.code === 'DOCKER_UNAVAILABLE') throw new CoveError('RUNTIME_UNAVAILABLE', (err as Error).message);
        throw new CoveError('IMAGE_NOT_FOUND', `Image ${image} is not on this host and could not be pulled: ${(err as Error).message}`);
      }
      q.sandboxPull.run(image);
    },

    /** Removes the images pulled for sandbox creates that nothing uses any more. */
    async collect(inUse: (image: string) => boolean): Promise<void> {
      for (const { image } of q.sandboxPulls.all()) {
        if (inUse(image)) continue;
        const removed = await runtime.removeImage(image).catch((err: Error) => {
          log.error({ image, err: err.message }, 'could not remove an image pulled for a sandbox');
          return false;
        });
        if (removed) q.dropSandboxPull.run(image);
      }
    },
  };
}
export type RegistryService = ReturnType<typeof createRegistryService>;
