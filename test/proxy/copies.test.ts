/**
 * Forks and snapshots of sandboxes (SDK 0.218 `fork`, `createSnapshot`) through a real `cove serve`, real Docker
 * containers and the published Daytona SDK: what a copy holds, that copies are independent, what a snapshot image is
 * configured with (and never holds), bad names, and keys that may not touch another key's sandboxes or snapshots.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { CreateSandboxFromSnapshotParams, Daytona, Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';

const HOME = '/home/cove';
/** An "installed package": a tool on PATH outside the home directory, as a package manager would leave it. */
const TOOL = '/usr/local/bin/cove-hello';

let cove: TestCove;
let alice: { key: string; id: string };
let bob: { key: string; id: string };
const suffix = Date.now().toString(36);

beforeAll(async () => {
  cove = await startCove({ pool: 1 });
  alice = cove.newKey('alice');
  bob = cove.newKey('bob');
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  // The snapshots the tests made, and anything a failed test left: nothing of this run stays behind.
  const images = [...new Set(docker('images', '-q', '--filter', `label=dev.cove.committed-by=${instance()}`).split('\n').filter(Boolean))];
  if (images.length) spawnSync('docker', ['rmi', '-f', ...images], { stdio: 'ignore' });
}, 120_000);


const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
/** The server's instance label (a hash of its data dir), which the images it commits carry. */
const instance = () => createHash('sha256').update(cove.dataDir).digest('hex').slice(0, 12);
const committed = (...filters: string[]) =>
  docker('images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', `label=dev.cove.committed-by=${instance()}`, ...filters.flatMap((f) => ['--filter', f]))
    .split('\n')
    .filter(Boolean);
const forkImages = () => committed('label=dev.cove.fork=1');

/** stdout of a command in a sandbox (as its user, in its home). */
async function run(sandbox: Sandbox, command: string): Promise<string> {
  const r = await sandbox.process.executeCommand(command);
  expect(r.exitCode, r.result).toBe(0);
  return r.result;
}

/** Gives a sandbox a file in its home and an installed tool, the state a fork or snapshot must carry. */
async function prepare(sandbox: Sandbox): Promise<void> {
  await sandbox.fs.uploadFile(Buffer.from('from the source\n'), `${HOME}/notes.txt`);
  await sandbox.fs.uploadFile(Buffer.from('#!/bin/sh\necho hello from an installed tool\n'), TOOL);
  await sandbox.fs.setFilePermissions(TOOL, { mode: '755' });
  expect(await run(sandbox, 'cove-hello')).toBe('hello from an installed tool\n');
}

/** What `cat` shows of a file, or MISSING. */
const cat = (sandbox: Sandbox, file: string) => run(sandbox, `sh -c 'cat ${file} 2>/dev/null || echo MISSING'`);

async function remove(...sandboxes: (Sandbox | undefined)[]): Promise<void> {
  await Promise.all(sandboxes.map((s) => s && cove.api(`/sandbox/${s.id}`, { method: 'DELETE' })));
}

const create = (daytona: Daytona, params: CreateSandboxFromSnapshotParams = {}) => daytona.create(params, { timeout: 120 });

