/**
 * Secrets (`daytona.secret`, SDK 0.218) through `cove serve`: their lifecycle per API key, values never answered,
 * sealed at rest, and a server given another key refusing to start. What a sandbox does with them (placeholders
 * replaced by the egress proxy) is in egress-domains.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';

interface Secret {
  id: string;
  name: string;
  description?: string;
  placeholder: string;
  hosts: string[];
  createdAt: string;
}
interface SecretApi {
  create(p: { name: string; value: string; description?: string; hosts?: string[] }): Promise<Secret>;
  list(q?: { cursor?: string; limit?: number; name?: string; sort?: string; order?: string }): Promise<{ items: Secret[]; total: number; nextCursor: string | null }>;
  get(id: string): Promise<Secret>;
  update(id: string, p: { value?: string; description?: string; hosts?: string[] }): Promise<Secret>;
  delete(id: string): Promise<void>;
}

const KEY = 'k'.repeat(40);
const VALUE = `sk-${Math.random().toString(36).slice(2)}-sealed-at-rest`;
let cove: TestCove;
const secretsOf = (key?: string) => cove.daytona(key).secret as unknown as SecretApi;

beforeAll(async () => {
  cove = await startCove({ pool: 0, env: { COVE_SECRET_KEY: KEY } });
}, 15 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

/** The status and message of a raw API call. */
async function call(p: string, init: RequestInit & { key?: string } = {}): Promise<{ status: number; body: { message?: string } & Record<string, unknown> }> {
  const res = await cove.api(p, init);
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as { message?: string }) : {} };
}

