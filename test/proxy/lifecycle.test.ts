/**
 * Sandbox timers through `cove serve` and the published SDK, with a lifecycle minute shortened to MINUTE_MS by the
 * test-only COVE_TEST_MINUTE_MS (the rules are the same; only the unit is shorter): auto-stop after idle minutes,
 * activity that keeps a sandbox going (API, toolbox, terminal traffic, refreshActivity), auto-delete after a stop and
 * ephemeral sandboxes, ttl, and timers that survive a server restart.
 */
import type { Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';
import { sandboxState, sleep, waitForState as waitFor } from '../helpers/sandbox-state';

const MINUTE_MS = 400;
let cove: TestCove;

beforeAll(async () => {
  cove = await startCove({ pool: 1, env: { COVE_TEST_MINUTE_MS: String(MINUTE_MS) } });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

const stateOf = (id: string) => sandboxState(cove, id);
/** The state a timer's action is in while it runs: the action starts within the test's minutes, and then takes real seconds. */
const UNDER_WAY: Record<string, string> = { stopped: 'stopping', gone: 'destroying', paused: 'pausing' };
/** Waits for a timer to act within `ms`, then for its action (a container stop, pause or removal) to finish. */
async function waitForState(id: string, wanted: string, ms: number): Promise<string> {
  const underWay = UNDER_WAY[wanted];
  if (!underWay) return waitFor(cove, id, wanted, ms, 50);
  await waitFor(cove, id, [underWay, wanted], ms, 50);
  return waitFor(cove, id, wanted, 60_000, 50);
}

describe('sandbox timers', () => {
  it('stops a quiet sandbox after its auto-stop interval, and keeps a busy one going', async () => {
    const daytona = cove.daytona();
    const [quiet, busy] = await Promise.all([daytona.create({ autoStopInterval: 2 }), daytona.create({ autoStopInterval: 2 })]);
    try {
      expect(quiet.autoStopInterval).toBe(2);
      const until = Date.now() + 6 * MINUTE_MS;
      while (Date.now() < until) {
        await busy.process.executeCommand('true');
        await sleep(MINUTE_MS / 4);
      }
      expect(await stateOf(quiet.id)).toBe('stopped');
      expect(await stateOf(busy.id)).toBe('started');
      // A command that runs longer than the interval keeps its sandbox going while it runs.
      const long = await busy.process.executeCommand(`sleep ${(5 * MINUTE_MS) / 1000}; echo done`);
      expect(long.result).toBe('done\n');
      expect(await stateOf(busy.id)).toBe('started');
      await waitForState(busy.id, 'stopped', 6 * MINUTE_MS);
    } finally {
      await Promise.all([quiet.delete(), busy.delete()]);
    }
  });

  it('counts terminal traffic and refreshActivity as activity, and takes a new interval at once', async () => {
    const daytona = cove.daytona();
    const sandbox = await daytona.create({ autoStopInterval: 2 });
    try {
      let out = '';
      const pty = await sandbox.process.createPty({ id: 'keepalive', cols: 80, rows: 20, onData: (d) => void (out += new TextDecoder().decode(d)) });
      await pty.waitForConnection();
      // A command that prints every 100 ms: traffic on the terminal's WebSocket, no API call.
      await pty.sendInput('while :; do echo tick; sleep 0.1; done\n');
      await sleep(6 * MINUTE_MS);
      expect(out).toContain('tick');
      expect(await stateOf(sandbox.id)).toBe('started');
      await pty.kill();
      await pty.disconnect();

      for (let i = 0; i < 6; i++) {
        await sandbox.refreshActivity();
        await sleep(MINUTE_MS / 2);
      }
      expect(await stateOf(sandbox.id)).toBe('started');

      await sandbox.setAutostopInterval(0);
      expect((await daytona.get(sandbox.id)).autoStopInterval).toBe(0);
      await sleep(4 * MINUTE_MS);
      expect(await stateOf(sandbox.id)).toBe('started');
      await sandbox.setAutostopInterval(1);
      await waitForState(sandbox.id, 'stopped', 6 * MINUTE_MS);
    } finally {
      await sandbox.delete();
    }
  });

  it('deletes an ephemeral sandbox when it stops, and another its auto-delete interval after', async () => {
    const daytona = cove.daytona();
    const [ephemeral, later] = await Promise.all([daytona.create({ ephemeral: true, autoStopInterval: 0 }), daytona.create({ autoDeleteInterval: 3, autoStopInterval: 0 })]);
    expect(ephemeral.autoDeleteInterval).toBe(0);
    await ephemeral.stop();
    await waitForState(ephemeral.id, 'gone', 4 * MINUTE_MS);
    await later.stop();
    await sleep(2 * MINUTE_MS);
    expect(await stateOf(later.id)).toBe('stopped');
    await waitForState(later.id, 'gone', 4 * MINUTE_MS);
    expect(cove.containers().filter((c) => [ephemeral.id, later.id].some((id) => c.includes(id)))).toEqual([]);
  });

  it('destroys a sandbox at its ttl whatever it does, and keeps the ttl across a server restart', async () => {
    let daytona = cove.daytona();
    const busy = await daytona.create({ autoStopInterval: 0 });
    await busy.setTtl(3);
    const dto = await (await cove.api(`/sandbox/${busy.id}`)).json();
    expect(Date.parse(dto.autoDestroyAt) - Date.now()).toBeGreaterThan(MINUTE_MS);
    const until = Date.now() + 10 * MINUTE_MS;
    let gone = false;
    while (!gone && Date.now() < until) {
      gone = (await stateOf(busy.id)) === 'gone';
      if (!gone) await busy.process.executeCommand('true').catch(() => {});
      await sleep(MINUTE_MS / 4);
    }
    expect(gone).toBe(true);

    // Timers live in the database: a server that restarts acts on them.
    const kept: Sandbox = await daytona.create({ autoStopInterval: 0 });
    await kept.setTtl(4);
    const { dataDir, apiKey } = cove;
    await cove.stop();
    cove = await startCove({ pool: 1, dataDir, apiKey, env: { COVE_TEST_MINUTE_MS: String(MINUTE_MS) } });
    daytona = cove.daytona();
    await waitForState(kept.id, 'gone', 10 * MINUTE_MS);
  }, 120_000);

  it('pauses with every process frozen where it was and its memory kept; start resumes it; idle ones pause themselves', async () => {
    const daytona = cove.daytona();
    const sandbox = await daytona.create({ autoStopInterval: 0 });
    try {
      await sandbox.process.createSession('counter');
      await sandbox.process.executeSessionCommand('counter', { command: 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.05; done', runAsync: true });
      await sleep(500);
      const count = async () => Number((await sandbox.process.executeCommand('cat /tmp/count')).result.trim());
      const before = await count();
      await sandbox.pause();
      expect(sandbox.state).toBe('paused');
      expect(await stateOf(sandbox.id)).toBe('paused');
      // Refused while paused, with a sentence saying why.
      const refused = await cove.api(`/sandbox/${sandbox.id}/toolbox-proxy-url`).then(() => fetch(`${cove.url}/toolbox/${sandbox.id}/process/execute`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ command: 'true' }),
      }));
      expect(refused.status).toBe(409);
      expect((await refused.json()).message).toMatch(/paused/);
      await sleep(1500);
      await sandbox.start();
      expect(sandbox.state).toBe('started');
      const after = await count();
      // Frozen: about 30 increments would have happened in 1.5 s; only the few between the read and the pause did.
      expect(after - before).toBeLessThan(15);
      await sleep(500);
      expect(await count()).toBeGreaterThan(after + 3);
    } finally {
      await sandbox.delete();
    }

    const idle = await daytona.create({ autoStopInterval: 0, autoPauseInterval: 2 });
    try {
      expect(idle.autoPauseInterval).toBe(2);
      await waitForState(idle.id, 'paused', 6 * MINUTE_MS);
      await idle.start();
      expect((await idle.process.executeCommand('echo back')).result).toBe('back\n');
    } finally {
      await idle.delete();
    }
  });

  it('resizes cpu and memory of a running sandbox at once, and disk only upward while it is stopped', async () => {
    const sandbox = await cove.daytona().create({ autoStopInterval: 0 });
    try {
      const limits = async () =>
        (await sandbox.process.executeCommand('cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory/memory.limit_in_bytes')).result.trim().split('\n');
      expect(await limits()).toEqual(['100000', String(1024 ** 3)]);
      await sandbox.resize({ cpu: 2, memory: 2 });
      expect([sandbox.cpu, sandbox.memory]).toEqual([2, 2]);
      expect(await limits()).toEqual(['200000', String(2 * 1024 ** 3)]);
      const refused = async (body: object) => {
        const res = await cove.api(`/sandbox/${sandbox.id}/resize`, { method: 'POST', body: JSON.stringify(body) });
        return [res.status, (await res.json()).message as string] as const;
      };
      expect(await refused({ disk: 20 })).toEqual([409, expect.stringMatching(/disk can only be changed while the sandbox is stopped/)]);
      expect(await refused({})).toEqual([400, expect.stringMatching(/Give cpu, memory or disk/)]);
      expect(await refused({ gpu: 1 })).toEqual([400, expect.stringMatching(/gpu/)]);
      await sandbox.stop();
      await sandbox.resize({ disk: 20 });
      expect(sandbox.disk).toBe(20);
      expect(await refused({ disk: 5 })).toEqual([400, expect.stringMatching(/disk can only grow/)]);
      await sandbox.start();
      expect(await limits()).toEqual(['200000', String(2 * 1024 ** 3)]);
    } finally {
      await sandbox.delete();
    }
  });

  it('sets labels and timers, and refuses bad intervals by name', async () => {
    const sandbox = await cove.daytona().create();
    try {
      expect(sandbox.autoStopInterval).toBe(15);
      // Daytona's defaults: archived 7 days after a stop.
      expect(sandbox.autoArchiveInterval).toBe(7 * 24 * 60);
      await sandbox.setAutoArchiveInterval(60);
      expect((await cove.daytona().get(sandbox.id)).autoArchiveInterval).toBe(60);
      await sandbox.setLabels({ team: 'a', stage: 'dev' });
      expect((await cove.daytona().get(sandbox.id)).labels).toEqual({ team: 'a', stage: 'dev' });
      const refused = async (path: string, body?: object) => {
        const res = await cove.api(path, { method: 'POST', ...(body ? { body: JSON.stringify(body) } : {}) });
        expect(res.status, path).toBe(400);
        return (await res.json()).message as string;
      };
      expect(await refused(`/sandbox/${sandbox.id}/autostop/soon`)).toMatch(/interval must be a whole number of minutes/);
      expect(await refused(`/sandbox/${sandbox.id}/autostop/-1`)).toMatch(/autoStopInterval must be 0 or more/);
      expect(await refused('/sandbox', { autoArchiveInterval: -1 })).toMatch(/autoArchiveInterval/);
    } finally {
      await sandbox.delete();
    }
  });
});
