import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setErrorReporter } from '../../../lib/guard';
import { SandboxCreatedEvent, SandboxStateUpdatedEvent } from '../../../wire/events';
import type { SandboxDto } from '../../../wire/sandbox';
import type { Principal } from '../auth/api-keys';
import { createSandboxRepo, type SandboxChange, type SandboxRecord } from '../sandboxes/repo';
import { openDatabase, type Db } from '../store/db';
import { audienceOf, eventOf, roomOf } from './service';

let dir: string;
let db: Db;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cove-events-'));
  db = openDatabase(dir);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const record = (fields: Partial<SandboxRecord> = {}): SandboxRecord => {
  const id = `sb-${++n}`;
  return {
    id, name: id, ownerKeyId: 'key-a', state: 'creating', image: 'i', snapshot: null, entrypoint: null, user: 'u', env: {}, labels: {}, public: false, networkBlockAll: false, networkAllowList: null, domainAllowList: null, outboundProxyUrl: null, cpu: 1, memory: 1, disk: 10,
    containerId: null, agentToken: 'agent-secret', ip: null, errorReason: null, autoStopInterval: 0, autoArchiveInterval: 0, autoDeleteInterval: -1, autoPauseInterval: 0, autoDestroyAt: null, stateChangedAt: null,
    createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', lastActivityAt: '2026-01-01T00:00:00.000Z', ...fields,
  };
};

/** What the sandbox service's toDto gives, in the fields the events carry through (the agent token is not one). */
const toDto = (r: SandboxRecord): SandboxDto => ({
  id: r.id, organizationId: r.ownerKeyId, name: r.name, snapshot: r.image, user: r.user, env: r.env, labels: r.labels, public: r.public, networkBlockAll: r.networkBlockAll,
  target: 'local', cpu: r.cpu, gpu: 0, memory: r.memory, disk: r.disk, state: r.state, recoverable: false, autoStopInterval: r.autoStopInterval, autoArchiveInterval: r.autoArchiveInterval,
  autoDeleteInterval: r.autoDeleteInterval, autoPauseInterval: r.autoPauseInterval, createdAt: r.createdAt, updatedAt: r.updatedAt, lastActivityAt: r.lastActivityAt, toolboxProxyUrl: 'http://x/toolbox',
});

describe('sandbox repo changes', () => {
  it('tells listeners of inserts, state changes (with the state before) and removals, and of nothing else', () => {
    const repo = createSandboxRepo(db);
    const seen: SandboxChange[] = [];
    const stop = repo.onChange((c) => seen.push(c));
    const r = record();
    repo.insert(r);
    repo.update(r.id, { ip: '10.0.0.2' });
    repo.update(r.id, { state: 'creating', containerId: 'c1' });
    repo.update(r.id, { state: 'started' });
    repo.touch(r.id);
    repo.update(r.id, { state: 'stopping' });
    repo.remove(r.id);
    repo.remove(r.id);
    repo.update('no-such-sandbox', { state: 'started' });
    expect(seen.map((c) => [c.kind, c.record.state, c.kind === 'state' ? c.previousState : undefined])).toEqual([
      ['inserted', 'creating', undefined],
      ['state', 'started', 'creating'],
      ['state', 'stopping', 'started'],
      ['removed', 'stopping', undefined],
    ]);
    // The record told is the one written, and a state change is told with the rest of the update.
    expect(seen[1].record.containerId).toBe('c1');
    stop();
    repo.insert(record());
    expect(seen).toHaveLength(4);
  });

  it('makes the state change even when a listener throws, and reports the error', () => {
    const reported: string[] = [];
    setErrorReporter(({ where }) => reported.push(where));
    const repo = createSandboxRepo(db);
    repo.onChange(() => {
      throw new Error('listener bug');
    });
    const r = record();
    repo.insert(r);
    expect(repo.update(r.id, { state: 'started' })?.state).toBe('started');
    expect(repo.get(r.id)?.state).toBe('started');
    expect(reported).toEqual(['sandbox change listener', 'sandbox change listener']);
  });
});

describe('state events', () => {
  it("are Daytona's payloads: the sandbox for a create, {sandbox, oldState, newState} for a change, destroyed for a removal", () => {
    const r = record({ state: 'started' });
    const created = eventOf({ kind: 'inserted', record: { ...r, state: 'creating' } }, toDto);
    expect(created.name).toBe('sandbox.created');
    expect(SandboxCreatedEvent.parse(created.payload)).toEqual(toDto({ ...r, state: 'creating' }));

    const changed = eventOf({ kind: 'state', record: r, previousState: 'creating' }, toDto);
    expect(changed.name).toBe('sandbox.state.updated');
    expect(SandboxStateUpdatedEvent.parse(changed.payload)).toEqual({ sandbox: toDto(r), oldState: 'creating', newState: 'started' });

    const removed = eventOf({ kind: 'removed', record: { ...r, state: 'destroying' } }, toDto);
    expect(removed.name).toBe('sandbox.state.updated');
    expect(SandboxStateUpdatedEvent.parse(removed.payload)).toEqual({ sandbox: { ...toDto(r), state: 'destroyed' }, oldState: 'destroying', newState: 'destroyed' });

    for (const e of [created, changed, removed]) {
      expect(e.ownerKeyId).toBe('key-a');
      expect(JSON.stringify(e.payload)).not.toContain('agent-secret');
    }
  });

  it('reach a connection exactly when its key may use the sandbox (admin keys: all; others: their own)', () => {
    const keyId = fc.oneof(fc.constantFrom('admin', 'key:admin', 'key-a', 'key-b', ''), fc.string({ maxLength: 8 }));
    fc.assert(
      fc.property(keyId, fc.boolean(), keyId, (principalKey, admin, ownerKeyId) => {
        const principal: Principal = { keyId: principalKey, admin };
        const mayUse = admin || ownerKeyId === principalKey;
        expect(audienceOf({ ownerKeyId }).includes(roomOf(principal))).toBe(mayUse);
      }),
    );
  });
});
