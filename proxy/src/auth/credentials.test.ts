import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Db } from '../store/db';
import { createKeysService } from './api-keys';
import { createCredentialStore, hashSecret, sameSecret, type CredentialRow } from './credentials';
import { createPreviewTokens } from './preview-tokens';
import { createSshAccess } from './ssh-tokens';

/** The three credential tables as store/db.ts's migrations create them. */
const SCHEMA = `
  CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, last_used_at TEXT, revoked_at TEXT);
  CREATE TABLE preview_tokens (hash TEXT PRIMARY KEY, sandbox_id TEXT NOT NULL, port INTEGER NOT NULL,
    signed INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT);
  CREATE TABLE ssh_access (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, sandbox_id TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT);`;

let db: Db;
beforeEach(() => {
  db = new Database(':memory:');
  db.exec(SCHEMA);
});
afterEach(() => {
  vi.useRealTimers();
  db.close();
});

const asIs = (r: CredentialRow) => r;
/** A store over ssh_access: UUID ids, an expiry, a secret format. */
const sshStore = () =>
  createCredentialStore(db, { table: 'ssh_access', idColumn: 'id', expires: true, touchOnRevoke: ['updated_at'], secret: { length: 40 }, pattern: /^[a-z0-9]{40}$/, toRecord: asIs });
const inMinutes = (m: number) => new Date(Date.now() + m * 60_000).toISOString();
const columns = (sandboxId = 'sb1') => ({ sandbox_id: sandboxId, updated_at: new Date().toISOString() });
/** Changes one character of a secret, keeping its format. */
const tamper = (s: string) => s.slice(0, -1) + (s.endsWith('a') ? 'b' : 'a');