describe('fork', () => {
  it('forks a running sandbox: the fork has its files, installed tools and settings, and the two are independent from then on', async () => {
    const daytona = cove.daytona(alice.key);
    let source: Sandbox | undefined;
    let fork: Sandbox | undefined;
    let grandchild: Sandbox | undefined;
    try {
      source = await create(daytona, { envVars: { STAGE: 'test' }, labels: { team: 'a' }, autoStopInterval: 30 });
      await prepare(source);

      fork = await source.fork({ name: `fork-${suffix}` });
      expect(fork.id).not.toBe(source.id);
      expect(fork).toMatchObject({
        name: `fork-${suffix}`,
        state: 'started',
        user: source.user,
        env: { STAGE: 'test' },
        labels: { team: 'a' },
        cpu: source.cpu,
        memory: source.memory,
        disk: source.disk,
        autoStopInterval: 30,
        organizationId: source.organizationId,
      });
      // The fork runs from an image of the source's file system, kept as long as the fork exists.
      expect(fork.snapshot).toMatch(/^cove-fork:/);
      expect(forkImages()).toContain(fork.snapshot);
      // The source went on running and has its state again.
      await source.refreshData();
      expect(source.state).toBe('started');

      expect(await run(fork, 'sh -c "cat ~/notes.txt; cove-hello; whoami; echo $STAGE"')).toBe('from the source\nhello from an installed tool\ncove\ntest\n');

      // Independent: a change in one never shows in the other.
      await fork.fs.uploadFile(Buffer.from('fork only\n'), `${HOME}/fork.txt`);
      await source.fs.uploadFile(Buffer.from('source only\n'), `${HOME}/source.txt`);
      await source.fs.uploadFile(Buffer.from('changed in the source\n'), `${HOME}/notes.txt`);
      await fork.fs.deleteFile(TOOL);
      expect(await cat(source, '~/fork.txt')).toBe('MISSING\n');
      expect(await cat(fork, '~/source.txt')).toBe('MISSING\n');
      expect(await cat(fork, '~/notes.txt')).toBe('from the source\n');
      expect(await run(source, 'cove-hello')).toBe('hello from an installed tool\n');

      // The deprecated name works too, and a fork can be forked; without a name the fork gets one.
      grandchild = await fork._experimental_fork();
      expect(grandchild.name).toBeTruthy();
      expect(await cat(grandchild, '~/fork.txt')).toBe('fork only\n');
      expect(await cat(grandchild, TOOL)).toBe('MISSING\n');
    } finally {
      await remove(grandchild, fork, source);
    }
    // A deleted fork's image goes with it.
    await waitFor(() => forkImages().length === 0, 30_000, 'the fork images to be removed');
  }, 300_000);

  it('forks a stopped sandbox, which stays stopped', async () => {
    const daytona = cove.daytona(alice.key);
    let source: Sandbox | undefined;
    let fork: Sandbox | undefined;
    try {
      source = await create(daytona);
      await prepare(source);
      await source.stop();
      fork = await source.fork();
      expect(fork.state).toBe('started');
      expect(await run(fork, 'sh -c "cat ~/notes.txt; cove-hello"')).toBe('from the source\nhello from an installed tool\n');
      await source.refreshData();
      expect(source.state).toBe('stopped');
      await source.start();
      expect(await cat(source, '~/notes.txt')).toBe('from the source\n');
    } finally {
      await remove(fork, source);
    }
  }, 300_000);
});

describe('createSnapshot', () => {
  it("makes the sandbox's file system a snapshot that creates accept, configured as the image it came from, without Cove's secrets", async () => {
    const daytona = cove.daytona(alice.key);
    const name = `cove-test-snapshot-${suffix}:v1`;
    let source: Sandbox | undefined;
    let made: Sandbox | undefined;
    try {
      source = await create(daytona, { envVars: { STAGE: 'test' } });
      await prepare(source);
      await source.createSnapshot(name);
      expect(source.state).toBe('started');

      made = await create(daytona, { snapshot: name });
      expect(made.snapshot).toBe(name);
      expect(await run(made, 'sh -c "cat ~/notes.txt; cove-hello; whoami"')).toBe('from the source\nhello from an installed tool\ncove\n');

      // Configured as the image the sandbox came from, never as Cove configured its container.
      const [image] = JSON.parse(docker('image', 'inspect', name));
      const [original] = JSON.parse(docker('image', 'inspect', 'cove-sandbox:latest'));
      for (const field of ['Entrypoint', 'Cmd', 'WorkingDir']) expect(image.Config[field], field).toEqual(original.Config[field]);
      expect(image.Config.Labels).toMatchObject({
        'dev.cove.snapshot.owner': alice.id,
        'dev.cove.committed-by': instance(),
        'dev.cove.user': 'cove',
        'dev.cove.agent': 'baked',
        'dev.cove.managed': '',
        'dev.cove.sandbox': '',
        'dev.cove.instance': '',
      });
      // The environment the sandbox had: the image's, with what it was created with.
      expect(image.Config.Env).toEqual(expect.arrayContaining([...original.Config.Env, 'STAGE=test']));

      // Nothing of the agent's token: not in the configuration, not in the layer the commit wrote.
      const db = new Database(path.join(cove.dataDir, 'cove.db'), { readonly: true });
      const { agent_token: token } = db.prepare('SELECT agent_token FROM sandboxes WHERE id = ?').get(source.id) as { agent_token: string };
      db.close();
      expect(token.length).toBeGreaterThanOrEqual(32);
      expect(JSON.stringify(image)).not.toContain(token);
      expect(image.GraphDriver.Name).toBe('overlay2');
      const layer = image.GraphDriver.Data.UpperDir as string;
      const find = (pattern: string) => execFileSync('find', [layer, '-path', `${layer}${pattern}`], { encoding: 'utf8' }).trim();
      expect(find('/home/cove/notes.txt')).not.toBe('');
      expect(find('/run/cove/*')).toBe('');
      expect(spawnSync('grep', ['-rlF', token, layer]).status).toBe(1);

      // Made again under its name (the deprecated method), the snapshot is replaced for new creates.
      await source.fs.uploadFile(Buffer.from('second version\n'), `${HOME}/notes.txt`);
      await source._experimental_createSnapshot(name);
      expect(JSON.parse(docker('image', 'inspect', name))[0].Id).not.toBe(image.Id);
      const second = await create(daytona, { snapshot: name });
      try {
        expect(await cat(second, '~/notes.txt')).toBe('second version\n');
      } finally {
        await remove(second);
      }
      // The sandbox made from the first version keeps its files.
      expect(await cat(made, '~/notes.txt')).toBe('from the source\n');

      // A stopped sandbox can be snapshotted too, and stays stopped.
      await source.stop();
      await source.createSnapshot(name);
      await source.refreshData();
      expect(source.state).toBe('stopped');
    } finally {
      await remove(made, source);
    }
    // The first version, replaced while a sandbox still ran from it, goes once that sandbox does.
    await waitFor(() => committed('dangling=true').length === 0, 30_000, 'the replaced snapshot to be removed');
    expect(committed()).toEqual([name]);
  }, 300_000);
});

