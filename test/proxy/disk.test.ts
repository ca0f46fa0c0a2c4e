/**
 * Disk sizes enforced, through a real `cove serve`, real containers and the published Daytona SDK, in both modes:
 * - watchdog, on this machine's engine (overlay2 on ext4, which cannot limit sizes): a sandbox past its size is
 *   stopped with the reason, one under it is left alone, and one started again over its size may delete files;
 * - storage-opt, on a second engine of this test's own whose data root is a file system with quotas (xfs with project
 *   quotas, or btrfs where the kernel has no XFS quotas): a write past the size fails and the sandbox keeps running.
 * The second engine starts (and the images are copied into it) while the watchdog tests run.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE } from '../../images/src/base';
import { CONTENT_HASH_LABEL, ensureImages, SANDBOX_IMAGE } from '../../images/src/build';
import { defaultBridgeName } from '../../proxy/src/runtime/network';
import { COVE_BIN } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { startQuotaEngine, type QuotaEngine } from '../helpers/quota-engine';

const GiB = 1024 ** 3;
/** The second engine's sandbox network (and so its bridge): its own, so nothing clashes with the main engine's. */
const NETWORK = `cove-d${randomBytes(2).toString('hex')}`;

let watch: TestCove | undefined;
let quota: Promise<QuotaEngine> | undefined;
let storage: TestCove | undefined;

beforeAll(async () => {
  // bin/cove.mjs rebuilds dist/ when a source is newer; the images are built from it.
  execFileSync(process.execPath, [COVE_BIN, 'agent', '--help'], { stdio: 'ignore' });
  const images = await ensureImages();
  // By id: another checkout's server may retag cove-sandbox:latest on the main engine at any moment.
  const sandboxImage = execFileSync('docker', ['images', '-q', '--no-trunc', '--filter', `label=${CONTENT_HASH_LABEL}=${images.sandboxHash}`], { encoding: 'utf8' }).split('\n')[0];
  const baseImage = execFileSync('docker', ['image', 'inspect', '--format', '{{.Id}}', BASE_IMAGE], { encoding: 'utf8' }).trim();
  quota = (async () => {
    const engine = await startQuotaEngine();
    try {
      await engine.load([
        { id: baseImage, tag: BASE_IMAGE },
        { id: sandboxImage, tag: SANDBOX_IMAGE },
      ]);
    } catch (err) {
      await engine.remove().catch(() => {});
      throw err;
    }
    return engine;
  })();
  quota.catch(() => {}); // awaited (and reported) by the storage-opt tests
  watch = await startCove({ pool: 1, args: ['--disk-check-interval', '1'] });
}, 20 * 60_000);

afterAll(async () => {
  await watch?.destroy();
  await storage?.destroy();
  const engine = await quota?.catch(() => undefined);
  await engine?.remove(defaultBridgeName(NETWORK));
}, 180_000);

