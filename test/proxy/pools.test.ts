/**
 * Warm pools of snapshots (`cove serve --pool NAME=N`) and snapshot resources, through a real `cove serve`, real Docker
 * and the published SDK: a pool that waits for its snapshot and fills once it is active, a create from the snapshot
 * that gets the very container the pool held (seen by container id, not by timing), the snapshot's resources and
 * entrypoint in that sandbox, creates that may not take a member, draining on deactivate and delete, and adoption or
 * removal of members across restarts.
 */
import type { PoolStatus } from '../../wire/sandbox';
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Daytona, Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';

const suffix = randomBytes(4).toString('hex');
/** A local image only this run has: a tag of the default image. */
const localImage = `cove-test-pool:${suffix}`;
const name = `pool-snap-${suffix}`;
const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
const running = (id: string) => spawnSync('docker', ['inspect', '-f', '{{.State.Running}}', id], { encoding: 'utf8' }).stdout.trim() === 'true';

type PoolView = PoolStatus['pools'][number];

let cove: TestCove;
let alice: { key: string; id: string; daytona: Daytona };
let dataDir: string;
const poolArgs = ['--pool', `${name}=1`];

beforeAll(async () => {
  cove = await startCove({ pool: 0, args: poolArgs });
  // After the server's start: it may build the default image anew.
  docker('tag', 'cove-sandbox:latest', localImage);
  dataDir = cove.dataDir;
  const made = cove.newKey('alice');
  alice = { ...made, daytona: cove.daytona(made.key) };
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  spawnSync('docker', ['rmi', localImage], { stdio: 'ignore' });
}, 120_000);

async function snapshotPool(): Promise<PoolView> {
  const body = (await (await cove.api('/pool')).json()) as PoolStatus;
  return body.pools.find((p) => p.snapshot === name)!;
}

/** The pool's one ready member once it has one, checked against the engine's own list of pool containers. */
async function readyMember(): Promise<string> {
  await expect.poll(async () => (await snapshotPool()).ready, { timeout: 90_000, interval: 250 }).toBe(1);
  const [member] = (await snapshotPool()).members;
  expect(cove.containers('dev.cove.pool').some((short) => member.startsWith(short))).toBe(true);
  return member;
}

/** The container a sandbox runs in: Docker names a container's host after the first 12 digits of its id. */
const containerOf = async (sandbox: Sandbox): Promise<string> => (await sandbox.process.executeCommand('hostname')).result.trim();