describe('refusals', () => {
  it('refuses bad snapshot and fork names with a 400 saying what is wrong', async () => {
    const daytona = cove.daytona(alice.key);
    let source: Sandbox | undefined;
    try {
      source = await create(daytona);
      for (const [bad, why] of [
        ['My-Snapshot', /image names are lowercase/],
        ['has space', /spaces and control characters/],
        ['', /a name is required/],
        [`snap@sha256:${'a'.repeat(64)}`, /a digest/],
        ['snap:-bad', /the tag after ':'/],
        ['cove-fork:mine', /cove-fork is the name of the images Cove keeps for forks/],
      ] as const) {
        await expect(source.createSnapshot(bad), bad).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(why) });
      }
      // An image that is not a snapshot of this key keeps its name.
      await expect(source.createSnapshot('cove-sandbox:latest')).rejects.toMatchObject({
        statusCode: 400,
        message: expect.stringMatching(/An image named cove-sandbox:latest already exists on this host and is not a snapshot of this API key/),
      });
      await expect(source.fork({ name: 'bad name!' })).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/name/) });
      await expect(source.fork({ name: source.name })).rejects.toMatchObject({ statusCode: 409, message: expect.stringMatching(/already exists/) });
      const memory = await cove.api(`/sandbox/${source.id}/snapshot`, { method: 'POST', key: alice.key, body: JSON.stringify({ name: 'x', includeMemory: true }) });
      expect(memory.status).toBe(400);
      expect((await memory.json()).message).toMatch(/includeMemory/);
      // Nothing was copied by any of these.
      expect(forkImages()).toEqual([]);
    } finally {
      await remove(source);
    }
  }, 300_000);

  it("keeps one key's sandboxes, snapshots and fork images from another", async () => {
    const name = `cove-test-private-${suffix}`;
    let source: Sandbox | undefined;
    let fork: Sandbox | undefined;
    let bobs: Sandbox | undefined;
    try {
      source = await create(cove.daytona(alice.key));
      await source.createSnapshot(name);
      fork = await source.fork();

      // Bob cannot fork or snapshot Alice's sandbox: to him it does not exist.
      for (const [route, body] of [['fork', {}], ['snapshot', { name: `cove-test-bob-${suffix}` }]] as const) {
        const res = await cove.api(`/sandbox/${source.id}/${route}`, { method: 'POST', key: bob.key, body: JSON.stringify(body) });
        expect(res.status, route).toBe(404);
        expect(await res.json()).toMatchObject({ code: 'SANDBOX_NOT_FOUND' });
      }
      // Nor create a sandbox of her snapshot (as if it were missing), nor take its name for his own.
      const of = (image: string, key: string) => cove.api('/sandbox', { method: 'POST', key, body: JSON.stringify({ snapshot: image }) });
      const refused = await of(name, bob.key);
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ code: 'IMAGE_NOT_FOUND' });
      bobs = await create(cove.daytona(bob.key));
      await expect(bobs.createSnapshot(name)).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/is not a snapshot of this API key/) });
      // A fork's image is for that fork alone, even to its owner.
      for (const key of [alice.key, bob.key]) expect((await of(fork.snapshot!, key)).status).toBe(400);
      // Nor build from either, as a base or a stage to copy from.
      for (const dockerfile of [`FROM ${name}\nRUN true\n`, `FROM cove-sandbox:latest\nCOPY --from=${fork.snapshot!} /etc/hostname /x\n`]) {
        for (const [path, body] of [
          ['/snapshots', { name: `cove-test-bob-build-${suffix}`, buildInfo: { dockerfileContent: dockerfile } }],
          ['/sandbox', { buildInfo: { dockerfileContent: dockerfile } }],
        ] as const) {
          const res = await cove.api(path, { method: 'POST', key: bob.key, body: JSON.stringify(body) });
          expect(res.status, `${path} ${dockerfile}`).toBe(400);
          expect((await res.json()).message).toMatch(/an image of another API key/);
        }
      }
      expect(JSON.parse(docker('image', 'inspect', name))[0].Config.Labels['dev.cove.snapshot.owner']).toBe(alice.id);
    } finally {
      await remove(bobs, fork, source);
    }
  }, 300_000);
});