describe('secrets', () => {
  it('creates, gets, lists, updates and deletes, and never answers the value', async () => {
    const secrets = secretsOf();
    const made = await secrets.create({ name: 'anthropic-prod', value: VALUE, description: 'the API key', hosts: ['API.Example.com', '*.example.com', 'api.example.com'] });
    expect(made).toMatchObject({ name: 'anthropic-prod', description: 'the API key', hosts: ['api.example.com', '*.example.com'] });
    expect(made.placeholder).toMatch(/^dtn_secret_[0-9a-f]{32}$/);
    expect(await secrets.get(made.id)).toEqual(made);

    const updated = await secrets.update(made.id, { hosts: ['api.example.org'] });
    expect(updated).toMatchObject({ description: 'the API key', hosts: ['api.example.org'], placeholder: made.placeholder });
    expect(Date.parse((updated as unknown as { updatedAt: string }).updatedAt)).toBeGreaterThanOrEqual(Date.parse(made.createdAt));
    await secrets.update(made.id, { value: `${VALUE}-2` });

    const all = await call('/secret');
    expect(all.status).toBe(200);
    expect((all.body as unknown as Secret[]).map((s) => s.id)).toContain(made.id);
    for (const answer of [JSON.stringify(all.body), JSON.stringify(await secrets.get(made.id)), JSON.stringify(await secrets.list())]) {
      expect(answer).not.toContain(VALUE);
    }
    await secrets.delete(made.id);
    expect((await call(`/secret/${made.id}`)).status).toBe(404);
    expect(cove.output()).not.toContain(VALUE);
  });

  it('pages by cursor, filters by name and sorts', async () => {
    const secrets = secretsOf();
    for (const name of ['page-c', 'page-a', 'page-b', 'other-x']) await secrets.create({ name, value: 'v' });
    const names: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await secrets.list({ name: 'PAGE', sort: 'name', order: 'asc', limit: 2, cursor });
      expect(page.total).toBe(3);
      names.push(...page.items.map((s) => s.name));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect([names, pages]).toEqual([['page-a', 'page-b', 'page-c'], 2]);
    const newest = (await secrets.list({ name: 'page', sort: 'createdAt', order: 'desc' })).items.map((s) => s.createdAt);
    expect(newest).toEqual([...newest].sort().reverse());

    const first = await secrets.list({ name: 'page', sort: 'name', order: 'asc', limit: 1 });
    expect((await call(`/secret/paginated?sort=createdAt&cursor=${first.nextCursor}`)).body.message).toMatch(/sorted by name asc, not createdAt desc/);
    expect((await call('/secret/paginated?cursor=forged')).body.message).toMatch(/Invalid cursor/);
    expect((await call('/secret/paginated?sort=value')).status).toBe(400);
    expect((await call('/secret/paginated?limit=0')).status).toBe(400);
    expect((await call('/secret/paginated?color=red')).status).toBe(400);
  });

  it('refuses what it cannot keep, naming the field', async () => {
    const bad = async (body: object, status: number, pattern: RegExp, method = 'POST', p = '/secret') => {
      const { status: got, body: answer } = await call(p, { method, body: JSON.stringify(body) });
      expect(got, JSON.stringify(answer)).toBe(status);
      expect(answer.message).toMatch(pattern);
    };
    await secretsOf().create({ name: 'taken', value: 'v' });
    await bad({ name: 'taken', value: 'v' }, 409, /named taken already exists/);
    await bad({ name: 'no spaces', value: 'v' }, 400, /not a secret name/);
    await bad({ name: 'empty', value: '' }, 400, /value: a secret needs a value/);
    await bad({ name: 'nul', value: 'a\0b' }, 400, /NUL/);
    await bad({ name: 'url', value: 'v', hosts: ['https://api.example.com/'] }, 400, /hosts\[0\].*without scheme/);
    await bad({ name: 'tld', value: 'v', hosts: ['*.com'] }, 400, /whole top-level domain/);
    await bad({ name: 'ip', value: 'v', hosts: ['10.0.0.1'] }, 400, /IP addresses/);
    await bad({ name: 'nameless', hosts: [] }, 400, /value/);
    await bad({ value: '' }, 400, /value/, 'PATCH', `/secret/${(await secretsOf().list({ name: 'taken' })).items[0].id}`);
    await bad({ value: 'v' }, 404, /not found/, 'PATCH', '/secret/no-such-id');
  });

  it("keeps each key's secrets to itself; an admin key sees every key's", async () => {
    const alice = cove.newClient('secret-alice');
    const bob = cove.newClient('secret-bob');
    const hers = await (alice.daytona.secret as unknown as SecretApi).create({ name: 'shared-name', value: 'alice-value' });
    // The same name under another key is another secret.
    const his = await (bob.daytona.secret as unknown as SecretApi).create({ name: 'shared-name', value: 'bob-value' });
    expect(his.id).not.toBe(hers.id);
    expect((await call(`/secret/${hers.id}`, { key: bob.key })).status).toBe(404);
    expect((await call(`/secret/${hers.id}`, { method: 'DELETE', key: bob.key })).status).toBe(404);
    expect((await (bob.daytona.secret as unknown as SecretApi).list()).items.map((s) => s.id)).toEqual([his.id]);
    const asAdmin = (await secretsOf().list({ name: 'shared-name' })).items.map((s) => s.id);
    expect(asAdmin.sort()).toEqual([hers.id, his.id].sort());
    // A sandbox mounts its key's own secrets only: another key's name is unknown to it.
    const { status, body } = await call('/sandbox', { method: 'POST', key: bob.key, body: JSON.stringify({ secrets: [{ T: 'page-a' }] }) });
    expect([status, body.message]).toEqual([400, expect.stringMatching(/no secret named "page-a"/)]);
  });

  it('refuses to delete a secret a sandbox mounts, until the sandbox lets it go', async () => {
    const daytona = cove.daytona();
    const secret = await secretsOf().create({ name: 'mounted', value: VALUE, hosts: ['api.example.com'] });
    const sandbox = await daytona.create({ secrets: { TOKEN: 'mounted' } } as never);
    try {
      const refused = await call(`/secret/${secret.id}`, { method: 'DELETE' });
      expect([refused.status, refused.body.message]).toEqual([409, expect.stringContaining(sandbox.id)]);
      await sandbox.updateSecrets({});
      await secretsOf().delete(secret.id);
    } finally {
      await sandbox.delete();
    }
  }, 120_000);

  it('keeps values sealed at rest, and a server given another key refuses to start', async () => {
    await secretsOf().create({ name: 'at-rest', value: VALUE });
    await cove.stop();
    for (const file of readdirSync(cove.dataDir).filter((f) => f.startsWith('cove.db'))) {
      expect(readFileSync(path.join(cove.dataDir, file)).includes(VALUE), file).toBe(false);
    }
    await expect(startCove({ pool: 0, dataDir: cove.dataDir, apiKey: cove.apiKey, env: { COVE_SECRET_KEY: 'z'.repeat(40) } })).rejects.toThrow(/does not open secret/);
    await expect(startCove({ pool: 0, dataDir: cove.dataDir, apiKey: cove.apiKey, env: { COVE_SECRET_KEY: 'short' } })).rejects.toThrow(/COVE_SECRET_KEY must be at least 32 characters/);
    // With its own key it starts, and the secrets are there.
    const again = await startCove({ pool: 0, dataDir: cove.dataDir, apiKey: cove.apiKey, env: { COVE_SECRET_KEY: KEY } });
    try {
      expect((await (again.daytona().secret as unknown as SecretApi).list({ name: 'at-rest' })).total).toBe(1);
    } finally {
      await again.stop();
    }
  }, 120_000);
});
