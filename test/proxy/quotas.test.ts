/**
 * Quotas per API key (Daytona's organization limits) through a real `cove serve`, the real `cove keys` CLI and the
 * published Daytona SDK: started sandboxes, total vCPU, memory and disk, per-sandbox maximums, races, admin keys.
 */
import { spawnSync } from 'node:child_process';
import { DaytonaBadRequestError, type Daytona, type Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';

let cove: TestCove;
beforeAll(async () => {
  // Server-wide defaults from flags: every key that sets none of its own gets at most 2 vCPU per sandbox.
  cove = await startCove({ pool: 2, args: ['--max-sandboxes', '10', '--max-sandbox-cpu', '2'] });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});



/** Creates with the default image and these resources (the SDK sends resources with an image). */
const create = (daytona: Daytona, resources: { cpu?: number; memory?: number; disk?: number } = {}) =>
  daytona.create({ image: 'cove-sandbox:latest', resources }, { timeout: 120 });

/** Deletes what a test made, whatever state it is in. */
async function removeAll(sandboxes: (Sandbox | undefined)[]): Promise<void> {
  await Promise.all(sandboxes.map((s) => s && cove.api(`/sandbox/${s.id}`, { method: 'DELETE' })));
}

describe('quotas per API key', () => {
  it('cove keys create, set and list take the limit flags; cove serve --help says the defaults', () => {
    const { id } = cove.newKey('flags', '--max-sandboxes', '3', '--max-cpu', '4', '--max-memory', '5', '--max-disk', 'unlimited', '--max-sandbox-cpu', '1', '--max-sandbox-memory', '2', '--max-sandbox-disk', '6');
    const line = () => cove.cli('keys', 'list').stdout.split('\n').find((l) => l.startsWith(id))!;
    expect(line()).toContain('limits max-sandboxes=3 max-cpu=4 max-memory=5 max-disk=unlimited max-sandbox-cpu=1 max-sandbox-memory=2 max-sandbox-disk=6');
    const set = cove.cli('keys', 'set', id, '--max-cpu', '8', '--max-disk', 'default');
    expect(set.status, set.stderr).toBe(0);
    expect(line()).toContain('limits max-sandboxes=3 max-cpu=8 max-memory=5 max-sandbox-cpu=1 max-sandbox-memory=2 max-sandbox-disk=6 (others server defaults)');
    expect(cove.cli('keys', 'list').stdout).toMatch(/\(admin\).*limits: unlimited/);

    const bad = cove.cli('keys', 'set', id, '--max-cpu', 'lots');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--max-cpu: lots is not a whole number/);
    expect(cove.cli('keys', 'set', 'no-such-key', '--max-cpu', '1').stderr).toMatch(/no active key/);
    expect(cove.cli('keys', 'set', id).stderr).toMatch(/needs at least one limit/);
    expect(cove.cli('keys', '--help').stdout).toMatch(/--max-sandbox-memory N/);

    const help = spawnSync(process.execPath, [COVE_BIN, 'serve', '--help'], { encoding: 'utf8' }).stdout;
    expect(help).toMatch(/--max-sandboxes N\s+started sandboxes at once \(COVE_MAX_SANDBOXES, default 10\)/);
    expect(help).toMatch(/--max-disk N\s+GiB of disk over started and stopped sandboxes \(COVE_MAX_DISK, default 100\)/);
  });

  it('refuses the 11th started sandbox of a key limited to 10, also when all are asked for at once; stopping one frees a slot', async () => {
    // Disk off for this key: the stopped sandbox below would otherwise hold disk against the 11th.
    const { key } = cove.newKey('ten', '--max-sandboxes', '10', '--max-disk', 'unlimited');
    const daytona = cove.daytona(key);
    const made: Sandbox[] = [];
    try {
      // Twelve at once: exactly ten pass, whatever the interleaving (the pool answers some, cold starts the rest).
      const results = await Promise.allSettled(Array.from({ length: 12 }, () => create(daytona)));
      for (const r of results) if (r.status === 'fulfilled') made.push(r.value);
      expect(made.length).toBe(10);
      for (const r of results) {
        if (r.status === 'rejected') {
          // Daytona's class for its organization limits (a 400): what code written for Daytona catches.
          expect(r.reason).toBeInstanceOf(DaytonaBadRequestError);
          expect(r.reason).toMatchObject({ statusCode: 400, code: 'QUOTA_EXCEEDED', message: expect.stringMatching(/^Sandbox limit of 10 started sandboxes reached for this API key/) });
        }
      }
      // The wire shape: Cove's envelope, the status Daytona answers for an organization limit.
      const eleventh = await cove.api('/sandbox', { method: 'POST', body: '{}', key });
      expect(eleventh.status).toBe(400);
      expect(await eleventh.json()).toMatchObject({ code: 'QUOTA_EXCEEDED', source: 'DAYTONA_API', message: expect.stringContaining('Sandbox limit of 10 started sandboxes') });

      const stopped = made[0];
      await stopped.stop();
      const replacement = await create(daytona);
      made.push(replacement);
      expect(replacement.state).toBe('started');
      // Ten started again: the stopped one may not start.
      await expect(stopped.start()).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/^Sandbox limit of 10 started sandboxes/) });
      expect((await daytona.get(stopped.id)).state).toBe('stopped');
      await replacement.delete();
      await stopped.start();
      expect(stopped.state).toBe('started');
    } finally {
      await removeAll(made);
    }
  }, 300_000);

  it('limits total vCPU and memory, and applies cove keys set on a running server at once', async () => {
    const { key, id } = cove.newKey('small', '--max-cpu', '3', '--max-memory', '3');
    const daytona = cove.daytona(key);
    const made: Sandbox[] = [];
    try {
      made.push(await create(daytona, { cpu: 2, memory: 1 }));
      await expect(create(daytona, { cpu: 2, memory: 1 })).rejects.toMatchObject({
        statusCode: 400,
        message: expect.stringMatching(/^Total CPU limit of 3 vCPU reached for this API key: 2 vCPU in use/),
      });
      await expect(create(daytona, { cpu: 1, memory: 3 })).rejects.toMatchObject({
        statusCode: 400,
        message: expect.stringMatching(/^Total memory limit of 3 GiB reached for this API key: 1 GiB in use/),
      });
      expect(cove.cli('keys', 'set', id, '--max-cpu', '4', '--max-memory', '4').status).toBe(0);
      made.push(await create(daytona, { cpu: 2, memory: 1 }));
      expect(made[1].cpu).toBe(2);
      expect(cove.cli('keys', 'set', id, '--max-cpu', 'unlimited', '--max-memory', '0').status).toBe(0);
      await expect(create(daytona, { cpu: 1, memory: 1 })).rejects.toMatchObject({ message: expect.stringMatching(/^Total memory limit of 0 GiB/) });
    } finally {
      await removeAll(made);
    }
  }, 180_000);

  it('counts the disk of stopped sandboxes against the total disk', async () => {
    const { key } = cove.newKey('disk', '--max-disk', '15');
    const daytona = cove.daytona(key);
    const made: Sandbox[] = [];
    try {
      const first = await create(daytona, { disk: 10 });
      made.push(first);
      await first.stop();
      await expect(create(daytona, { disk: 10 })).rejects.toMatchObject({
        statusCode: 400,
        message: expect.stringMatching(/^Total disk limit of 15 GiB reached for this API key: 10 GiB held by started and stopped sandboxes/),
      });
      // Starting a stopped sandbox does not count its disk twice.
      await first.start();
      expect(first.state).toBe('started');
    } finally {
      await removeAll(made);
    }
  }, 120_000);

  it('refuses a sandbox over a per-sandbox maximum with a 400 naming the field and the maximum', async () => {
    const { key } = cove.newKey('plain');
    const daytona = cove.daytona(key);
    await expect(create(daytona, { cpu: 3 })).rejects.toMatchObject({ statusCode: 400, message: 'cpu 3 is over the maximum of 2 vCPU per sandbox for this API key' });
    await expect(create(daytona, { memory: 9 })).rejects.toMatchObject({ statusCode: 400, message: 'memory 9 is over the maximum of 8 GiB per sandbox for this API key' });
    const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify({ disk: 11 }), key });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'INVALID_REQUEST', source: 'DAYTONA_API', message: 'disk 11 is over the maximum of 10 GiB per sandbox for this API key' });
    const { items } = await (await cove.api('/sandbox', { key })).json();
    expect(items).toEqual([]);
  });

  it('binds admin keys only by limits set on the key itself', async () => {
    const admin = cove.daytona();
    const made: Sandbox[] = [];
    try {
      // Over the server's per-sandbox disk maximum (10) and its total of 100 GiB: the admin key has no default limit.
      made.push(await create(admin, { disk: 200 }));
      const adminId = cove.cli('keys', 'list').stdout.split('\n').find((l) => l.includes('(admin)'))!.split(/\s+/)[0];
      expect(cove.cli('keys', 'set', adminId, '--max-sandbox-disk', '100').status).toBe(0);
      await expect(create(admin, { disk: 200 })).rejects.toMatchObject({ statusCode: 400, message: 'disk 200 is over the maximum of 100 GiB per sandbox for this API key' });
      expect(cove.cli('keys', 'set', adminId, '--max-sandbox-disk', 'default').status).toBe(0);
    } finally {
      await removeAll(made);
    }
  }, 120_000);
});
