/** The desktop's supervisor with small shell programs: restarts with backoff, output tails, stops that leave nothing. */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createSupervisor, type Supervisor } from './supervisor';

const env = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin' });
/** Whether a process runs (a zombie waiting for its reaper does not). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const waitFor = async (check: () => boolean, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

let sup: Supervisor | undefined;
afterEach(async () => {
  await sup?.stopAll();
  sup = undefined;
});

describe('supervisor', () => {
  it('restarts a program that exits, after a delay, and keeps its stdout and stderr', async () => {
    sup = createSupervisor({
      programs: [{ name: 'flaky', command: '/bin/sh', args: ['-c', 'echo started; echo oops >&2; exit 3'], priority: 1 }],
      env,
      cwd: '/',
      spawnAs: {},
    });
    sup.start('flaky');
    await waitFor(() => (sup!.logs('flaky').match(/started/g) ?? []).length >= 2);
    expect(sup.errors('flaky')).toMatch(/oops\n\[cove\] flaky exited \(code 3\)/);
    expect(sup.status('flaky')).toMatchObject({ priority: 1, autoRestart: true });
  });

  it('keeps only the last 64 KiB of output', async () => {
    sup = createSupervisor({
      programs: [{ name: 'loud', command: '/bin/sh', args: ['-c', 'head -c 200000 /dev/zero | tr "\\0" a; echo END; sleep 30'], priority: 1 }],
      env,
      cwd: '/',
      spawnAs: {},
    });
    sup.start('loud');
    await waitFor(() => sup!.logs('loud').includes('END'));
    expect(sup.logs('loud').length).toBe(64 * 1024);
  });

  it('stops the whole process group, reports it stopped and does not restart it', async () => {
    sup = createSupervisor({
      programs: [{ name: 'parent', command: '/bin/sh', args: ['-c', 'sleep 60 & echo $!; wait'], priority: 1 }],
      env,
      cwd: '/',
      spawnAs: {},
    });
    sup.start('parent');
    await waitFor(() => /\d+/.test(sup!.logs('parent')));
    const child = Number(sup.logs('parent').trim());
    const { pid, running } = sup.status('parent');
    expect(running).toBe(true);
    expect(alive(pid!) && alive(child)).toBe(true);
    await sup.stop('parent');
    expect(sup.status('parent')).toEqual({ running: false, priority: 1, autoRestart: true });
    await waitFor(() => !alive(child), 1_000);
    await new Promise((r) => setTimeout(r, 700));
    expect(sup.isRunning('parent')).toBe(false);
  });

  it('reports a command that cannot run, and retries it', async () => {
    sup = createSupervisor({ programs: [{ name: 'missing', command: '/no/such/program', args: [], priority: 1 }], env, cwd: '/', spawnAs: {} });
    sup.start('missing');
    await waitFor(() => sup!.errors('missing').includes('could not run'));
    expect(sup.isRunning('missing')).toBe(false);
  });
});
