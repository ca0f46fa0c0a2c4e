/**
 * Daytona's registries (`/docker-registry`, the api-client's DockerRegistryApi routes and shapes) through a real
 * `cove serve`, real Docker, the published SDK and real registries on loopback (Debian's docker-registry, one open and
 * one behind htpasswd credentials): pulls of snapshots and of creates with and without credentials, wrong ones, keys
 * that may not use another key's registry or the image it pulled, default registries, and bad input.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Daytona } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../../images/src/busybox';
import { startCove, type TestCove } from '../helpers/cove';
import { startRegistry, type TestRegistry } from '../helpers/registry';

let cove: TestCove;
let open: TestRegistry;
let locked: TestRegistry;
let alice: { key: string; id: string; daytona: Daytona };
let bob: { key: string; id: string; daytona: Daytona };
const suffix = randomBytes(4).toString('hex');
const password = `pw-${randomBytes(8).toString('hex')}`;
/** expect.stringMatching, typed. */
const matching = (re: RegExp): string => expect.stringMatching(re) as string;
const imageExists = (name: string) => spawnSync('docker', ['image', 'inspect', name], { stdio: 'ignore' }).status === 0;

beforeAll(async () => {
  await buildBusyboxImage();
  [cove, open, locked] = await Promise.all([startCove({ pool: 0 }), startRegistry(), startRegistry({ auth: { username: 'cove', password } })]);
  for (const [name, set] of [
    ['alice', (k: typeof alice) => (alice = k)],
    ['bob', (k: typeof bob) => (bob = k)],
  ] as const) {
    const made = cove.newKey(name);
    set({ ...made, daytona: cove.daytona(made.key) });
  }
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  await Promise.all([open?.close(), locked?.close()]);
}, 120_000);

interface RegistryDto {
  id: string;
  name: string;
  url: string;
  username: string;
  project: string;
  registryType: string;
  isDefault: boolean;
  organizationId: string;
}

