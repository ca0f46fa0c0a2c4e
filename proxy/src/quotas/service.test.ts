import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKeysService } from '../auth/api-keys';
import { createSandboxRepo, type SandboxRecord } from '../sandboxes/repo';
import { openDatabase, type Db } from '../store/db';
import { DEFAULT_LIMITS } from './limits';
import { createKeyLimits, createQuotaService } from './service';

let dir: string;
let db: Db;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cove-quotas-'));
  db = openDatabase(dir);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const record = (ownerKeyId: string, fields: Partial<SandboxRecord> = {}): SandboxRecord => {
  const id = `sb-${++n}`;
  return {
    id, name: id, ownerKeyId, state: 'creating', image: 'i', snapshot: null, entrypoint: null, user: 'u', env: {}, labels: {}, public: false, networkBlockAll: false, networkAllowList: null, domainAllowList: null, outboundProxyUrl: null, cpu: 1, memory: 1, disk: 10,
    containerId: null, agentToken: 't', ip: null, errorReason: null, autoStopInterval: 0, autoArchiveInterval: 0, autoDeleteInterval: -1, autoPauseInterval: 0, autoDestroyAt: null, stateChangedAt: null,
    createdAt: 'x', updatedAt: 'x', lastActivityAt: 'x', ...fields,
  };
};

describe('quota service', () => {
  it('reserves within the limit and writes nothing past it', () => {
    const quotas = createQuotaService({ db, defaults: { ...DEFAULT_LIMITS, maxSandboxes: 2 } });
    const repo = createSandboxRepo(db);
    const { info } = createKeysService(db).create({ name: 'k' });
    const insert = (r: SandboxRecord) => quotas.admit(info.id, r, () => repo.insert(r));
    insert(record(info.id));
    const second = record(info.id, { state: 'started' });
    insert(second);
    const third = record(info.id);
    expect(() => insert(third)).toThrow(/Sandbox limit of 2 started sandboxes/);
    expect(repo.get(third.id)).toBeUndefined();
    // A stopped sandbox frees its slot; starting it again takes one, and it is not counted twice.
    repo.update(second.id, { state: 'stopped' });
    insert(third);
    expect(() => quotas.admit(info.id, second, () => repo.update(second.id, { state: 'starting' }))).toThrow(/limit of 2/);
    expect(repo.get(second.id)!.state).toBe('stopped');
    repo.update(third.id, { state: 'error' });
    quotas.admit(info.id, second, () => repo.update(second.id, { state: 'starting' }));
    expect(repo.get(second.id)!.state).toBe('starting');
  });

  it('applies a key\'s own limits written by another connection (cove keys set) at the next admission', () => {
    const quotas = createQuotaService({ db, defaults: DEFAULT_LIMITS });
    const repo = createSandboxRepo(db);
    const { info } = createKeysService(db).create({ name: 'k' });
    const cli = openDatabase(dir);
    try {
      const limits = createKeyLimits(cli);
      expect(limits.set(info.id, { maxCpu: 1, maxDisk: null })).toEqual({ maxCpu: 1, maxDisk: null });
      const big = record(info.id, { cpu: 2 });
      expect(() => quotas.admit(info.id, big, () => repo.insert(big))).toThrow(/Total CPU limit of 1 vCPU/);
      expect(limits.set(info.id, { maxCpu: 'default' })).toEqual({ maxDisk: null });
      quotas.admit(info.id, big, () => repo.insert(big));
      expect(limits.of(info.id)).toEqual({ admin: false, own: { maxDisk: null } });
    } finally {
      cli.close();
    }
  });

  it('leaves admin keys unlimited unless a limit is set on the key', () => {
    const quotas = createQuotaService({ db, defaults: { ...DEFAULT_LIMITS, maxSandboxes: 0 } });
    const repo = createSandboxRepo(db);
    const admin = createKeysService(db).ensureAdmin('an-operator-key-0123');
    const r = record(admin.id, { cpu: 64 });
    quotas.admit(admin.id, r, () => repo.insert(r));
    createKeyLimits(db).set(admin.id, { maxSandboxes: 1 });
    const again = record(admin.id);
    expect(() => quotas.admit(admin.id, again, () => repo.insert(again))).toThrow(/limit of 1 started sandbox /);
  });
});
