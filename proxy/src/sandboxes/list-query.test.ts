import { describe, expect, it } from 'vitest';
import type { SandboxRecord } from './repo';
import { searchSandboxes } from './list-query';

const record = (id: string, fields: Partial<SandboxRecord> = {}): SandboxRecord => ({
  id, name: `box-${id}`, ownerKeyId: 'k', state: 'started', image: 'cove-sandbox:latest', snapshot: null, entrypoint: null, user: 'cove', env: {}, labels: {}, public: false,
  networkBlockAll: false, networkAllowList: null, domainAllowList: null, outboundProxyUrl: null, cpu: 1, memory: 1, disk: 10, containerId: null, agentToken: 't', ip: null, errorReason: null,
  autoStopInterval: 0, autoArchiveInterval: 0, autoDeleteInterval: -1, autoPauseInterval: 0, autoDestroyAt: null, stateChangedAt: null,
  createdAt: `2026-11-0${id}T00:00:00.000Z`, updatedAt: 'x', lastActivityAt: `2026-11-2${id}T00:00:00.000Z`, ...fields,
});
const records = [
  record('1', { name: 'Alpha', cpu: 2, labels: { team: 'a' }, public: true }),
  record('2', { name: 'alps', state: 'stopped', image: 'python:3.12', memory: 4 }),
  record('3', { name: 'beta', labels: { team: 'a', env: 'dev' }, disk: 30 }),
  record('4', { name: 'gamma', state: 'error', cpu: 4 }),
];
const ids = (q: Parameters<typeof searchSandboxes>[1]) => searchSandboxes(records, q).items.map((r) => r.id);
const T = { target: 'local' };

describe('searchSandboxes', () => {
  it('sorts by last activity, newest first, unless asked otherwise; ties by id', () => {
    expect(ids(T)).toEqual(['4', '3', '2', '1']);
    expect(ids({ ...T, sort: 'name', order: 'asc' })).toEqual(['1', '2', '3', '4']);
    expect(ids({ ...T, sort: 'cpu', order: 'desc' })).toEqual(['4', '1', '3', '2']);
    expect(ids({ ...T, sort: 'createdAt', order: 'asc' })).toEqual(['1', '2', '3', '4']);
  });

  it('filters by id and name prefix (any case), labels, states, images, targets, ranges, public, times', () => {
    expect(ids({ ...T, name: 'AL', sort: 'name', order: 'asc' })).toEqual(['1', '2']);
    expect(ids({ ...T, id: '3' })).toEqual(['3']);
    expect(ids({ ...T, labels: '{"team":"a"}', sort: 'name', order: 'asc' })).toEqual(['1', '3']);
    expect(ids({ ...T, states: ['stopped', 'error'], sort: 'name', order: 'asc' })).toEqual(['2', '4']);
    expect(ids({ ...T, states: 'started,error', sort: 'name', order: 'asc' })).toEqual(['1', '3', '4']);
    expect(ids({ ...T, snapshots: 'python:3.12' })).toEqual(['2']);
    expect(ids({ ...T, regionIds: ['eu'] })).toEqual([]);
    expect(ids({ ...T, regionIds: ['local'] })).toHaveLength(4);
    expect(ids({ ...T, minCpu: 2, maxCpu: 3 })).toEqual(['1']);
    expect(ids({ ...T, minMemoryGiB: 2 })).toEqual(['2']);
    expect(ids({ ...T, minDiskGiB: 20 })).toEqual(['3']);
    expect(ids({ ...T, minGpu: 1 })).toEqual([]);
    expect(ids({ ...T, isPublic: true })).toEqual(['1']);
    expect(ids({ ...T, isRecoverable: true })).toEqual([]);
    expect(ids({ ...T, createdAtAfter: '2026-11-02T00:00:00Z', createdAtBefore: '2026-11-04T00:00:00Z' })).toEqual(['3']);
    expect(ids({ ...T, lastEventAfter: '2026-11-23T00:00:00Z' })).toEqual(['4']);
  });

  it('pages with an opaque cursor that holds its place, and refuses one from another sort or a forged one', () => {
    const first = searchSandboxes(records, { ...T, sort: 'name', order: 'asc', limit: 3 });
    expect(first.items.map((r) => r.id)).toEqual(['1', '2', '3']);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = searchSandboxes(records, { ...T, sort: 'name', order: 'asc', limit: 3, cursor: first.nextCursor! });
    expect([second.items.map((r) => r.id), second.nextCursor]).toEqual([['4'], null]);
    // A record removed between pages does not shift the next page.
    const after = searchSandboxes(records.filter((r) => r.id !== '2'), { ...T, sort: 'name', order: 'asc', limit: 3, cursor: first.nextCursor! });
    expect(after.items.map((r) => r.id)).toEqual(['4']);
    expect(() => searchSandboxes(records, { ...T, sort: 'cpu', cursor: first.nextCursor! })).toThrow(/sorted by name asc, not cpu desc/);
    expect(() => searchSandboxes(records, { ...T, cursor: 'not-a-cursor' })).toThrow(/Invalid cursor/);
  });

  it('refuses bad labels and dates with a sentence naming them', () => {
    expect(() => searchSandboxes(records, { ...T, labels: '[1]' })).toThrow(/labels must be a JSON object/);
    expect(() => searchSandboxes(records, { ...T, createdAtAfter: 'yesterday' })).toThrow(/createdAtAfter must be a date/);
  });
});