/** Polls the sandbox until `check` holds, or fails after `ms` with what it last saw. */
async function until(sandbox: Sandbox, check: (s: Sandbox) => boolean, ms: number, what: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    await sandbox.refreshData();
    if (check(sandbox)) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`${what} did not happen within ${ms} ms: state ${sandbox.state}, errorReason ${sandbox.errorReason}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs a command in the sandbox; its output and exit code. */
async function sh(sandbox: Sandbox, command: string, timeoutS = 120): Promise<{ exitCode: number; result: string }> {
  return sandbox.process.executeCommand(`sh -c '${command}' 2>&1`, undefined, undefined, timeoutS);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('disk limits: watchdog (this machine: overlay2 on ext4)', () => {
  it('says the mode at start', () => {
    expect(watch!.output()).toMatch(/^disk limits: watchdog \(checks every 1 s, stops a sandbox past its size; the engine's overlay2 on extfs has no size limits/m);
  });

  it('stops a sandbox past its size with the reason and leaves one under it alone; started again, it may delete files but not grow', async () => {
    const daytona = watch!.daytona();
    const [over, under] = await Promise.all([
      daytona.create({ image: SANDBOX_IMAGE, resources: { disk: 1 } }, { timeout: 120 }),
      daytona.create({ image: SANDBOX_IMAGE, resources: { disk: 1 } }, { timeout: 120 }),
    ]);
    expect(over.disk).toBe(1);

    // Under the size: 0.5 GiB here, 0.9 GiB in the other, a few checks long.
    expect((await sh(under, 'head -c 512M /dev/zero > ~/half && sync && echo written')).result).toContain('written');
    expect((await sh(over, 'head -c 900M /dev/zero > ~/fill && sync && echo written')).result).toContain('written');
    await sleep(3000);
    await over.refreshData();
    expect(over.state).toBe('started');

    // 0.6 GiB more crosses 1 GiB within a second of writing.
    const crossing = Date.now();
    await sh(over, 'nohup sh -c "head -c 600M /dev/zero >> ~/fill" > /dev/null 2>&1 &');
    await until(over, (s) => s.state === 'stopped', 30_000, 'the stop of the sandbox past its size');
    const stoppedAfter = Date.now() - crossing;
    expect(over.errorReason).toMatch(/^Disk limit of 1 GiB exceeded \((more than )?(1\.\d+ GiB|1\d{3} MiB) written\), so the sandbox was stopped; its files are kept\. Start it again and delete files to get back under 1 GiB/);
    console.log(`watchdog: stopped ${stoppedAfter} ms after a write that crosses the size began (checks every 1 s); ${over.errorReason}`);
    // The toolbox says why.
    await expect(over.process.executeCommand('true')).rejects.toThrow(/is stopped \(Disk limit of 1 GiB exceeded/);

    // The other, under its size, was left alone all along.
    await under.refreshData();
    expect(under.state).toBe('started');
    expect((await sh(under, 'echo alive')).result.trim()).toBe('alive');

    // Started again over its size: it may run to delete files, but writing more than the slack stops it again.
    await over.start(120);
    expect(over.errorReason ?? '').toBe('');
    await sleep(2500);
    await over.refreshData();
    expect(over.state).toBe('started');
    await sh(over, 'nohup sh -c "head -c 300M /dev/zero > ~/more" > /dev/null 2>&1 &');
    await until(over, (s) => s.state === 'stopped', 30_000, 'the second stop');
    expect(over.errorReason).toMatch(/^Disk limit of 1 GiB exceeded/);

    // Started again, it deletes files and gets back under its size: then it may write up to its size again.
    await over.start(120);
    expect((await sh(over, 'rm -f ~/fill ~/more && echo deleted')).result).toContain('deleted');
    await sleep(2500);
    expect((await sh(over, 'head -c 200M /dev/zero > ~/new && sync && echo written')).result).toContain('written');
    await sleep(2500);
    await over.refreshData();
    expect(over.state).toBe('started');

    await Promise.all([over.delete(), under.delete()]);
    // Two creates, 2.2 GB written and two stops and starts: a minute on a quiet machine, more while the suite runs.
  }, 180_000);
});

describe('disk limits: storage-opt (a second engine on xfs with project quotas, or btrfs)', () => {
  let engine: QuotaEngine;
  beforeAll(async () => {
    engine = await quota!;
    if (engine.notXfs) console.log(`storage-opt test on btrfs: xfs with project quotas is not possible here: ${engine.notXfs}`);
    storage = await startCove({ pool: 1, dockerHost: engine.dockerHost, args: ['--network', NETWORK] });
  }, 10 * 60_000);

  const sizeOf = (containerId: string) =>
    JSON.parse(engine.docker(['inspect', '--format', '{{json .HostConfig.StorageOpt}}', containerId])) as { size?: string } | null;
  const containerOf = (sandboxId: string) => storage!.containers(`dev.cove.sandbox=${sandboxId}`)[0] ?? '';
  const imageBytes = () => Number(engine.docker(['image', 'inspect', '--format', '{{.Size}}', SANDBOX_IMAGE]));

  it("says the mode at start; the pool serves the default size only; each container is made with its sandbox's size", async () => {
    const how = engine.fs === 'xfs' ? 'overlay2 on xfs with project quotas' : "btrfs with quota groups; each sandbox's size is added to its image's";
    expect(storage!.output()).toContain(`disk limits: storage-opt (${how}): writes past a sandbox's size fail, the sandbox keeps running`);
    const size = (gib: number) => (engine.fs === 'xfs' ? `${gib}G` : String(gib * GiB + imageBytes()));

    await expect.poll(async () => ((await (await storage!.api('/pool')).json()) as { ready: number }).ready, { timeout: 60_000 }).toBe(1);
    const members = storage!.containers('dev.cove.pool');
    expect(members.length).toBe(1);
    expect(sizeOf(members[0])).toEqual({ size: size(10) });

    const daytona = storage!.daytona();
    const standard = await daytona.create({ image: SANDBOX_IMAGE }, { timeout: 120 });
    expect(standard.disk).toBe(10);
    // A pool hit: the member became the sandbox (a container's host name is the start of its id).
    expect(engine.docker(['inspect', '--format', '{{.Name}}', members[0]])).toMatch(/^\/cove-pool-/);
    expect((await sh(standard, 'hostname')).result.trim()).toBe(members[0].slice(0, 12));

    const small = await daytona.create({ image: SANDBOX_IMAGE, resources: { disk: 1 } }, { timeout: 120 });
    // Another size is a pool miss: a container of its own, made with its size.
    const container = containerOf(small.id);
    expect(engine.docker(['inspect', '--format', '{{.Name}}', container])).toBe(`/cove-${small.id}`);
    expect(sizeOf(container)).toEqual({ size: size(1) });
    await Promise.all([standard.delete(), small.delete()]);
  });

  it('a write past the size fails, and the sandbox keeps running', async () => {
    const daytona = storage!.daytona();
    const sandbox = await daytona.create({ image: SANDBOX_IMAGE, resources: { disk: 1 } }, { timeout: 120 });
    const error = engine.fs === 'xfs' ? 'No space left on device' : 'Disk quota exceeded';
    const write = await sh(sandbox, 'head -c 1536M /dev/zero > ~/fill; echo "exit $?"; sync; stat -c "%s" ~/fill');
    expect(write.result).toContain(error);
    const [, code, bytes] = /exit (\d+)\s+(\d+)/.exec(write.result)!;
    expect(Number(code)).not.toBe(0);
    console.log(`storage-opt on ${engine.fs}: a 1.5 GiB write into a 1 GiB sandbox stopped at ${(Number(bytes) / GiB).toFixed(3)} GiB with "${error}"`);
    // The limit is the sandbox's size, to within what the file system counts besides file data.
    expect(Number(bytes)).toBeGreaterThan(0.85 * GiB);
    expect(Number(bytes)).toBeLessThanOrEqual(1.05 * GiB);

    await sandbox.refreshData();
    expect(sandbox.state).toBe('started');
    expect((await sh(sandbox, 'echo alive')).result.trim()).toBe('alive');
    expect((await sh(sandbox, 'rm ~/fill && head -c 100M /dev/zero > ~/again && echo written')).result).toContain('written');
    await sandbox.delete();
  });
});
