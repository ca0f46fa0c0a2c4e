/** The pure cgroup parsers behind `GET /system/metrics`, and how the service finds its cgroup's folder. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpuPercent, interpretCgroup, parseCfsQuota, parseCount, parseCpuList, parseCpuMax, parseKeyed, parseMemoryLimit, parseProcCgroup } from './cgroup';
import { locateCgroup } from './service';

describe('cgroup parsing', () => {
  it('reads /proc/self/cgroup for v1 and v2', () => {
    const v1 = parseProcCgroup('12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/docker/abc\n');
    expect(v1.v1.get('memory')).toBe('/docker/abc');
    expect(v1.v1.get('cpuacct')).toBe('/docker/abc');
    expect(v1.v2).toBe('/docker/abc');
    expect(parseProcCgroup('0::/\n').v2).toBe('/');
    expect(parseProcCgroup('garbage\n::\n').v1.size).toBe(0);
  });

  it('parses limits and counters, and says nothing about what it cannot read', () => {
    expect(parseCpuMax('max 100000')).toBeUndefined();
    expect(parseCpuMax('150000 100000\n')).toBe(1.5);
    expect(parseCpuMax('50000')).toBe(0.5);
    expect(parseCpuMax('x y')).toBeUndefined();
    expect(parseCpuMax(undefined)).toBeUndefined();
    expect(parseCfsQuota('-1', '100000')).toBeUndefined();
    expect(parseCfsQuota('200000\n', '100000\n')).toBe(2);
    expect(parseCfsQuota('', '100000')).toBeUndefined();
    expect(parseMemoryLimit('max\n')).toBeUndefined();
    expect(parseMemoryLimit('9223372036854771712')).toBeUndefined();
    expect(parseMemoryLimit('1073741824\n')).toBe(1073741824);
    expect(parseCpuList('0-3,6,8-9')).toBe(7);
    expect(parseCpuList('0')).toBe(1);
    expect(parseCpuList('3-1')).toBeUndefined();
    expect(parseCpuList('')).toBeUndefined();
    expect(parseKeyed('usage_usec 42\nbad line\nuser_usec 7\n')).toEqual(new Map([['usage_usec', 42], ['user_usec', 7]]));
  });

  it('interprets the files of either version', () => {
    expect(
      interpretCgroup({
        version: 2,
        files: { 'cpu.max': '100000 100000', 'cpu.stat': 'usage_usec 5000\nuser_usec 1\n', 'memory.max': 'max', 'memory.current': '1000', 'memory.stat': 'anon 500\nfile 300\ninactive_file 200\n' },
      }),
    ).toEqual({ version: 2, cpuLimit: 1, cpusetCount: undefined, cpuUsageNs: 5_000_000, memLimit: undefined, memCurrent: 1000, memCache: 300, memInactiveFile: 200 });
    expect(
      interpretCgroup({
        version: 1,
        files: {
          'cpu/cpu.cfs_quota_us': '-1',
          'cpu/cpu.cfs_period_us': '100000',
          'cpuacct/cpuacct.usage': '123456',
          'cpuset/cpuset.cpus': '0-1',
          'memory/memory.limit_in_bytes': '9223372036854771712',
          'memory/memory.usage_in_bytes': '5000',
          'memory/memory.stat': 'cache 10\nhierarchical_memory_limit 2147483648\ntotal_cache 1000\ntotal_inactive_file 400\n',
        },
      }),
    ).toEqual({ version: 1, cpuLimit: undefined, cpusetCount: 2, cpuUsageNs: 123456, memLimit: 2147483648, memCurrent: 5000, memCache: 1000, memInactiveFile: 400 });
    expect(interpretCgroup({ version: 1, files: {} })).toMatchObject({ version: 1, memLimit: undefined, cpuUsageNs: undefined });
  });

  it('computes CPU percent of the allowed CPUs over the window', () => {
    expect(cpuPercent({ usageNs: 0, atNs: 0 }, { usageNs: 5e8, atNs: 1e9 }, 1)).toBe(50);
    expect(cpuPercent({ usageNs: 0, atNs: 0 }, { usageNs: 5e8, atNs: 1e9 }, 2)).toBe(25);
    expect(cpuPercent({ usageNs: 0, atNs: 0 }, { usageNs: 3e9, atNs: 1e9 }, 2)).toBe(100);
    expect(cpuPercent({ usageNs: 10, atNs: 0 }, { usageNs: 5, atNs: 1e9 }, 1)).toBeUndefined();
    expect(cpuPercent({ usageNs: 0, atNs: 5 }, { usageNs: 5, atNs: 5 }, 1)).toBeUndefined();
    expect(cpuPercent({ atNs: 0 }, { usageNs: 5, atNs: 1e9 }, 1)).toBeUndefined();
  });

  it("finds the cgroup's folder: the named one when it exists, the mount root inside a container", () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'cove-cgroup-'));
    try {
      for (const c of ['cpu', 'cpuacct', 'cpuset', 'memory']) mkdirSync(path.join(root, c), { recursive: true });
      mkdirSync(path.join(root, 'memory/host/path'), { recursive: true });
      const v1 = locateCgroup(root, '4:memory:/host/path\n3:cpu:/docker/abc\n0::/docker/abc\n');
      expect(v1).toEqual({
        version: 1,
        dirs: { cpu: path.join(root, 'cpu'), cpuacct: path.join(root, 'cpuacct'), cpuset: path.join(root, 'cpuset'), memory: path.join(root, 'memory/host/path') },
      });
      writeFileSync(path.join(root, 'cgroup.controllers'), 'cpu memory\n');
      expect(locateCgroup(root, '0::/\n')).toEqual({ version: 2, dirs: { '': root } });
      mkdirSync(path.join(root, 'user.slice'));
      expect(locateCgroup(root, '0::/user.slice\n')).toEqual({ version: 2, dirs: { '': path.join(root, 'user.slice') } });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('cgroup edge cases', () => {
  it('reads counts only when they are whole, non-negative and safe', () => {
    expect(parseCount('42\n')).toBe(42);
    expect(parseCount(' 0 ')).toBe(0);
    for (const bad of [undefined, '', '-1', '1.5', '1e3', '12abc', '99999999999999999999']) expect(parseCount(bad), String(bad)).toBeUndefined();
  });

  it('takes the smaller of the v1 limit and the hierarchical one, and the cpuset list over nothing', () => {
    const reading = interpretCgroup({
      version: 1,
      files: {
        'memory/memory.limit_in_bytes': '1073741824',
        'memory/memory.stat': 'hierarchical_memory_limit 2147483648\ncache 7\ninactive_file 3\n',
        'cpuset/cpuset.effective_cpus': '0,2',
        'cpuset/cpuset.cpus': '0-7',
      },
    });
    expect(reading.memLimit).toBe(1073741824);
    expect(reading.cpusetCount).toBe(2);
    // Without the total_ keys (a cgroup without children) the cgroup's own figures count.
    expect(reading.memCache).toBe(7);
    expect(reading.memInactiveFile).toBe(3);
  });

  it('refuses a zero or negative quota and a zero period', () => {
    expect(parseCpuMax('0 100000')).toBeUndefined();
    expect(parseCpuMax('100000 0')).toBeUndefined();
    expect(parseCfsQuota('100000', '0')).toBeUndefined();
    expect(parseCfsQuota('abc', '100000')).toBeUndefined();
    expect(parseCpuList('0-1,x')).toBeUndefined();
    expect(parseCpuList(' 2 - 3 ')).toBeUndefined();
  });

  it('ignores v2 lines with a controller name and keeps the last path of a controller', () => {
    const m = parseProcCgroup('0::/a\n0:cpu:/b\n5:cpu:/c\n');
    expect(m.v2).toBe('/a');
    expect(m.v1.get('cpu')).toBe('/c');
  });

  it('never exceeds 100 percent, whatever the counters say', () => {
    expect(cpuPercent({ usageNs: 0, atNs: 0 }, { usageNs: 1e12, atNs: 1 }, 1)).toBe(100);
    expect(cpuPercent({ usageNs: 0, atNs: 0 }, { usageNs: 1, atNs: 1 }, 0)).toBeUndefined();
  });
});
