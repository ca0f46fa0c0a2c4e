import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDiskWatchdog, describeDiskMode, diskLimitReason, formatBytes, judge, storageOptSupport, type WatchedSandbox } from './disk';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('storageOptSupport', () => {
  it('knows overlay2 on xfs and btrfs can limit sizes, and says why others cannot', () => {
    expect(storageOptSupport({ Driver: 'overlay2', DriverStatus: [['Backing Filesystem', 'xfs']] })).toEqual({ how: 'overlay2 on xfs with project quotas', countsImage: false });
    expect(storageOptSupport({ Driver: 'btrfs', DriverStatus: [['Build Version', 'Btrfs v6.2']] })).toEqual({ how: 'btrfs with quota groups', countsImage: true });
    expect(storageOptSupport({ Driver: 'overlay2', DriverStatus: [['Backing Filesystem', 'extfs']] })).toEqual({
      why: "the engine's overlay2 on extfs has no size limits (--storage-opt size needs overlay2 on xfs mounted with pquota, or btrfs)",
    });
    expect((storageOptSupport({ Driver: 'vfs' }) as { why: string }).why).toMatch(/^the engine's vfs has no size limits/);
  });
});

describe('the start line and the reason', () => {
  it('names the mode and what it does', () => {
    expect(describeDiskMode({ kind: 'storage-opt', how: 'overlay2 on xfs with project quotas', countsImage: false }, 5)).toBe(
      'storage-opt (overlay2 on xfs with project quotas): writes past a sandbox\'s size fail, the sandbox keeps running',
    );
    expect(describeDiskMode({ kind: 'watchdog', why: 'the engine has none' }, 5)).toBe('watchdog (checks every 5 s, stops a sandbox past its size; the engine has none)');
    expect(describeDiskMode({ kind: 'off', why: 'remote engine' }, 5)).toBe('off (remote engine); creates that set disk are refused');
  });

  it('tells the owner what happened, how much, and how to get back', () => {
    expect(formatBytes(1.5 * GiB)).toBe('1.5 GiB');
    expect(formatBytes(3.2149 * GiB)).toBe('3.21 GiB');
    expect(formatBytes(100 * MiB)).toBe('100 MiB');
    expect(diskLimitReason(3, 3.2 * GiB, true)).toBe(
      'Disk limit of 3 GiB exceeded (3.2 GiB written), so the sandbox was stopped; its files are kept. Start it again and delete files ' +
        'to get back under 3 GiB: until then it may write at most 100 MiB more before it is stopped again.',
    );
    expect(diskLimitReason(1, 1.25 * GiB, false)).toMatch(/^Disk limit of 1 GiB exceeded \(more than 1.25 GiB written\)/);
    expect(diskLimitReason(1, GiB + 3.5 * MiB, true)).toMatch(/^Disk limit of 1 GiB exceeded \(1027 MiB written\)/);
  });
});

describe('judge', () => {
  const limit = 10 * GiB;
  const slack = 100 * MiB;
  it('leaves a sandbox under its size alone', () => {
    expect(judge({ overOnce: false }, { bytes: 9 * GiB, limit, firstOfFreshRun: false, slack })).toEqual({ next: { allowance: limit, overOnce: false }, action: 'ok' });
  });

  it('stops one over its size when a second measurement agrees', () => {
    const first = judge({ overOnce: false }, { bytes: 11 * GiB, limit, firstOfFreshRun: false, slack });
    expect(first.action).toBe('confirm');
    expect(judge(first.next, { bytes: 11 * GiB, limit, firstOfFreshRun: false, slack }).action).toBe('stop');
    // A file seen twice during a rename: the second walk finds it once.
    expect(judge(first.next, { bytes: 9 * GiB, limit, firstOfFreshRun: false, slack })).toEqual({ next: { allowance: limit, overOnce: false }, action: 'ok' });
  });

  it('lets a sandbox started over its size run to delete files, but not grow past the slack', () => {
    const start = judge({ overOnce: false }, { bytes: 12 * GiB, limit, firstOfFreshRun: true, slack });
    expect(start).toEqual({ next: { allowance: 12 * GiB + slack, overOnce: false }, action: 'ok' });
    expect(judge(start.next, { bytes: 12 * GiB + slack, limit, firstOfFreshRun: false, slack }).action).toBe('ok');
    expect(judge(start.next, { bytes: 12 * GiB + slack + 1, limit, firstOfFreshRun: false, slack }).action).toBe('confirm');
    // Back under the size: the size is the limit again.
    const cleaned = judge(start.next, { bytes: 2 * GiB, limit, firstOfFreshRun: false, slack });
    expect(cleaned.next.allowance).toBe(limit);
    expect(judge(cleaned.next, { bytes: 10 * GiB + 1, limit, firstOfFreshRun: false, slack }).action).toBe('confirm');
  });

  it('gives no such grace to a run that was already going when the server started', () => {
    expect(judge({ overOnce: false }, { bytes: 12 * GiB, limit, firstOfFreshRun: false, slack }).action).toBe('confirm');
  });
});

describe('createDiskWatchdog', () => {
  let dir: string;
  let layers: Record<string, string>;
  let stops: { id: string; reason: string }[];
  let close: (() => void) | undefined;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cove-watchdog-'));
    layers = {};
    stops = [];
  });
  afterEach(() => {
    close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A layer directory with `bytes` of data in one file. */
  function layer(name: string, bytes: number, started = new Date().toISOString()): { started: string } {
    const p = path.join(dir, name);
    rmSync(p, { recursive: true, force: true });
    mkdirSync(p);
    const fd = openSync(path.join(p, 'data'), 'w');
    const chunk = Buffer.alloc(MiB, 1);
    for (let i = 0; i < bytes / MiB; i++) writeSync(fd, chunk);
    closeSync(fd);
    layers[name] = started;
    return { started };
  }

  /** The engine as the watchdog sees it: an inspect per container, whose layer is dir/<container id>. */
  const docker = {
    getContainer: (id: string) => ({
      inspect: () => {
        if (!layers[id]) return Promise.reject(Object.assign(new Error('no such container'), { statusCode: 404 }));
        return Promise.resolve({ State: { StartedAt: layers[id] }, GraphDriver: { Data: { UpperDir: path.join(dir, id) } } });
      },
    }),
  } as unknown as Dockerode;

  function watch(sandboxes: () => WatchedSandbox[]) {
    const watchdog = createDiskWatchdog({
      docker,
      intervalMs: 20,
      sandboxes,
      stop: (id, _containerId, reason) => {
        stops.push({ id, reason });
        return Promise.resolve();
      },
      log: pino({ level: 'silent' }),
      slackBytes: 2 * MiB,
    });
    watchdog.start();
    close = () => watchdog.close();
    return watchdog;
  }

  const until = async (check: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    return check();
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('stops a sandbox past its size with the reason, and leaves one under it alone', async () => {
    // Runs that began before the watchdog: no grace.
    const before = new Date(Date.now() - 60_000).toISOString();
    layer('over', 5 * MiB, before);
    layer('under', 3 * MiB, before);
    const sizeGiB = 4 / 1024; // 4 MiB
    watch(() => [
      { id: 'sb-over', containerId: 'over', diskGiB: sizeGiB, updatedAt: '1' },
      { id: 'sb-under', containerId: 'under', diskGiB: sizeGiB, updatedAt: '1' },
    ]);
    expect(await until(() => stops.length > 0)).toBe(true);
    await sleep(200);
    expect(stops.map((s) => s.id)).toEqual(['sb-over']);
    expect(stops[0].reason).toMatch(/^Disk limit of 0\.00390625 GiB exceeded \(\d+ MiB written\)/);
  });

  it('lets a sandbox started over its size delete files, and stops it when it grows instead', async () => {
    await sleep(5); // started after the watchdog did
    let list: WatchedSandbox[] = [];
    watch(() => list);
    await sleep(5);
    layer('c1', 6 * MiB);
    list = [{ id: 'sb', containerId: 'c1', diskGiB: 4 / 1024, updatedAt: '1' }];
    await sleep(300);
    expect(stops).toEqual([]);
    // 1 MiB more is within the slack of 2 MiB; 3 MiB more is not.
    layer('c1', 7 * MiB, layers.c1);
    await sleep(300);
    expect(stops).toEqual([]);
    layer('c1', 10 * MiB, layers.c1);
    expect(await until(() => stops.length > 0)).toBe(true);
    expect(stops[0].reason).toMatch(/\(10 MiB written\)/);
  });

  it('forgets sandboxes that stop, and looks again at a container started anew', async () => {
    const before = new Date(Date.now() - 60_000).toISOString();
    layer('c2', 1 * MiB, before);
    let list: WatchedSandbox[] = [{ id: 'sb', containerId: 'c2', diskGiB: 4 / 1024, updatedAt: '1' }];
    watch(() => list);
    await sleep(200);
    list = [];
    layer('c2', 8 * MiB, before);
    await sleep(200);
    expect(stops).toEqual([]);
    // Started again (a new StartedAt, a new updatedAt) while over: a fresh run, given the grace.
    layer('c2', 8 * MiB);
    list = [{ id: 'sb', containerId: 'c2', diskGiB: 4 / 1024, updatedAt: '2' }];
    await sleep(300);
    expect(stops).toEqual([]);
  });
});