describe('createCredentialStore', () => {
  it('creates a secret in the table format, stores only its SHA-256 and verifies it', () => {
    const store = sshStore();
    const { id, secret, record } = store.create({ columns: columns(), expiresAt: inMinutes(5) });
    expect(secret).toMatch(/^[a-z0-9]{40}$/);
    expect(record).toMatchObject({ id, sandbox_id: 'sb1', revoked_at: null });
    const stored = db.prepare('SELECT hash FROM ssh_access WHERE id = ?').get(id) as { hash: string };
    expect(stored.hash).toBe(createHash('sha256').update(secret).digest('hex'));
    expect(store.verify(secret)).toMatchObject({ id, sandbox_id: 'sb1' });
    expect(store.find(secret)?.state).toBe('live');
    expect(store.isKnown(secret)).toBe(true);
  });

  it('never verifies a wrong, tampered, reshaped or empty secret', () => {
    const store = sshStore();
    const { secret } = store.create({ columns: columns(), expiresAt: inMinutes(5) });
    for (const wrong of [tamper(secret), secret.toUpperCase(), `${secret} `, secret.slice(1), '', store.newSecret(), hashSecret(secret)]) {
      expect(store.verify(wrong), wrong).toBeUndefined();
      expect(store.find(wrong), wrong).toBeUndefined();
      expect(store.isKnown(wrong), wrong).toBe(false);
    }
  });

  it('never verifies an expired secret, though it is still recognised until purged', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = sshStore();
    const { id, secret } = store.create({ columns: columns(), expiresAt: inMinutes(1) });
    const lasting = store.create({ columns: columns(), expiresAt: inMinutes(10) });
    expect(store.verify(secret)).toBeDefined();
    vi.setSystemTime(Date.now() + 60_000);
    expect(store.verify(secret)).toBeUndefined();
    expect(store.find(secret)?.state).toBe('expired');
    expect(store.isKnown(secret)).toBe(true);
    expect(store.list({ liveOnly: true }).map((r) => r.id)).toEqual([lasting.id]);
    expect(store.purgeExpired()).toEqual([id]);
    expect(store.isKnown(secret)).toBe(false);
    expect(store.verify(lasting.secret)).toBeDefined();
  });

  it('never verifies a revoked secret, by id, by secret or by column; revoking twice revokes nothing', () => {
    const store = sshStore();
    const a = store.create({ columns: columns(), expiresAt: inMinutes(5) });
    const b = store.create({ columns: columns(), expiresAt: inMinutes(5) });
    const c = store.create({ columns: columns('sb2'), expiresAt: inMinutes(5) });
    expect(store.revoke({ id: a.id })).toEqual([a.id]);
    expect(store.revoke({ id: a.id })).toEqual([]);
    expect(store.verify(a.secret)).toBeUndefined();
    expect(store.find(a.secret)?.state).toBe('revoked');
    expect(store.isKnown(a.secret)).toBe(true);
    // A secret of another sandbox is not revoked under this one.
    expect(store.revoke({ secret: c.secret, where: { sandbox_id: 'sb1' } })).toEqual([]);
    expect(store.revoke({ secret: b.secret })).toEqual([b.id]);
    expect(store.verify(b.secret)).toBeUndefined();
    expect(store.revoke({ where: { sandbox_id: 'sb2' } })).toEqual([c.id]);
    expect(store.verify(c.secret)).toBeUndefined();
    const row = db.prepare('SELECT revoked_at, updated_at FROM ssh_access WHERE id = ?').get(c.id) as { revoked_at: string; updated_at: string };
    expect(row.updated_at).toBe(row.revoked_at);
    expect(() => store.revoke({})).toThrow();
  });

  it('lists records without secrets or their hashes', () => {
    const store = sshStore();
    const created = [store.create({ columns: columns(), expiresAt: inMinutes(5) }), store.create({ columns: columns('sb2'), expiresAt: inMinutes(5) })];
    const listed = store.list();
    expect(listed.map((r) => r.id)).toEqual(created.map((c) => c.id));
    const text = JSON.stringify(listed);
    for (const { secret } of created) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(hashSecret(secret));
    }
    for (const r of listed) expect(r).not.toHaveProperty('hash');
    expect(store.list({ where: { sandbox_id: 'sb2' } }).map((r) => r.id)).toEqual([created[1].id]);
  });

  it('removes by column, returning the ids', () => {
    const store = sshStore();
    const a = store.create({ columns: columns(), expiresAt: inMinutes(5) });
    store.create({ columns: columns('sb2'), expiresAt: inMinutes(5) });
    expect(store.remove({ sandbox_id: 'sb1' })).toEqual([a.id]);
    expect(store.isKnown(a.secret)).toBe(false);
    expect(store.list()).toHaveLength(1);
  });

  it('keys a hash-keyed table by row number, and keeps its bounded cache in step with revocation and removal', () => {
    const store = createCredentialStore(db, { table: 'preview_tokens', idColumn: 'rowid', expires: true, secret: { length: 32 }, pattern: /^[a-z0-9]{32}$/, cacheLimit: 2, toRecord: asIs });
    const made = [1, 2, 3].map((port) => store.create({ columns: { sandbox_id: 'sb1', port, signed: 0 } }));
    expect(made.map((m) => m.id)).toEqual(['1', '2', '3']);
    // More secrets than the cache holds all verify, again and again.
    for (let i = 0; i < 3; i++) for (const m of made) expect(store.verify(m.secret)).toMatchObject({ id: m.id, port: Number(m.id) });
    // An unknown secret cached as such verifies once it is created with that text.
    const later = store.newSecret();
    expect(store.verify(later)).toBeUndefined();
    store.create({ secret: later, columns: { sandbox_id: 'sb1', port: 4, signed: 0 } });
    expect(store.verify(later)).toBeDefined();
    expect(store.verify(made[0].secret)).toBeDefined();
    expect(store.revoke({ id: '1' })).toEqual(['1']);
    expect(store.verify(made[0].secret)).toBeUndefined();
    expect(store.verify(made[1].secret)).toBeDefined();
    store.remove({ sandbox_id: 'sb1' });
    expect(store.verify(made[1].secret)).toBeUndefined();
    expect(store.isKnown(made[1].secret)).toBe(false);
  });

  it('never verifies a secret that expires while it is cached', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = createCredentialStore(db, { table: 'preview_tokens', idColumn: 'rowid', expires: true, secret: { length: 32 }, cacheLimit: 10, toRecord: asIs });
    const { secret } = store.create({ columns: { sandbox_id: 'sb1', port: 1, signed: 1 }, expiresAt: inMinutes(1) });
    expect(store.verify(secret)).toBeDefined();
    vi.setSystemTime(Date.now() + 60_001);
    expect(store.verify(secret)).toBeUndefined();
  });
});