describe('a warm pool of a snapshot', () => {
  it('waits while its snapshot does not exist, saying why', async () => {
    const pool = await snapshotPool();
    expect(pool).toMatchObject({ target: 1, ready: 0, members: [] });
    expect(pool.waiting).toMatch(new RegExp(`no snapshot named ${name}`));
    expect(cove.output()).toMatch(/warm pool waits for its snapshot/);
  });

  it('fills once the snapshot exists; a create from it gets the member the pool held, with the snapshot resources and entrypoint', async () => {
    const entrypoint = ['/bin/sh', '-c', 'echo "entrypoint of $0" > /tmp/entrypoint.txt; exec sleep 3600', 'snap'];
    const snapshot = await alice.daytona.snapshot.create({ name, image: localImage, resources: { cpu: 2, memory: 2, disk: 3 }, entrypoint });
    expect(snapshot).toMatchObject({ name, state: 'active', cpu: 2, mem: 2, disk: 3, entrypoint });
    const member = await readyMember();
    expect(docker('inspect', '-f', '{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}', member)).toBe(`${2e9} ${2 * 1024 ** 3}`);
    // The member's entrypoint is held until a create claims it (and puts the sandbox's egress policy in force).
    expect(spawnSync('docker', ['exec', member, 'test', '-e', '/tmp/entrypoint.txt']).status).toBe(1);

    const sandbox = await alice.daytona.create({ snapshot: name });
    try {
      expect(await containerOf(sandbox)).toBe(member.slice(0, 12));
      // A claimed member keeps its pool label: the engine cannot relabel a container.
      expect(cove.containers(`dev.cove.sandbox=${sandbox.id}`)).toEqual([]);
      expect(sandbox).toMatchObject({ snapshot: name, cpu: 2, memory: 2, disk: 3 });
      expect((await alice.daytona.get(sandbox.id)).snapshot).toBe(name);
      await expect
        .poll(async () => (await sandbox.process.executeCommand('cat /tmp/entrypoint.txt 2>/dev/null')).result.trim(), { timeout: 20_000 })
        .toBe('entrypoint of snap');
      const limits = await sandbox.process.executeCommand('cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory/memory.limit_in_bytes');
      expect(limits.result.trim().split(/\s+/)).toEqual(['200000', String(2 * 1024 ** 3)]);
      // The pool makes another member.
      const next = await readyMember();
      expect(next).not.toBe(member);
    } finally {
      await sandbox.delete();
    }
  }, 300_000);

  it('leaves its member to creates that would make the same sandbox: not one with its own environment, user or resources', async () => {
    const member = await readyMember();
    await expect(alice.daytona.create({ snapshot: name, resources: { cpu: 1 } } as never)).rejects.toMatchObject({
      statusCode: 400,
      message: expect.stringMatching(new RegExp(`Cannot specify sandbox resources \\(cpu\\) when creating from snapshot ${name}`)),
    });
    const withEnv = await alice.daytona.create({ snapshot: name, envVars: { A: '1' } });
    const withUser = await alice.daytona.create({ snapshot: name, user: 'root' });
    try {
      for (const sandbox of [withEnv, withUser]) {
        expect(await containerOf(sandbox)).not.toBe(member.slice(0, 12));
        expect(cove.containers(`dev.cove.sandbox=${sandbox.id}`)).toHaveLength(1);
        expect(sandbox).toMatchObject({ snapshot: name, cpu: 2, memory: 2, disk: 3 });
      }
      expect((await snapshotPool()).members).toEqual([member]);
      // A cold start of the snapshot runs its entrypoint too.
      await expect.poll(async () => (await withEnv.process.executeCommand('cat /tmp/entrypoint.txt 2>/dev/null')).result.trim(), { timeout: 20_000 }).toBe('entrypoint of snap');
    } finally {
      await withEnv.delete();
      await withUser.delete();
    }
  }, 300_000);

  it('keeps its members across a restart, and removes them at a start that no longer configures the pool', async () => {
    const member = await readyMember();
    await cove.stop();
    cove = await startCove({ pool: 0, args: poolArgs, dataDir, apiKey: cove.apiKey });
    expect(await readyMember()).toBe(member);
    await cove.stop();
    cove = await startCove({ pool: 0, dataDir, apiKey: cove.apiKey });
    expect(running(member)).toBe(false);
    expect(cove.containers('dev.cove.pool')).toEqual([]);
    await cove.stop();
    cove = await startCove({ pool: 0, args: poolArgs, dataDir, apiKey: cove.apiKey });
    alice.daytona = cove.daytona(alice.key);
    await readyMember();
  }, 300_000);

  it('is drained when its snapshot is deactivated, fills again when it is activated, and is drained when it is deleted', async () => {
    const member = await readyMember();
    expect((await cove.api(`/snapshots/${name}/deactivate`, { method: 'POST', key: alice.key })).status).toBe(200);
    await expect.poll(async () => (await snapshotPool()).waiting, { timeout: 30_000 }).toMatch(/is inactive/);
    await expect.poll(() => running(member), { timeout: 30_000 }).toBe(false);
    expect((await snapshotPool()).ready).toBe(0);

    await alice.daytona.snapshot.activate(await alice.daytona.snapshot.get(name));
    const again = await readyMember();
    await alice.daytona.snapshot.delete(await alice.daytona.snapshot.get(name));
    await expect.poll(async () => (await snapshotPool()).waiting, { timeout: 30_000 }).toMatch(/no snapshot named/);
    await expect.poll(() => running(again), { timeout: 30_000 }).toBe(false);
    expect(cove.containers('dev.cove.pool')).toEqual([]);
  }, 300_000);

  it('waits, naming the keys, when two API keys have a snapshot of its name', async () => {
    const bob = cove.newKey('bob');
    await alice.daytona.snapshot.create({ name, image: localImage });
    await readyMember();
    await cove.daytona(bob.key).snapshot.create({ name, image: localImage });
    await expect.poll(async () => (await snapshotPool()).waiting, { timeout: 30_000 }).toMatch(new RegExp(`each have a snapshot named ${name}: name one as ${name}@KEY`));
    expect((await snapshotPool()).ready).toBe(0);
  }, 300_000);
});
