/**
 * Volumes through the published Daytona SDK against a real `cove serve`: Docker named volumes created, listed, got,
 * mounted into sandboxes (data outliving them, shared between them, kept through stop/start and archive/restore),
 * refused when in use, per API key, and deleted with their Docker volume.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';

let cove: TestCove;
beforeAll(async () => {
  cove = await startCove({ pool: 1 });
}, 20 * 60_000);
let restartedDataDir: string | undefined;
afterAll(async () => {
  await cove?.destroy();
  if (restartedDataDir) rmSync(restartedDataDir, { recursive: true, force: true });
});

const keysCli = (...args: string[]) =>
  execFileSync(process.execPath, [COVE_BIN, 'keys', ...args, '--data-dir', cove.dataDir], { encoding: 'utf8' }).trim();
const dockerVolumeExists = (id: string): boolean => {
  try {
    execFileSync('docker', ['volume', 'inspect', `cove-vol-${id}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const run = async (sb: Sandbox, command: string) => {
  const res = await sb.process.executeCommand(command);
  expect(res.exitCode, res.result).toBe(0);
  return res.result;
};

describe('volumes', () => {
  const name = `data-${Date.now()}`;
  const made: Sandbox[] = [];
  afterAll(async () => {
    for (const sb of made) await cove.api(`/sandbox/${sb.id}`, { method: 'DELETE' }).catch(() => {});
  });

  it('creates, lists and gets volumes by name, and get(name, true) creates one', async () => {
    const daytona = cove.daytona();
    const vol = await daytona.volume.create(name);
    expect(vol).toMatchObject({ name, state: 'ready', errorReason: null });
    expect(dockerVolumeExists(vol.id)).toBe(true);
    expect((await daytona.volume.list()).map((v) => v.id)).toContain(vol.id);
    expect((await daytona.volume.get(name)).id).toBe(vol.id);
    expect(await (await cove.api(`/volumes/${vol.id}`)).json()).toMatchObject({ id: vol.id, name });

    const other = `${name}-auto`;
    await expect(daytona.volume.get(other)).rejects.toMatchObject({ statusCode: 404 });
    const auto = await daytona.volume.get(other, true);
    expect(auto).toMatchObject({ name: other, state: 'ready' });
    expect((await daytona.volume.get(other, true)).id).toBe(auto.id);
    await daytona.volume.delete(auto);
    expect(dockerVolumeExists(auto.id)).toBe(false);
    await expect(daytona.volume.get(other)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('refuses bad and taken names with a message', async () => {
    const daytona = cove.daytona();
    for (const bad of ['has space', '../up', '', 'x'.repeat(64)]) {
      await expect(daytona.volume.create(bad), bad).rejects.toMatchObject({ statusCode: 400, message: expect.stringContaining('Invalid volume name') });
    }
    await expect(daytona.volume.create(name)).rejects.toMatchObject({ statusCode: 409, message: expect.stringContaining('already exists') });
    const listed = await cove.api('/volumes?includeDeleted=true');
    expect(listed.status).toBe(400);
    expect((await listed.json()).message).toContain('includeDeleted');
  });

  it('refuses bad mount paths and subpaths by name', async () => {
    const daytona = cove.daytona();
    const vol = await daytona.volume.get(name);
    for (const [volumes, expected] of [
      [[{ volumeId: vol.id, mountPath: 'relative' }], 'absolute'],
      [[{ volumeId: vol.id, mountPath: '/' }], 'root'],
      [[{ volumeId: vol.id, mountPath: '/data/../etc' }], 'normalized'],
      [[{ volumeId: vol.id, mountPath: '/opt/cove/x' }], '/opt/cove'],
      [[{ volumeId: vol.id, mountPath: '/run/cove' }], '/run/cove'],
      [[{ volumeId: vol.id, mountPath: '/a' }, { volumeId: vol.id, mountPath: '/a' }], 'twice'],
      [[{ volumeId: vol.id, mountPath: '/a', subpath: 'x' }], 'subpath'],
      [[{ volumeId: 'no-such-volume', mountPath: '/a' }], 'not found'],
    ] as const) {
      const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify({ volumes }) });
      expect(res.status, JSON.stringify(volumes)).toBe(400);
      expect((await res.json()).message).toContain(expected);
    }
    // Nothing was made of them.
    const all = await (await cove.api('/sandbox')).json();
    expect(all.items.filter((s: { volumes?: unknown[] }) => s.volumes?.length)).toEqual([]);
  });

  let b: Sandbox;
  let c: Sandbox;
  it('keeps what one sandbox writes for the next one that mounts the volume, by name or id', async () => {
    const daytona = cove.daytona();
    const vol = await daytona.volume.get(name);
    // By name: the sandbox shows the volume's id.
    const a = await daytona.create({ volumes: [{ volumeId: name, mountPath: '/home/cove/data' }] });
    made.push(a);
    expect(a.volumes).toEqual([{ volumeId: vol.id, mountPath: '/home/cove/data' }]);
    // As the sandbox user (cove, not root): the volume's root is writable by it.
    expect(await run(a, 'id -un; echo kept > /home/cove/data/note.txt; mkdir /home/cove/data/dir; stat -c %U /home/cove/data/note.txt')).toBe('cove\ncove\n');
    await a.delete();
    expect(dockerVolumeExists(vol.id)).toBe(true);

    b = await daytona.create({ volumes: [{ volumeId: vol.id, mountPath: '/mnt/shared' }] });
    made.push(b);
    expect(await run(b, 'cat /mnt/shared/note.txt')).toBe('kept\n');
    expect((await daytona.volume.get(name)).lastUsedAt).toBeTruthy();
  });

  it('shares one volume between two running sandboxes', async () => {
    const daytona = cove.daytona();
    c = await daytona.create({ volumes: [{ volumeId: name, mountPath: '/home/cove/data' }] });
    made.push(c);
    await run(c, 'echo from-c > /home/cove/data/c.txt');
    expect(await run(b, 'cat /mnt/shared/c.txt')).toBe('from-c\n');
    await run(b, 'echo from-b > /mnt/shared/b.txt');
    expect(await run(c, 'cat /home/cove/data/b.txt')).toBe('from-b\n');
  });

  it('refuses to delete a volume in use, naming the sandboxes, whatever their state; stop/start and archive/restore keep the mount', async () => {
    const daytona = cove.daytona();
    const vol = await daytona.volume.get(name);
    await expect(daytona.volume.delete(vol)).rejects.toMatchObject({ statusCode: 409, message: expect.stringMatching(new RegExp(`in use by sandboxes .*(${b.id}.*${c.id}|${c.id}.*${b.id})`)) });

    await c.delete();
    await b.stop();
    await expect(daytona.volume.delete(vol)).rejects.toMatchObject({ statusCode: 409, message: expect.stringContaining(b.id) });
    await b.start();
    expect(await run(b, 'cat /mnt/shared/note.txt /mnt/shared/b.txt')).toBe('kept\nfrom-b\n');

    await b.stop();
    await b.archive();
    expect((await daytona.get(b.id)).state).toBe('archived');
    await expect(daytona.volume.delete(vol)).rejects.toMatchObject({ statusCode: 409, message: expect.stringContaining(b.id) });
    await b.start();
    expect((await daytona.get(b.id)).volumes).toEqual([{ volumeId: vol.id, mountPath: '/mnt/shared' }]);
    expect(await run(b, 'cat /mnt/shared/note.txt; echo again >> /mnt/shared/note.txt')).toBe('kept\n');
  });

  it("keeps a key's volumes from another key, which may use the same name", async () => {
    const vol = await cove.daytona().volume.get(name);
    const key = keysCli('create', '--name', 'volume-neighbour');
    const other = cove.daytona(key);
    expect((await other.volume.list()).map((v) => v.id)).not.toContain(vol.id);
    await expect(other.volume.get(name)).rejects.toMatchObject({ statusCode: 404 });
    expect((await cove.api(`/volumes/${vol.id}`, { key })).status).toBe(404);
    expect((await cove.api(`/volumes/${vol.id}`, { method: 'DELETE', key })).status).toBe(404);
    for (const volumeId of [vol.id, name]) {
      const res = await cove.api('/sandbox', { method: 'POST', key, body: JSON.stringify({ volumes: [{ volumeId, mountPath: '/data' }] }) });
      expect(res.status).toBe(400);
      expect((await res.json()).message).toContain('not found');
    }
    const theirs = await other.volume.create(name);
    expect(theirs.id).not.toBe(vol.id);
    // The admin key sees both.
    expect((await cove.daytona().volume.list()).map((v) => v.id)).toEqual(expect.arrayContaining([vol.id, theirs.id]));
    await other.volume.delete(theirs);
  });

  it('deletes the volume and its Docker volume once no sandbox mounts it', async () => {
    const daytona = cove.daytona();
    const vol = await daytona.volume.get(name);
    await b.delete();
    await daytona.volume.delete(vol);
    expect(dockerVolumeExists(vol.id)).toBe(false);
    expect((await daytona.volume.list()).map((v) => v.id)).not.toContain(vol.id);
    await expect(daytona.volume.get(name)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('keeps volumes and mounts across a restart of the server', async () => {
    const vol = await cove.daytona().volume.create(`${name}-kept`);
    const sb = await cove.daytona().create({ volumes: [{ volumeId: vol.id, mountPath: '/data' }] });
    made.push(sb);
    await run(sb, 'echo before > /data/f');
    expect(await cove.stop()).toBe(0);
    restartedDataDir = cove.dataDir;
    cove = await startCove({ pool: 1, dataDir: cove.dataDir, apiKey: cove.apiKey });
    const daytona = cove.daytona();
    expect(await daytona.volume.get(vol.name)).toMatchObject({ id: vol.id, state: 'ready' });
    const again = await daytona.get(sb.id);
    expect(again.volumes).toEqual([{ volumeId: vol.id, mountPath: '/data' }]);
    expect(await run(again, 'cat /data/f')).toBe('before\n');
    await expect(daytona.volume.delete(vol)).rejects.toMatchObject({ statusCode: 409 });
    await again.delete();
    await daytona.volume.delete(vol);
    expect(dockerVolumeExists(vol.id)).toBe(false);
  });
});
