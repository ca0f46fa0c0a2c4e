/**
 * The control API over plain HTTP: authentication, ownership, validation, and what survives a restart.
 */
import { execFileSync } from 'node:child_process';
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
    await waitFor(() => cove.containers().length === 2, 30_000, 'the pool to settle at one member');
    await new Promise((r) => setTimeout(r, 1500));
    expect(cove.containers().length).toBe(2);
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
    expect((await cove.api(`/sandbox/${sb.id}`)).status).toBe(404);
  }, 120_000);
});
