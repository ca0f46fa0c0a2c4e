/**
 * The control API over plain HTTP: authentication, ownership, validation, and what survives a restart.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN, waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';

let cove: TestCove;
beforeAll(async () => {
  cove = await startCove({ pool: 1 });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

const keysCli = (...args: string[]) =>
  execFileSync(process.execPath, [COVE_BIN, 'keys', ...args, '--data-dir', cove.dataDir], { encoding: 'utf8' }).trim();

async function create(body: object, key?: string): Promise<any> {
  const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify(body), key });
  const json = await res.json();
  if (!res.ok) throw Object.assign(new Error(json.message), { status: res.status, body: json });
  return json;
}

describe('control API', () => {
  it('requires an API key on every route, and answers CORS preflights before auth', async () => {
    for (const path of ['/sandbox', '/sandbox/x', '/openapi.json', '/nope']) {
      expect((await cove.api(path, { key: null })).status).toBe(401);
      const wrong = await cove.api(path, { key: 'not-a-key-at-all-0123' });
      expect(wrong.status).toBe(401);
      expect(await wrong.json()).toMatchObject({ code: 'UNAUTHORIZED', message: expect.any(String) });
    }
    const preflight = await fetch(`${cove.apiUrl}/sandbox`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
    const toolbox = await fetch(`${cove.url}/toolbox/any/version`);
    expect(toolbox.status).toBe(401);
  });

  it('validates create requests with clear messages', async () => {
    await expect(create({ name: 'bad name!' })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/name/) });
    await expect(create({ cpu: 'two' })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/cpu/) });
    await expect(create({ gpu: 1 })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/GPU/) });
    await expect(create({ snapshot: 'no-such-image:nowhere' })).rejects.toMatchObject({ status: 400, body: { code: 'IMAGE_NOT_FOUND' } });
    // What the SDK can ask for and Cove does not offer is refused by name, never stored and ignored.
    for (const [field, value] of [
      ['target', 'eu'],
      ['gpuType', ['A100']],
      ['spot', true],
      ['kvm', true],
      ['linkedSandbox', 'other'],
      ['otelEndpointOverride', 'http://otel:4318'],
    ] as const) {
      await expect(create({ [field]: value })).rejects.toMatchObject({ status: 400, message: expect.stringContaining(field) });
    }
    const malformed = await cove.api('/sandbox', { method: 'POST', body: '{"name":' });
    expect(malformed.status).toBe(400);
  });

  it('keeps sandboxes of one key away from another', async () => {
    const other = keysCli('create', '--name', 'other');
    const mine = await create({ name: `mine-${Date.now()}` });
    const theirs = await create({}, other);
    try {
      expect((await cove.api(`/sandbox/${mine.id}`, { key: other })).status).toBe(404);
      expect((await fetch(`${cove.url}/toolbox/${mine.id}/version`, { headers: { Authorization: `Bearer ${other}` } })).status).toBe(404);
      const listed = await (await cove.api('/sandbox', { key: other })).json();
      expect(listed.items.map((s: { id: string }) => s.id)).toEqual([theirs.id]);
      // The admin sees both; the name resolves like the id.
      expect((await cove.api(`/sandbox/${mine.name}`)).status).toBe(200);
      expect((await cove.api(`/sandbox/${theirs.id}`)).status).toBe(200);
      const duplicate = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify({ name: mine.name }) });
      expect(duplicate.status).toBe(409);
      // Revoking a key takes effect at once.
      keysCli('revoke', keysCli('list').split('\n').find((l) => l.includes(' other'))!.split(/\s+/)[0]);
      expect((await cove.api('/sandbox', { key: other })).status).toBe(401);
    } finally {
      await cove.api(`/sandbox/${mine.id}`, { method: 'DELETE' });
      await cove.api(`/sandbox/${theirs.id}`, { method: 'DELETE' });
    }
  });

  it('keeps names per key: two keys may use one name, and no key can see or guess another key\'s names', async () => {
    const alice = keysCli('create', '--name', 'alice');
    const bob = keysCli('create', '--name', 'bob');
    const name = `shared-${Date.now()}`;
    const secret = `secret-${Date.now()}`;
    const created: string[] = [];
    const make = async (body: object, key?: string) => {
      const sb = await create(body, key);
      created.push(sb.id);
      return sb;
    };
    try {
      const a = await make({ name }, alice);
      const b = await make({ name }, bob);
      expect(a.id).not.toBe(b.id);
      expect((await (await cove.api(`/sandbox/${name}`, { key: alice })).json()).id).toBe(a.id);
      expect((await (await cove.api(`/sandbox/${name}`, { key: bob })).json()).id).toBe(b.id);
      // The name stays unique within one key.
      await expect(create({ name }, alice)).rejects.toMatchObject({ status: 409, body: { code: 'SANDBOX_EXISTS' } });
      // A name without a name given is the id, as in Daytona.
      const unnamed = await make({}, alice);
      expect(unnamed.name).toBe(unnamed.id);
      expect((await (await cove.api(`/sandbox/${unnamed.id}`, { key: alice })).json()).id).toBe(unnamed.id);

      // Bob's secret name answers Alice exactly like a name nobody has, on every route that takes a name.
      const theirs = await make({ name: secret }, bob);
      const missing = `missing-${Date.now()}`;
      const asAlice = async (path: string, init: RequestInit = {}) => {
        const res = await cove.api(path, { ...init, key: alice });
        return { status: res.status, body: await res.json() };
      };
      for (const [path, init] of [
        ['', {}],
        ['/toolbox-proxy-url', {}],
        ['/start', { method: 'POST' }],
        ['/stop', { method: 'POST' }],
        ['/ports/3000/preview-url', {}],
        ['/ports/3000/signed-preview-url', {}],
        ['/ssh-access', { method: 'POST' }],
        ['', { method: 'DELETE' }],
      ] as [string, RequestInit][]) {
        const forSecret = await asAlice(`/sandbox/${secret}${path}`, init);
        const forMissing = await asAlice(`/sandbox/${missing}${path}`, init);
        expect(forSecret.status, `${init.method ?? 'GET'} ${path}`).toBe(404);
        expect(forSecret.body.message.replace(secret, 'X')).toBe(forMissing.body.message.replace(missing, 'X'));
      }
      for (const target of [secret, theirs.id]) {
        const res = await fetch(`${cove.url}/toolbox/${target}/version`, { headers: { Authorization: `Bearer ${alice}` } });
        expect(res.status).toBe(404);
      }
      expect((await fetch(`${cove.url}/toolbox/${secret}/version`, { headers: { Authorization: `Bearer ${bob}` } })).status).toBe(200);
      // Creating with that name does not tell Alice it exists: she gets a sandbox of her own.
      const hers = await make({ name: secret }, alice);
      expect(hers.id).not.toBe(theirs.id);
      expect((await (await cove.api(`/sandbox/${secret}`, { key: bob })).json()).id).toBe(theirs.id);
      // Still running: Alice's stop and delete by that name went nowhere.
      expect((await (await cove.api(`/sandbox/${theirs.id}`)).json()).state).toBe('started');
    } finally {
      for (const id of created) await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
    }
  }, 120_000);

  it('resolves names for an admin key: its own first, else the only one, else it asks for the id', async () => {
    const carol = keysCli('create', '--name', 'carol');
    const dave = keysCli('create', '--name', 'dave');
    const stamp = Date.now();
    const created: string[] = [];
    const make = async (body: object, key?: string) => {
      const sb = await create(body, key);
      created.push(sb.id);
      return sb;
    };
    const asAdmin = async (path: string) => {
      const res = await cove.api(path);
      return { status: res.status, body: await res.json() };
    };
    try {
      const own = await make({ name: `both-${stamp}` });
      await make({ name: `both-${stamp}` }, carol);
      expect((await asAdmin(`/sandbox/both-${stamp}`)).body.id).toBe(own.id);

      const only = await make({ name: `only-${stamp}` }, carol);
      expect((await asAdmin(`/sandbox/only-${stamp}`)).body.id).toBe(only.id);

      const first = await make({ name: `twice-${stamp}` }, carol);
      const second = await make({ name: `twice-${stamp}` }, dave);
      const ambiguous = await asAdmin(`/sandbox/twice-${stamp}`);
      expect(ambiguous.status).toBe(409);
      expect(ambiguous.body.message).toMatch(/id/);
      expect((await asAdmin(`/sandbox/${first.id}`)).body.id).toBe(first.id);
      expect((await asAdmin(`/sandbox/${second.id}`)).body.id).toBe(second.id);
      // The listing filters by name across keys.
      const listed = (await asAdmin(`/sandbox?name=twice-${stamp}`)).body.items.map((s: { id: string }) => s.id);
      expect(listed.sort()).toEqual([first.id, second.id].sort());
    } finally {
      for (const id of created) await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
    }
  }, 120_000);

  it('applies env, user and resources from the create request', async () => {
    const sb = await create({ env: { FROM_CREATE: 'yes' }, user: 'root', cpu: 2, memory: 2 });
    try {
      expect(sb).toMatchObject({ state: 'started', user: 'root', cpu: 2, memory: 2, env: { FROM_CREATE: 'yes' } });
      const res = await fetch(`${cove.url}/toolbox/${sb.id}/process/execute`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ command: 'echo $FROM_CREATE; id -u; cat /sys/fs/cgroup/memory/memory.limit_in_bytes' }),
      });
      expect((await res.json()).result).toBe(`yes\n0\n${2 * 1024 ** 3}\n`);
    } finally {
      await cove.api(`/sandbox/${sb.id}`, { method: 'DELETE' });
    }
  });

  it('keeps sandboxes and the pool across a restart, leaking no container', async () => {
    const sb = await create({ name: `restart-${Date.now()}` });
    const hostname = async () => {
      const res = await fetch(`${cove.url}/toolbox/${sb.id}/process/execute`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ command: 'cat /etc/hostname; ls /home/cove' }),
      });
      return (await res.json()).result as string;
    };
    await fetch(`${cove.url}/toolbox/${sb.id}/files/folder?path=/home/cove/marker&mode=755`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cove.apiKey}` },
    });
    const before = await hostname();
    expect(before).toContain('marker');
    expect(await cove.stop()).toBe(0);
    cove = await startCove({ pool: 1, dataDir: cove.dataDir, apiKey: cove.apiKey });
    expect((await (await cove.api(`/sandbox/${sb.id}`)).json()).state).toBe('started');
    // The same container, files and all, reached through the new server.
    expect(await hostname()).toBe(before);
    // One sandbox and one pool member: a member the old server was still starting is not left behind.
    // The pool is settled when it holds its one ready member (it starts none beyond its target): every container
    // there is then is the sandbox's or that member's.
    await waitFor(async () => (await (await cove.api('/pool')).json()).ready === 1, 30_000, 'the pool to settle at one member');
    expect(cove.containers().length).toBe(2);
    await cove.api(`/sandbox/${sb.id}`, { method: 'DELETE' });
  }, 120_000);

  it('upgrades a database written with the old schema (names unique across keys) in place', async () => {
    const name = `old-${Date.now()}`;
    const sb = await create({ name });
    expect(await cove.stop()).toBe(0);
    // Put the sandboxes table back as the first schema made it, rows and all, and the schema version before the change.
    const db = new Database(path.join(cove.dataDir, 'cove.db'));
    db.exec(`
      CREATE TABLE sandboxes_old (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, owner_key_id TEXT NOT NULL, state TEXT NOT NULL,
        image TEXT NOT NULL, user TEXT NOT NULL, env TEXT NOT NULL, labels TEXT NOT NULL,
        public INTEGER NOT NULL DEFAULT 0, cpu REAL NOT NULL, memory REAL NOT NULL, disk REAL NOT NULL,
        container_id TEXT, agent_token TEXT NOT NULL, ip TEXT, error_reason TEXT,
        auto_stop_interval INTEGER NOT NULL DEFAULT 0, auto_archive_interval INTEGER NOT NULL DEFAULT 0,
        auto_delete_interval INTEGER NOT NULL DEFAULT -1,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_activity_at TEXT NOT NULL
      );
      INSERT INTO sandboxes_old SELECT id, name, owner_key_id, state, image, user, env, labels, public, cpu, memory, disk,
        container_id, agent_token, ip, error_reason, auto_stop_interval, auto_archive_interval, auto_delete_interval,
        created_at, updated_at, last_activity_at FROM sandboxes;
      DROP TABLE sandboxes;
      ALTER TABLE sandboxes_old RENAME TO sandboxes;
      CREATE INDEX sandboxes_owner ON sandboxes(owner_key_id);
      PRAGMA user_version = 3;
    `);
    const rowsBefore = db.prepare('SELECT * FROM sandboxes ORDER BY id').all();
    db.close();

    cove = await startCove({ pool: 1, dataDir: cove.dataDir, apiKey: cove.apiKey });
    const check = new Database(path.join(cove.dataDir, 'cove.db'), { readonly: true });
    const version = check.pragma('user_version', { simple: true }) as number;
    const rowsAfter = check.prepare('SELECT * FROM sandboxes ORDER BY id').all() as { id: string; state: string }[];
    check.close();
    expect(version).toBeGreaterThan(3);
    // Every row kept; the sandbox's container is still found (started again after reconciliation).
    expect(rowsAfter.map((r) => r.id)).toEqual((rowsBefore as { id: string }[]).map((r) => r.id));
    const after = await (await cove.api(`/sandbox/${name}`)).json();
    expect(after).toMatchObject({ id: sb.id, name, state: 'started' });
    // And the new rule holds on the upgraded database: another key may take the name.
    const other = keysCli('create', '--name', 'erin');
    const theirs = await create({ name }, other);
    expect(theirs.id).not.toBe(sb.id);
    await cove.api(`/sandbox/${theirs.id}`, { method: 'DELETE' });
    await cove.api(`/sandbox/${sb.id}`, { method: 'DELETE' });
  }, 120_000);

  it('marks a sandbox whose container vanished as an error after a restart', async () => {
    const sb = await create({});
    const exec = await fetch(`${cove.url}/toolbox/${sb.id}/process/execute`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ command: 'cat /etc/hostname' }),
    });
    // Docker names a container's host after the start of its id.
    const container = (await exec.json()).result.trim();
    expect(cove.containers().some((id) => id.startsWith(container))).toBe(true);
    await cove.stop();
    execFileSync('docker', ['rm', '-f', container], { stdio: 'ignore' });
    cove = await startCove({ pool: 1, dataDir: cove.dataDir, apiKey: cove.apiKey });
    const after = await (await cove.api(`/sandbox/${sb.id}`)).json();
    expect(after).toMatchObject({ state: 'error', errorReason: expect.stringMatching(/container/) });
    expect((await cove.api(`/sandbox/${sb.id}`, { method: 'DELETE' })).status).toBe(200);
    expect((await (await cove.api(`/sandbox/${sb.id}`)).json()).state).toBe('destroyed');
  }, 120_000);
});
