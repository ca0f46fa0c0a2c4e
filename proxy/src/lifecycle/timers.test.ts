import { describe, expect, it } from 'vitest';
import type { SandboxRecord } from '../sandboxes/repo';
import { dueAction, nextDue } from './timers';

const MIN = 60_000;
const T0 = Date.parse('2026-12-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const record = (fields: Partial<SandboxRecord> = {}): SandboxRecord => ({
  id: 's', name: 's', ownerKeyId: 'k', state: 'started', image: 'i', snapshot: null, entrypoint: null, user: 'u', env: {}, labels: {}, public: false,
  networkBlockAll: false, networkAllowList: null, domainAllowList: null, outboundProxyUrl: null, cpu: 1, memory: 1, disk: 10, containerId: 'c', agentToken: 't', ip: '1.2.3.4', errorReason: null,
  autoStopInterval: 15, autoArchiveInterval: 0, autoDeleteInterval: -1, autoPauseInterval: 0, autoDestroyAt: null, stateChangedAt: at(0),
  createdAt: at(0), updatedAt: at(0), lastActivityAt: at(0), ...fields,
});

describe('dueAction', () => {
  it('stops a started sandbox idle for its auto-stop interval, not before, and never with 0', () => {
    expect(dueAction(record(), T0 + 15 * MIN - 1, MIN)).toBeUndefined();
    expect(dueAction(record(), T0 + 15 * MIN, MIN)).toBe('stop');
    expect(dueAction(record({ lastActivityAt: at(10 * MIN) }), T0 + 20 * MIN, MIN)).toBeUndefined();
    expect(dueAction(record({ autoStopInterval: 0 }), T0 + 1000 * MIN, MIN)).toBeUndefined();
    expect(nextDue(record({ lastActivityAt: at(10 * MIN) }), T0 + 20 * MIN, MIN)).toBe(5 * MIN);
  });

  it('deletes a stopped sandbox its auto-delete interval after the stop: 0 at once, -1 never', () => {
    const stopped = (autoDeleteInterval: number) => record({ state: 'stopped', autoDeleteInterval, stateChangedAt: at(60 * MIN) });
    expect(dueAction(stopped(0), T0 + 60 * MIN, MIN)).toBe('delete');
    expect(dueAction(stopped(30), T0 + 89 * MIN, MIN)).toBeUndefined();
    expect(dueAction(stopped(30), T0 + 90 * MIN, MIN)).toBe('delete');
    expect(dueAction(stopped(-1), T0 + 10_000 * MIN, MIN)).toBeUndefined();
    // Only stopped ones: an errored sandbox is left for its owner to look at.
    expect(dueAction(record({ state: 'error', autoDeleteInterval: 0 }), T0 + MIN, MIN)).toBeUndefined();
  });

  it('archives a stopped sandbox its auto-archive interval after the stop (0: 30 days), unless it is deleted first', () => {
    const stopped = (fields: Partial<SandboxRecord>) => record({ state: 'stopped', stateChangedAt: at(0), ...fields });
    expect(dueAction(stopped({ autoArchiveInterval: 60 }), T0 + 59 * MIN, MIN)).toBeUndefined();
    expect(dueAction(stopped({ autoArchiveInterval: 60 }), T0 + 60 * MIN, MIN)).toBe('archive');
    expect(nextDue(stopped({ autoArchiveInterval: 60 }), T0 + 20 * MIN, MIN)).toBe(40 * MIN);
    expect(dueAction(stopped({ autoArchiveInterval: 0 }), T0 + 30 * 24 * 60 * MIN - 1, MIN)).toBeUndefined();
    expect(dueAction(stopped({ autoArchiveInterval: 0 }), T0 + 30 * 24 * 60 * MIN, MIN)).toBe('archive');
    expect(dueAction(stopped({ autoArchiveInterval: 60, autoDeleteInterval: 60 }), T0 + 60 * MIN, MIN)).toBe('delete');
    // An archived one is deleted its auto-delete interval after the stop, and never archived again.
    expect(dueAction(record({ state: 'archived', autoArchiveInterval: 1, autoDeleteInterval: 90 }), T0 + 89 * MIN, MIN)).toBeUndefined();
    expect(dueAction(record({ state: 'archived', autoArchiveInterval: 1, autoDeleteInterval: 90 }), T0 + 90 * MIN, MIN)).toBe('delete');
    expect(nextDue(record({ state: 'archived', autoDeleteInterval: -1 }), T0, MIN)).toBe(Infinity);
    for (const state of ['archiving', 'restoring'] as const) expect(dueAction(record({ state, autoDestroyAt: at(0) }), T0 + MIN, MIN)).toBeUndefined();
  });

  it('destroys at the ttl whatever the state, and leaves operations in progress alone', () => {
    for (const state of ['started', 'stopped', 'archived', 'error', 'build_failed'] as const) {
      expect(dueAction(record({ state, autoDestroyAt: at(5 * MIN) }), T0 + 5 * MIN, MIN)).toBe('destroy');
    }
    // A build under way (pending_build, building_snapshot) is an operation in progress too.
    for (const state of ['creating', 'starting', 'stopping', 'destroying', 'pending_build', 'building_snapshot'] as const) {
      expect(dueAction(record({ state, autoDestroyAt: at(0) }), T0 + MIN, MIN)).toBeUndefined();
    }
    expect(nextDue(record({ autoDestroyAt: at(3 * MIN) }), T0, MIN)).toBe(3 * MIN);
    expect(nextDue(record({ autoStopInterval: 0 }), T0, MIN)).toBe(Infinity);
  });

  it('pauses an idle started sandbox before it would stop, and stops a paused one at its auto-stop', () => {
    expect(dueAction(record({ autoPauseInterval: 5 }), T0 + 5 * MIN, MIN)).toBe('pause');
    expect(dueAction(record({ autoPauseInterval: 5 }), T0 + 15 * MIN, MIN)).toBe('stop');
    expect(dueAction(record({ autoPauseInterval: 20 }), T0 + 15 * MIN, MIN)).toBe('stop');
    expect(dueAction(record({ state: 'paused', autoPauseInterval: 5 }), T0 + 10 * MIN, MIN)).toBeUndefined();
    expect(dueAction(record({ state: 'paused', autoPauseInterval: 5 }), T0 + 15 * MIN, MIN)).toBe('stop');
    expect(nextDue(record({ autoPauseInterval: 5 }), T0, MIN)).toBe(5 * MIN);
  });

  it('scales with the length of a minute (tests shorten it; the rules stay the same)', () => {
    expect(dueAction(record({ autoStopInterval: 2 }), T0 + 600, 300)).toBe('stop');
    expect(dueAction(record({ autoStopInterval: 2 }), T0 + 599, 300)).toBeUndefined();
  });
});