/** A request to `/docker-registry…` as the api-client's DockerRegistryApi sends it: its status, body and raw text. */
async function registryApi(key: string, method: string, p = '', body?: object): Promise<{ status: number; text: string; body: RegistryDto & RegistryDto[] & { message?: string } }> {
  const res = await cove.api(`/docker-registry${p}`, { method, key, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  return { status: res.status, text, body: (text ? JSON.parse(text) : undefined) as RegistryDto & RegistryDto[] & { message?: string } };
}

/** `createRegistry` with the body the api-client (0.143, which has registryType) sends. */
async function createRegistry(key: string, fields: { name: string; url: string; username: string; password: string; project?: string; isDefault?: boolean }): Promise<RegistryDto> {
  const res = await registryApi(key, 'POST', '', { registryType: 'organization', ...fields });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

describe('registry routes', () => {
  it('creates, lists, gets, updates and deletes registries per key, never answering the password', async () => {
    const made = await createRegistry(alice.key, { name: `reg-${suffix}`, url: `http://${locked.host}/`, username: 'cove', password, project: 'team' });
    expect(made).toMatchObject({ name: `reg-${suffix}`, url: locked.host, username: 'cove', project: 'team', registryType: 'organization', isDefault: false, organizationId: alice.id });
    expect(made).not.toHaveProperty('password');

    const listed = await registryApi(alice.key, 'GET');
    expect(listed.body.map((r) => r.id)).toEqual([made.id]);
    expect((await registryApi(bob.key, 'GET')).body).toEqual([]);
    expect((await registryApi(cove.apiKey, 'GET')).body.map((r) => r.id)).toContain(made.id);
    expect((await registryApi(alice.key, 'GET', `/${made.id}`)).body).toMatchObject({ id: made.id, project: 'team' });
    // Another key's registry is as absent as a missing one.
    for (const [method, body] of [['GET'], ['DELETE'], ['PATCH', { name: 'x', url: locked.host, username: 'u' }]] as const) {
      expect((await registryApi(bob.key, method, `/${made.id}`, body)).status, method).toBe(404);
    }

    const updated = await registryApi(alice.key, 'PATCH', `/${made.id}`, { name: `renamed-${suffix}`, url: locked.host, username: 'cove', project: '' });
    expect(updated.body).toMatchObject({ name: `renamed-${suffix}`, project: '' });
    for (const res of [listed, updated]) expect(res.text).not.toContain(password);

    expect((await registryApi(alice.key, 'DELETE', `/${made.id}`)).status).toBe(204);
    expect((await registryApi(alice.key, 'GET', `/${made.id}`)).status).toBe(404);
    expect(cove.output()).not.toContain(password);
  });

  it('refuses bad input naming the field, and what only an admin key may do', async () => {
    const good = { name: 'r', url: locked.host, username: 'u', password: 'p', registryType: 'organization' };
    for (const [body, status, why] of [
      [{ ...good, url: 'ftp://x.example' }, 400, /^url: .*scheme/],
      [{ ...good, url: 'host.example:99999' }, 400, /^url: .*port 99999/],
      [{ ...good, url: 'user:pw@host.example' }, 400, /^url: /],
      [{ ...good, project: 'Bad Project' }, 400, /^project: /],
      [{ ...good, username: undefined }, 400, /username/],
      [{ ...good, username: ' ' }, 400, /^username: /],
      [{ ...good, password: '' }, 400, /^password: /],
      [{ ...good, name: '' }, 400, /^name: /],
      [{ ...good, registryType: 'internal' }, 400, /^registryType "internal"/],
      [{ ...good, isDefault: true }, 403, /^isDefault: only an admin key/],
    ] as const) {
      const res = await registryApi(alice.key, 'POST', '', body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.message, JSON.stringify(body)).toMatch(why);
    }
    expect((await registryApi(alice.key, 'GET')).body).toEqual([]);
    const mine = await createRegistry(alice.key, { name: 'mine', url: locked.host, username: 'u', password: 'p' });
    expect((await registryApi(alice.key, 'POST', `/${mine.id}/set-default`)).status).toBe(403);
    expect((await registryApi(alice.key, 'PATCH', `/${mine.id}`, { name: 'mine', url: 'not a url', username: 'u' })).body.message).toMatch(/^url: /);
    expect((await registryApi(alice.key, 'GET', '/registry-push-access')).status).toBe(400);
    expect((await registryApi(alice.key, 'DELETE', `/${mine.id}`)).status).toBe(204);
  });
});

describe('pulls', () => {
  it('pulls a snapshot from an open registry with progress in its logs; sandboxes of it run', async () => {
    const ref = open.push(BUSYBOX_IMAGE, `cove-test-open-${suffix}`);
    const logs: string[] = [];
    // The SDK follows the logs of a declarative image only: a one-line FROM is that image, pulled.
    const { Image } = await import('@daytonaio/sdk');
    const snapshot = await alice.daytona.snapshot.create({ name: `open-${suffix}`, image: Image.base(ref) }, { onLogs: (l) => logs.push(l) });
    expect(snapshot).toMatchObject({ state: 'active', imageName: ref });
    expect(logs.join('\n')).toMatch(/Pull complete|Download complete|Pulled/);
    const sandbox = await alice.daytona.create({ snapshot: `open-${suffix}` });
    try {
      expect((await sandbox.process.executeCommand('echo from-open-registry')).result.trim()).toBe('from-open-registry');
    } finally {
      await sandbox.delete();
    }
    await alice.daytona.snapshot.delete(`open-${suffix}`);
  });

  it('a registry behind credentials: none or wrong ones end the snapshot in error with the reason; the right ones pull it', async () => {
    const ref = locked.push(BUSYBOX_IMAGE, `cove-test-locked-${suffix}`);
    await expect(alice.daytona.snapshot.create({ name: `none-${suffix}`, image: ref })).rejects.toThrow(/no basic auth credentials|unauthorized/);
    expect((await alice.daytona.snapshot.get(`none-${suffix}`)).errorReason).toMatch(/anonymously: no registry of this API key, nor a default one, matches 127\.0\.0\.1/);

    const registry = await createRegistry(alice.key, { name: `locked-${suffix}`, url: locked.host, username: 'cove', password: 'wrong-password' });
    await expect(alice.daytona.snapshot.create({ name: `wrong-${suffix}`, image: ref })).rejects.toThrow(/unauthorized|authentication required/);
    const wrong = await alice.daytona.snapshot.get(`wrong-${suffix}`);
    expect(wrong).toMatchObject({ state: 'error', errorReason: matching(new RegExp(`credentials of registry locked-${suffix}`)) });
    expect(wrong.errorReason).not.toContain('wrong-password');
    expect(imageExists(ref)).toBe(false);

    // The right password (a PATCH without one later keeps it).
    expect((await registryApi(alice.key, 'PATCH', `/${registry.id}`, { name: registry.name, url: locked.host, username: 'cove', password })).status).toBe(200);
    expect((await registryApi(alice.key, 'PATCH', `/${registry.id}`, { name: registry.name, url: locked.host, username: 'cove' })).status).toBe(200);
    const snapshot = await alice.daytona.snapshot.create({ name: `locked-${suffix}`, image: ref });
    expect(snapshot.state).toBe('active');
    expect(await (await cove.api(`/snapshots/${snapshot.id}/build-logs`, { key: alice.key })).text()).toMatch(/Pull complete|Download complete|Pulled/);
    const sandbox = await alice.daytona.create({ snapshot: `locked-${suffix}` });
    try {
      expect((await sandbox.process.executeCommand('echo from-locked-registry')).result.trim()).toBe('from-locked-registry');
    } finally {
      await sandbox.delete();
    }

    // Bob has no credentials: the image on this host is not his to use, as a snapshot or as a create's image.
    await expect(bob.daytona.snapshot.create({ name: `bobs-${suffix}`, image: ref })).rejects.toMatchObject({ statusCode: 400, message: matching(/pulled with another API key's registry credentials.*no basic auth credentials/) });
    await expect(bob.daytona.create({ image: ref })).rejects.toMatchObject({ statusCode: 400, message: matching(/pulled with another API key's registry credentials/) });
    expect(cove.output()).not.toContain(password);

    for (const name of [`none-${suffix}`, `wrong-${suffix}`, `locked-${suffix}`]) await alice.daytona.snapshot.delete(name);
    expect((await registryApi(alice.key, 'DELETE', `/${registry.id}`)).status).toBe(204);
  });

  it("a create of an image not on this host pulls it with the key's credentials, and the image goes with the sandbox", async () => {
    const ref = locked.push(BUSYBOX_IMAGE, `cove-test-direct-${suffix}`);
    await expect(alice.daytona.create({ image: ref })).rejects.toMatchObject({ statusCode: 400, message: matching(/is not on this host and could not be pulled: .*no basic auth credentials/) });
    const registry = await createRegistry(alice.key, { name: `direct-${suffix}`, url: locked.host, username: 'cove', password });
    const sandbox = await alice.daytona.create({ image: ref });
    try {
      expect((await sandbox.process.executeCommand('echo pulled-for-create')).result.trim()).toBe('pulled-for-create');
      expect(imageExists(ref)).toBe(true);
    } finally {
      await sandbox.delete();
    }
    for (let i = 0; i < 100 && imageExists(ref); i++) await new Promise((r) => setTimeout(r, 100));
    expect(imageExists(ref)).toBe(false);

    // A declarative image whose base is there: the build pulls it first with the same credentials.
    const base = locked.push(BUSYBOX_IMAGE, `cove-test-build-base-${suffix}`);
    const { Image } = await import('@daytonaio/sdk');
    const built = await alice.daytona.create({ image: Image.base(base).runCommands('echo built-on-a-private-base > /built') });
    try {
      expect((await built.process.executeCommand('cat /built')).result.trim()).toBe('built-on-a-private-base');
    } finally {
      await built.delete();
    }
    // Bob may not build on it: the base on this host was pulled with Alice's credentials.
    await expect(bob.daytona.create({ image: Image.base(base).runCommands('true') })).rejects.toMatchObject({ statusCode: 400, message: matching(/another API key/) });
    expect((await registryApi(alice.key, 'DELETE', `/${registry.id}`)).status).toBe(204);
  });

  it("a default registry (an admin key's) serves every key's pulls from its host", async () => {
    const ref = locked.push(BUSYBOX_IMAGE, `cove-test-default-${suffix}`);
    const shared = await createRegistry(cove.apiKey, { name: `shared-${suffix}`, url: locked.host, username: 'cove', password, isDefault: true });
    expect(shared.isDefault).toBe(true);
    // Bob cannot see it, but his pull uses it.
    expect((await registryApi(bob.key, 'GET')).body).toEqual([]);
    const snapshot = await bob.daytona.snapshot.create({ name: `via-default-${suffix}`, image: ref });
    expect(snapshot.state).toBe('active');
    await bob.daytona.snapshot.delete(snapshot.id);
    // Another default for the host takes its place.
    const other = await createRegistry(cove.apiKey, { name: `other-${suffix}`, url: locked.host, username: 'cove', password });
    expect((await registryApi(cove.apiKey, 'POST', `/${other.id}/set-default`)).body.isDefault).toBe(true);
    expect((await registryApi(cove.apiKey, 'GET', `/${shared.id}`)).body.isDefault).toBe(false);
    for (const id of [shared.id, other.id]) expect((await registryApi(cove.apiKey, 'DELETE', `/${id}`)).status).toBe(204);
  });
});