describe('credentials changed by another process (the CLI)', () => {
  const later = () => new Promise((resolve) => setTimeout(resolve, 2));

  it('are seen within a millisecond: an API key revoked or created elsewhere, an SSH token revoked elsewhere', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-cred-'));
    const file = path.join(dir, 'cove.db');
    const server = new Database(file);
    const cli = new Database(file);
    try {
      for (const d of [server, cli]) d.pragma('journal_mode = WAL');
      server.exec(SCHEMA);
      const keys = createKeysService(server);
      const elsewhere = createKeysService(cli);
      const { key, info } = keys.create({ name: 'k' });
      expect(keys.authenticate(key)).toEqual({ keyId: info.id, admin: false });
      await later();
      elsewhere.revoke(info.id);
      await later();
      expect(keys.authenticate(key)).toBeUndefined();
      // A key made by the CLI while its text was cached as unknown.
      const operator = 'an-operator-key-of-their-own';
      expect(keys.authenticate(operator)).toBeUndefined();
      await later();
      const made = elsewhere.create({ name: 'op', key: operator }).info;
      await later();
      expect(keys.authenticate(operator)).toEqual({ keyId: made.id, admin: false });
      // The same for the other stores: an SSH token revoked elsewhere.
      const ssh = createSshAccess(server);
      const { token, id } = ssh.create('sb1', 5);
      expect('grant' in ssh.check(token)).toBe(true);
      await later();
      cli.prepare('UPDATE ssh_access SET revoked_at = ? WHERE id = ?').run(new Date().toISOString(), id);
      await later();
      expect(ssh.check(token)).toMatchObject({ reason: 'revoked' });
    } finally {
      server.close();
      cli.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sameSecret', () => {
  it('is equality, whatever the lengths', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abc', 'abd')).toBe(false);
    expect(sameSecret('abc', 'abcd')).toBe(false);
    expect(sameSecret('', '')).toBe(true);
  });
});

describe('the stores of API keys, preview tokens and SSH tokens', () => {
  it('keep their token formats', () => {
    const keys = createKeysService(db);
    const { key, info } = keys.create({ name: 'k' });
    expect(key).toMatch(/^cove_[A-Za-z0-9_-]{43}$/);
    expect(info).toMatchObject({ name: 'k', prefix: key.slice(0, 11), admin: false, lastUsedAt: null, revokedAt: null });
    expect(createPreviewTokens(db).issue('sb1', 3000)).toMatch(/^[a-z0-9]{32}$/);
    expect(createSshAccess(db).create('sb1', 5).token).toMatch(/^[a-z0-9]{40}$/);
  });

  it('API keys: authenticate, revoke by id or prefix, keep an operator key idempotently', () => {
    const keys = createKeysService(db);
    const { key, info } = keys.create({ name: 'k', admin: true });
    expect(keys.authenticate(key)).toEqual({ keyId: info.id, admin: true });
    expect(keys.ensureAdmin('my-own-key').id).toBe(keys.ensureAdmin('my-own-key').id);
    expect(keys.hasAdmin()).toBe(true);
    expect(keys.revoke(info.prefix)).toBe(true);
    expect(keys.authenticate(key)).toBeUndefined();
    expect(keys.isKnown(key)).toBe(true);
    expect(keys.list().find((k) => k.id === info.id)?.revokedAt).not.toBeNull();
    expect(keys.revoke(info.id)).toBe(false);
  });

  it('SSH tokens: say why a token does not open', () => {
    const ssh = createSshAccess(db);
    const closed: string[][] = [];
    ssh.onRevoked((ids) => closed.push(ids));
    const a = ssh.create('sb1', 5);
    expect(ssh.check(a.token)).toEqual({ grant: { id: a.id, sandboxId: 'sb1', expiresAt: a.expiresAt } });
    expect(ssh.check(tamper(a.token))).toEqual({ reason: 'unknown' });
    expect(ssh.revoke('sb1', a.token)).toBe(1);
    expect(ssh.check(a.token)).toEqual({ reason: 'revoked' });
    expect(closed).toEqual([[a.id]]);
    const b = ssh.create('sb1', 5);
    db.prepare('UPDATE ssh_access SET expires_at = ? WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), b.id);
    expect(ssh.check(b.token)).toEqual({ reason: 'expired' });
  });

  it('preview tokens: one port of one sandbox, revoked only under that port', () => {
    const tokens = createPreviewTokens(db);
    const t = tokens.issue('sb1', 3000);
    expect(tokens.verify(t)).toEqual({ sandboxId: 'sb1', port: 3000, signed: false, expiresAt: null });
    expect(tokens.revoke('sb1', 3001, t)).toBe(false);
    expect(tokens.revoke('sb1', 3000, t)).toBe(true);
    expect(tokens.verify(t)).toBeUndefined();
    expect(tokens.isKnown(t)).toBe(true);
    const signed = tokens.sign('sb1', 8080, 60);
    expect(tokens.verify(signed.token)).toMatchObject({ signed: true, expiresAt: signed.expiresAt });
  });
});
