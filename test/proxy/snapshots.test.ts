/**
 * Daytona's snapshots API (SDK 0.218 `daytona.snapshot.*`) through a real `cove serve`, real Docker and the published
 * SDK: snapshots of local images, listing and getting them, creating sandboxes from them, deactivating and
 * activating, deleting (with and without sandboxes made from them), keys that may not see or use another key's, a pull
 * that cannot reach its registry, and bad names.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Daytona } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';

let cove: TestCove;
let alice: { key: string; id: string; daytona: Daytona };
let bob: { key: string; id: string; daytona: Daytona };
const suffix = randomBytes(4).toString('hex');
/** A local image only this run has: a tag of the default image. */
const localImage = `cove-test-snap:${suffix}`;
const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
const imageExists = (name: string) => spawnSync('docker', ['image', 'inspect', name], { stdio: 'ignore' }).status === 0;

beforeAll(async () => {
  cove = await startCove({ pool: 0 });
  docker('tag', 'cove-sandbox:latest', localImage);
  alice = cove.newClient('alice');
  bob = cove.newClient('bob');
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  spawnSync('docker', ['rmi', localImage], { stdio: 'ignore' });
}, 120_000);


/** `POST /snapshots/{id}/deactivate` (in the SDK's api-client, not wrapped by the SDK): its status and body. */
async function deactivate(key: string, idOrName: string): Promise<{ status: number; body: { state?: string; message?: string } }> {
  const res = await cove.api(`/snapshots/${encodeURIComponent(idOrName)}/deactivate`, { method: 'POST', key });
  return { status: res.status, body: (await res.json()) as { state?: string; message?: string } };
}

