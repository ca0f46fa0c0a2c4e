import { describe, expect, it } from 'vitest';
import type { SandboxState } from '../../../wire/sandbox';
import { DEFAULT_LIMITS, effectiveLimits, parseLimit, refusal, usageOf, type Limits } from './limits';

const sandbox = (state: SandboxState, cpu = 1, memory = 1, disk = 10) => ({ state, cpu, memory, disk });
const limits = (over: Partial<Limits> = {}): Limits => ({ ...DEFAULT_LIMITS, ...over });
const one = { cpu: 1, memory: 1, disk: 10 };

describe('usageOf', () => {
  it('counts compute while a sandbox is created (its image built too), starting, started or stopping, and disk while stopped too', () => {
    expect(usageOf([sandbox('pending_build', 1, 2, 3), sandbox('building_snapshot', 1, 2, 3), sandbox('build_failed', 4, 8, 7)])).toEqual({ started: 2, cpu: 2, memory: 4, disk: 6 });
    const usage = usageOf([
      sandbox('creating', 1, 1, 3),
      sandbox('starting', 2, 2, 3),
      sandbox('started', 1, 4, 3),
      sandbox('stopping', 1, 1, 3),
      sandbox('stopped', 4, 8, 5),
      sandbox('error', 4, 8, 7),
      sandbox('destroying', 4, 8, 7),
    ]);
    expect(usage).toEqual({ started: 4, cpu: 5, memory: 8, disk: 17 });
    expect(usageOf([])).toEqual({ started: 0, cpu: 0, memory: 0, disk: 0 });
  });
});

describe('refusal', () => {
  const used = (started: number, cpu = started, memory = started, disk = 10 * started) => ({ started, cpu, memory, disk });

  it('admits up to the limit and refuses the one past it, naming the limit and its value', () => {
    expect(refusal(limits({ maxSandboxes: 10 }), used(9), one)).toBeUndefined();
    const e = refusal(limits({ maxSandboxes: 10 }), used(10), one)!;
    expect(e).toMatchObject({ code: 'QUOTA_EXCEEDED', status: 400 });
    expect(e.message).toMatch(/^Sandbox limit of 10 started sandboxes reached for this API key/);
    expect(refusal(limits({ maxSandboxes: 1 }), used(1), one)!.message).toMatch(/^Sandbox limit of 1 started sandbox reached/);
    expect(refusal(limits({ maxSandboxes: 0 }), used(0), one)!.message).toMatch(/limit of 0 started sandboxes/);
  });

  it('checks totals of vCPU, memory and disk with what the new sandbox needs', () => {
    const l = limits({ maxCpu: 3, maxMemory: 3, maxDisk: 15 });
    expect(refusal(l, used(1, 2, 1, 5), { cpu: 1, memory: 2, disk: 10 })).toBeUndefined();
    const cpu = refusal(l, used(1, 2, 1, 5), { cpu: 2, memory: 1, disk: 1 })!;
    expect(cpu.code).toBe('QUOTA_EXCEEDED');
    expect(cpu.message).toMatch(/^Total CPU limit of 3 vCPU reached for this API key: 2 vCPU in use/);
    expect(refusal(l, used(1, 1, 1, 5), { cpu: 1, memory: 3, disk: 1 })!.message).toMatch(/^Total memory limit of 3 GiB reached/);
    expect(refusal(l, used(0, 0, 0, 10), { cpu: 1, memory: 1, disk: 10 })!.message).toMatch(/^Total disk limit of 15 GiB reached/);
  });

  it('checks only disk for a sandbox that stays stopped (its disk grows): no started slot, vCPU or memory', () => {
    const l = limits({ maxSandboxes: 1, maxCpu: 1, maxMemory: 1, maxDisk: 25, maxSandboxDisk: 20 });
    const full = used(1, 1, 1, 10);
    expect(refusal(l, full, { cpu: 1, memory: 1, disk: 15 })!.message).toMatch(/^Sandbox limit of 1 started sandbox/);
    expect(refusal(l, full, { cpu: 1, memory: 1, disk: 15 }, { holdsCompute: false })).toBeUndefined();
    expect(refusal(l, full, { cpu: 1, memory: 1, disk: 16 }, { holdsCompute: false })!.message).toMatch(/^Total disk limit of 25 GiB reached/);
    expect(refusal(l, full, { cpu: 4, memory: 8, disk: 1 }, { holdsCompute: false })).toBeUndefined();
  });

  it('refuses a sandbox over a per-sandbox maximum as a bad request naming the field, before any total', () => {
    const l = limits({ maxSandboxes: 0 });
    expect(refusal(l, used(0), { cpu: 5, memory: 1, disk: 1 })).toMatchObject({ code: 'INVALID_REQUEST', message: 'cpu 5 is over the maximum of 4 vCPU per sandbox for this API key' });
    expect(refusal(l, used(0), { cpu: 1, memory: 9, disk: 1 })!.message).toBe('memory 9 is over the maximum of 8 GiB per sandbox for this API key');
    expect(refusal(l, used(0), { cpu: 1, memory: 1, disk: 11 })!.message).toBe('disk 11 is over the maximum of 10 GiB per sandbox for this API key');
    expect(refusal(l, used(0), { cpu: 4, memory: 8, disk: 10 })!.code).toBe('QUOTA_EXCEEDED');
  });

  it('never refuses for a limit that is off', () => {
    const off = Object.fromEntries(Object.keys(DEFAULT_LIMITS).map((n) => [n, null])) as Limits;
    expect(refusal(off, used(1000, 1000, 1000, 100000), { cpu: 64, memory: 256, disk: 1024 })).toBeUndefined();
  });
});

describe('effectiveLimits', () => {
  it('takes a key\'s own limits over the defaults; admin keys have no default limit', () => {
    expect(effectiveLimits(DEFAULT_LIMITS, { maxCpu: 8, maxDisk: null }, false)).toEqual({ ...DEFAULT_LIMITS, maxCpu: 8, maxDisk: null });
    const admin = effectiveLimits(DEFAULT_LIMITS, { maxSandboxes: 50 }, true);
    expect(admin.maxSandboxes).toBe(50);
    expect(Object.entries(admin).filter(([n]) => n !== 'maxSandboxes').every(([, v]) => v === null)).toBe(true);
  });
});

describe('parseLimit', () => {
  it('reads whole numbers and "unlimited", and names what it refuses', () => {
    expect(parseLimit('10', 'x')).toBe(10);
    expect(parseLimit('0', 'x')).toBe(0);
    expect(parseLimit(' Unlimited ', 'x')).toBeNull();
    for (const bad of ['-1', '1.5', 'ten', '', '1e3']) expect(() => parseLimit(bad, '--max-cpu')).toThrow(/^--max-cpu: /);
  });
});