describe('snapshots of local images', () => {
  const name = `snap-${suffix}`;

  it('makes an active snapshot of a local image at once, lists it, and gets it by name and by id', async () => {
    const logs: string[] = [];
    const snapshot = await alice.daytona.snapshot.create({ name, image: localImage }, { onLogs: (l) => logs.push(l) });
    expect(snapshot).toMatchObject({ name, imageName: localImage, state: 'active', general: false, errorReason: null, sourceSandboxId: null });
    expect(snapshot.size).toBeGreaterThan(0);
    expect(logs.at(-1)).toBe(`Created snapshot ${name} (active)`);

    const list = await alice.daytona.snapshot.list();
    expect(list.items.map((s) => s.name)).toEqual(expect.arrayContaining([name, 'cove-sandbox:latest']));
    expect(list.items.find((s) => s.name === 'cove-sandbox:latest')).toMatchObject({ general: true, state: 'active' });
    expect(list).toMatchObject({ total: 2, page: 1, totalPages: 1 });
    const page2 = await alice.daytona.snapshot.list(2, 1);
    expect(page2).toMatchObject({ total: 2, page: 2, totalPages: 2 });
    expect(page2.items).toHaveLength(1);

    expect(await alice.daytona.snapshot.get(name)).toMatchObject({ id: snapshot.id, state: 'active' });
    expect(await alice.daytona.snapshot.get(snapshot.id)).toMatchObject({ name });
    // The SDK's log URL answers with the snapshot's logs.
    const { url } = (await (await cove.api(`/snapshots/${snapshot.id}/build-logs-url`, { key: alice.key })).json()) as { url: string };
    const res = await fetch(`${url}?follow=true`, { headers: { Authorization: `Bearer ${alice.key}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/on this host/);
  });

  it('creates sandboxes from it; deactivated it is refused by name, activated again it works', async () => {
    const sandbox = await alice.daytona.create({ snapshot: name });
    try {
      expect((await sandbox.process.executeCommand('echo from-snapshot')).result.trim()).toBe('from-snapshot');
      expect((await alice.daytona.snapshot.get(name)).lastUsedAt).not.toBeNull();

      expect(await deactivate(alice.key, name)).toMatchObject({ status: 200, body: { state: 'inactive' } });
      expect((await alice.daytona.snapshot.get(name)).state).toBe('inactive');
      await expect(alice.daytona.create({ snapshot: name })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(new RegExp(`Snapshot ${name} is inactive`)) });
      await alice.daytona.snapshot.activate(name);
      expect((await alice.daytona.snapshot.get(name)).state).toBe('active');

      // Deleted while a sandbox runs from it: the record goes (as in Daytona), the sandbox keeps running, and the
      // image, which Cove did not make, stays.
      await alice.daytona.snapshot.delete(name);
      await expect(alice.daytona.snapshot.get(name)).rejects.toMatchObject({ statusCode: 404 });
      expect((await sandbox.process.executeCommand('echo still')).result.trim()).toBe('still');
      expect(imageExists(localImage)).toBe(true);
    } finally {
      await sandbox.delete();
    }
  });

  it('never removes the general snapshot, nor lets a key deactivate it', async () => {
    await expect(alice.daytona.snapshot.delete('cove-sandbox:latest')).rejects.toMatchObject({ statusCode: 403 });
    expect(await deactivate(alice.key, 'cove-sandbox:latest')).toMatchObject({ status: 403, body: { message: expect.stringMatching(/general snapshot/) } });
    const general = await alice.daytona.snapshot.get('cove-sandbox:latest');
    const sandbox = await alice.daytona.create({ snapshot: general.name });
    await sandbox.delete();
    expect(imageExists('cove-sandbox:latest')).toBe(true);
  });
});

describe('keys', () => {
  it("a key cannot see, use, activate or delete another key's snapshot; an admin key sees every one", async () => {
    const name = `alice-only-${suffix}`;
    const snapshot = await alice.daytona.snapshot.create({ name, image: localImage });
    expect((await bob.daytona.snapshot.list()).items.map((s) => s.name)).not.toContain(name);
    await expect(bob.daytona.snapshot.get(name)).rejects.toMatchObject({ statusCode: 404 });
    await expect(bob.daytona.snapshot.get(snapshot.id)).rejects.toMatchObject({ statusCode: 404 });
    await expect(bob.daytona.snapshot.delete(snapshot.id)).rejects.toMatchObject({ statusCode: 404 });
    await expect(bob.daytona.snapshot.activate(name)).rejects.toMatchObject({ statusCode: 404 });
    // Bob's create reads the name as a local image's, and there is none.
    await expect(bob.daytona.create({ snapshot: name })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/does not exist/) });
    // Names are per key: bob may have one of the same name.
    await bob.daytona.snapshot.create({ name, image: localImage });
    await expect(alice.daytona.snapshot.create({ name, image: localImage })).rejects.toMatchObject({ statusCode: 409 });

    const admin = cove.daytona();
    const all = (await admin.snapshot.list()).items.filter((s) => s.name === name);
    expect(all.map((s) => s.organizationId).sort()).toEqual([alice.id, bob.id].sort());
    await admin.snapshot.delete(snapshot.id);
    await bob.daytona.snapshot.delete(name);
    expect((await admin.snapshot.list()).items.filter((s) => s.name === name)).toEqual([]);
  });
});

describe('copies of sandboxes and pulled images', () => {
  it('lists a sandbox.createSnapshot copy with its source, and deleting it removes the image Cove committed once no sandbox uses it', async () => {
    const source = await alice.daytona.create();
    const name = `copy-${suffix}`;
    try {
      await source.process.executeCommand('echo copied > ~/marker');
      const taken = `taken-${suffix}`;
      await alice.daytona.snapshot.create({ name: taken, image: localImage });
      await expect(source.createSnapshot(taken)).rejects.toMatchObject({ statusCode: 409, message: expect.stringMatching(/already exists \(made from the image/) });
      await alice.daytona.snapshot.delete(taken);
      await source.createSnapshot(name);
      expect((await alice.daytona.snapshot.list({ sourceSandboxId: source.id })).items.map((s) => s.name)).toEqual([name]);
    } finally {
      await source.delete();
    }
    const copy = await alice.daytona.snapshot.get(name);
    expect(copy).toMatchObject({ state: 'active', sourceSandboxId: source.id, imageName: `${name}:latest` });
    // An image snapshot cannot take the copy's name, nor a copy an image snapshot's.
    await expect(alice.daytona.snapshot.create({ name, image: localImage })).rejects.toMatchObject({ statusCode: 409 });

    const sandbox = await alice.daytona.create({ snapshot: name });
    try {
      expect((await sandbox.process.executeCommand('cat ~/marker')).result.trim()).toBe('copied');
      await alice.daytona.snapshot.delete(name);
      await expect(alice.daytona.snapshot.get(name)).rejects.toMatchObject({ statusCode: 404 });
      // A sandbox runs from it: the image stays until that sandbox is deleted.
      expect(imageExists(`${name}:latest`)).toBe(true);
    } finally {
      await sandbox.delete();
    }
    for (let i = 0; i < 100 && imageExists(`${name}:latest`); i++) await new Promise((r) => setTimeout(r, 100));
    expect(imageExists(`${name}:latest`)).toBe(false);
  });

  it('a pull that cannot reach its registry ends in error with the reason, and that snapshot cannot be used', async () => {
    const name = `unreachable-${suffix}`;
    const logs: string[] = [];
    await expect(alice.daytona.snapshot.create({ name, image: '127.0.0.1:1/none:latest' }, { onLogs: (l) => logs.push(l) })).rejects.toThrow(
      new RegExp(`Failed to create snapshot. Name: ${name} Reason: .*127\\.0\\.0\\.1:1`),
    );
    const snapshot = await alice.daytona.snapshot.get(name);
    expect(snapshot).toMatchObject({ state: 'error', errorReason: expect.stringMatching(/pull 127\.0\.0\.1:1\/none:latest/) });
    await expect(alice.daytona.create({ snapshot: name })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(new RegExp(`Snapshot ${name} is error`)) });
    const res = await cove.api(`/snapshots/${snapshot.id}/build-logs`, { key: alice.key });
    expect(await res.text()).toMatch(/127\.0\.0\.1:1/);
    await alice.daytona.snapshot.delete(name);
  });
});

describe('declarative images', () => {
  it('builds one with live logs into a snapshot that creates use; the same one again is at once; a failing step ends build_failed', async () => {
    const { Image } = await import('@daytonaio/sdk');
    const image = Image.base(localImage).runCommands(`echo built-${suffix} > /tmp/built.txt`);
    const lines: string[] = [];
    const built = await alice.daytona.snapshot.create({ name: `built-${suffix}`, image }, { onLogs: (line) => lines.push(line) });
    expect(built.state).toBe('active');
    expect(lines.join('\n')).toMatch(new RegExp(`echo built-${suffix}`));
    const sandbox = await alice.daytona.create({ snapshot: `built-${suffix}` });
    try {
      expect((await sandbox.process.executeCommand('cat /tmp/built.txt')).result).toBe(`built-${suffix}\n`);
    } finally {
      await sandbox.delete();
    }
    // The image is Alice's: Bob can neither create from it nor build on it.
    await expect(bob.daytona.create({ image: built.imageName! })).rejects.toMatchObject({ statusCode: 400 });
    await expect(bob.daytona.create({ image: Image.base(built.imageName!).runCommands('true') })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/another API key/) });
    // The same Dockerfile again: the image is there, nothing to build.
    const again = await alice.daytona.snapshot.create({ name: `again-${suffix}`, image });
    expect(again.state).toBe('active');
    expect(again.imageName).toBe(built.imageName);

    // A create with a declarative image builds it first (SDK create({ image })).
    const direct = await alice.daytona.create({ image: Image.base(localImage).runCommands(`echo direct-${suffix} > /tmp/direct.txt`) });
    try {
      expect((await direct.process.executeCommand('cat /tmp/direct.txt')).result).toBe(`direct-${suffix}\n`);
    } finally {
      await direct.delete();
    }
    // The image built for it goes once no sandbox uses it.
    expect(direct.snapshot).toMatch(/^cove-build:/);
    for (let i = 0; i < 100 && imageExists(direct.snapshot!); i++) await new Promise((r) => setTimeout(r, 100));
    expect(imageExists(direct.snapshot!)).toBe(false);
    // One that cannot be built: the create (answered pending_build) rejects once the sandbox is build_failed.
    await expect(alice.daytona.create({ name: `exit5-${suffix}`, image: Image.base(localImage).runCommands('exit 5') })).rejects.toThrow(/failed to start with status: build_failed/);
    const unbuilt = await alice.daytona.get(`exit5-${suffix}`);
    expect(unbuilt).toMatchObject({ state: 'build_failed', errorReason: expect.stringMatching(/non-zero code: 5/) });
    await unbuilt.delete();

    // A step that fails: build_failed with the reason.
    for (const [name, step, reason] of [[`fails-${suffix}`, 'exit 3', /returned a non-zero code: 3/]] as const) {
      await expect(alice.daytona.snapshot.create({ name, image: Image.base(localImage).runCommands(step) })).rejects.toThrow();
      const failed = await alice.daytona.snapshot.get(name);
      expect(failed.state).toBe('build_failed');
      expect(failed.errorReason).toMatch(reason);
      await expect(alice.daytona.create({ snapshot: name })).rejects.toMatchObject({ statusCode: 400 });
      await alice.daytona.snapshot.delete(name);
    }
    await alice.daytona.snapshot.delete(`again-${suffix}`);
    await alice.daytona.snapshot.delete(`built-${suffix}`);
    // The built image goes with the snapshot that made it.
    expect(imageExists(built.imageName!)).toBe(false);
  }, 300_000);
});

describe('refusals', () => {
  it('refuses bad names and what Cove cannot honour, saying what', async () => {
    for (const bad of ['Bad Name', 'UPPER', '', 'a@sha256:x', '-x']) {
      await expect(alice.daytona.snapshot.create({ name: bad, image: localImage }), bad).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/Invalid snapshot name/) });
    }
    await expect(alice.daytona.snapshot.create({ name: `bad-image-${suffix}`, image: 'Not An Image' })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/Invalid image name/) });
    const { Image } = await import('@daytonaio/sdk');
    const elsewhere = await cove.api('/snapshots', { method: 'POST', key: alice.key, body: JSON.stringify({ name: `region-${suffix}`, imageName: localImage, regionId: 'eu' }) });
    expect(elsewhere.status).toBe(400);
    expect((await elsewhere.json()).message).toMatch(/one region, local/);
    // A snapshot's sandboxes get its resources: one over the key's per-sandbox maximum could never be made.
    await expect(alice.daytona.snapshot.create({ name: `res-${suffix}`, image: localImage, resources: { cpu: 5 } })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/cpu 5 is over the maximum of 4 vCPU per sandbox/) });
    await expect(alice.daytona.snapshot.create({ name: `res-${suffix}`, image: localImage, resources: { memory: 9 } })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/memory 9 is over the maximum of 8 GiB/) });
    // A Dockerfile that is one FROM line is that image.
    const base = await alice.daytona.snapshot.create({ name: `base-${suffix}`, image: Image.base(localImage) });
    expect(base).toMatchObject({ state: 'active', imageName: localImage });
    await alice.daytona.snapshot.delete(base.id);
    expect(imageExists(localImage)).toBe(true);
    expect((await alice.daytona.snapshot.list()).items.map((s) => s.name)).toEqual(['cove-sandbox:latest']);
  });
});
