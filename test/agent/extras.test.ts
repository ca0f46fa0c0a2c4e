/**
 * The agent's environment (`POST /env`), resource metrics (`GET /system/metrics`) and the signed-upload route
 * (`POST /files/upload-v2`) against a real agent process
 * (the cgroup parsers behind the metrics are tested beside them, agent/src/metrics/cgroup.test.ts).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UploadedFile } from '../../wire/files';
import { SystemMetrics } from '../../wire/metrics';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

let agent: TestAgent;
beforeAll(async () => {
  agent = await startAgent();
});
afterAll(async () => {
  await agent?.stop();
});

async function post(p: string, json: unknown): Promise<{ status: number; body: any }> {
  const res = await agent.fetch(p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof json === 'string' ? json : JSON.stringify(json) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
const run = async (command: string, envs?: Record<string, string>) =>
  (await agent.json<{ exitCode: number; result: string }>('/process/execute', { method: 'POST', json: { command, envs } })).result.trim();

describe('POST /env', () => {
  it('changes what later commands, code runs and sessions start with; running sessions keep theirs', async () => {
    expect((await post('/process/session', { sessionId: 'env-before' })).status).toBe(201);
    const set = await post('/env', { set: { EXTRAS_A: 'alpha', EXTRAS_B: 'two words', EXTRAS_OLD: 'old' } });
    expect(set).toEqual({ status: 200, body: { message: expect.any(String) } });
    expect(await run('echo "$EXTRAS_A|$EXTRAS_B|$EXTRAS_OLD"')).toBe('alpha|two words|old');
    // A request's own envs still win over the sandbox's.
    expect(await run('echo "$EXTRAS_A"', { EXTRAS_A: 'mine' })).toBe('mine');
    const code = await agent.json('/process/code-run', { method: 'POST', json: { language: 'python', code: 'import os; print(os.environ["EXTRAS_A"])' } });
    expect(code.result.trim()).toBe('alpha');

    const before = await post('/process/session/env-before/exec', { command: 'echo "[$EXTRAS_A]"' });
    expect(before.body.output.trim()).toBe('[]');
    expect((await post('/process/session', { sessionId: 'env-after' })).status).toBe(201);
    const after = await post('/process/session/env-after/exec', { command: 'echo "[$EXTRAS_A]"' });
    expect(after.body.output.trim()).toBe('[alpha]');

    // unset first, then set: a name in both ends up set.
    expect((await post('/env', { unset: ['EXTRAS_OLD', 'EXTRAS_A', 'EXTRAS_NEVER_SET'], set: { EXTRAS_A: 'again' } })).status).toBe(200);
    expect(await run('echo "${EXTRAS_OLD-unset}|$EXTRAS_A"')).toBe('unset|again');
    expect((await post('/env', { unset: ['EXTRAS_A', 'EXTRAS_B'] })).status).toBe(200);
    expect(await run('env | grep -c ^EXTRAS_ || true')).toBe('0');
  });

  it('removes variables by value prefix, except those it sets and those Cove needs', async () => {
    await post('/env', { set: { PH_ONE: 'placeholder:1', PH_TWO: 'placeholder:2', PH_KEEP: 'real' } });
    expect((await post('/env', { unsetValuePrefix: 'placeholder:', set: { PH_TWO: 'placeholder:new' } })).status).toBe(200);
    expect(await run('echo "${PH_ONE-gone}|$PH_TWO|$PH_KEEP"')).toBe('gone|placeholder:new|real');
    // An empty prefix is no prefix (it would match everything).
    expect((await post('/env', { unsetValuePrefix: '' })).status).toBe(200);
    expect(await run('echo "$PH_KEEP"')).toBe('real');
    // PATH starts with "/": it is never removed by a prefix.
    expect((await post('/env', { unsetValuePrefix: '/' })).status).toBe(200);
    expect(await run('command -v sh')).toMatch(/\/sh$/);
  });

  it('refuses bad names and what Cove needs with a 400 naming the field, and changes nothing then', async () => {
    const refused: [unknown, RegExp][] = [
      [{ set: { '1BAD': 'x' } }, /body\.set\.1BAD/],
      [{ set: { 'A=B': 'x' } }, /body\.set\.A=B/],
      [{ set: { 'WITH SPACE': 'x' } }, /body\.set\.WITH SPACE/],
      [{ set: { '': 'x' } }, /body\.set/],
      [{ set: { A_NUL: 'a\u0000b' } }, /body\.set\.A_NUL: .*NUL/],
      [{ set: { GOOD: 1 } }, /body\.set\.GOOD/],
      [{ unset: ['OK', 'A=B'] }, /body\.unset\.1/],
      [{ unset: 'PATH' }, /body\.unset/],
      [{ set: { COVE_AGENT_TOKEN: 'x' } }, /body\.set\.COVE_AGENT_TOKEN: .*reserved/],
      [{ set: { HOME: '/tmp' } }, /body\.set\.HOME/],
      [{ set: { LD_PRELOAD: '/tmp/x.so' } }, /body\.set\.LD_PRELOAD/],
      [{ set: { NODE_OPTIONS: '--inspect' } }, /body\.set\.NODE_OPTIONS/],
      [{ unset: ['USER'] }, /body\.unset\.0/],
      [{ unset: ['PATH'] }, /body\.unset\.0: PATH/],
      [{ set: { PATH: '' } }, /body\.set\.PATH/],
      [{ set: { BIG: 'x'.repeat(200 * 1024) } }, /body\.set\.BIG/],
      ['{"set":{"__proto__":"x"}}', /body\.set\.__proto__/],
      ['[1,2]', /body/],
      ['{"set":', /JSON/],
    ];
    for (const [body, message] of refused) {
      const res = await post('/env', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body, JSON.stringify(body)).toMatchObject({ code: expect.stringMatching(/INVALID_(REQUEST|JSON)/), message: expect.stringMatching(message) });
    }
    // One refused name refuses the whole request.
    expect((await post('/env', { set: { ATOMIC_OK: '1', COVE_X: '2' } })).status).toBe(400);
    expect(await run('echo "${ATOMIC_OK-absent}|$HOME"')).toMatch(/^absent\|\//);
  });
});

describe('GET /system/metrics', () => {
  it('reports the cgroup and the work dir file system with sane numbers', async () => {
    const m = SystemMetrics.parse(await agent.json('/system/metrics'));
    expect(m.cpuCount).toBeGreaterThanOrEqual(1);
    expect(m.cpuCount).toBeLessThanOrEqual(os.availableParallelism());
    expect(m.memUsed).toBeGreaterThan(0);
    expect(m.memTotal).toBeGreaterThan(m.memUsed);
    expect(m.memTotal).toBeLessThanOrEqual(os.totalmem());
    expect(m.diskUsed).toBeGreaterThan(0);
    expect(m.diskTotal).toBeGreaterThan(m.diskUsed);
    expect(m.diskFree).toBeLessThanOrEqual(m.diskTotal - m.diskUsed);
    expect(m.cpuUsedPct).toBeGreaterThanOrEqual(0);
    expect(m.cpuUsedPct).toBeLessThanOrEqual(100);
    expect(Math.abs(Date.parse(m.timestamp) - Date.now())).toBeLessThan(10_000);
    expect(Math.abs(m.timestampUnix - Date.now() / 1000)).toBeLessThan(10);
  });

  it('measures CPU over the time since the previous request', async () => {
    await agent.json('/system/metrics');
    // One busy core for 1.5 s; the agent's cgroup here may hold more than this command, which only adds.
    await agent.json('/process/execute', { method: 'POST', json: { command: 'timeout 1.5 sh -c "while :; do :; done"; true', timeout: 10 } });
    const busy = SystemMetrics.parse(await agent.json('/system/metrics'));
    expect(busy.cpuUsedPct).toBeGreaterThan(100 / busy.cpuCount / 3);
  });
});

describe('POST /files/upload-v2', () => {
  const dir = () => path.join(agent.workdir, 'v2');

  it('takes a raw body or a multipart "file" part and answers with the file', async () => {
    const raw = await agent.fetch(`/files/upload-v2?path=${encodeURIComponent(path.join(dir(), 'raw.bin'))}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: Buffer.from('raw bytes'),
    });
    expect(raw.status).toBe(200);
    expect(UploadedFile.parse(await raw.json())).toEqual({ name: 'raw.bin', path: path.join(dir(), 'raw.bin'), type: 'application/octet-stream' });
    expect(readFileSync(path.join(dir(), 'raw.bin'), 'utf8')).toBe('raw bytes');

    const form = new FormData();
    form.append('file', new Blob(['multipart bytes'], { type: 'text/plain' }), 'ignored-name.txt');
    const multi = await agent.fetch(`/files/upload-v2?path=${encodeURIComponent(path.join(dir(), 'multi.txt'))}`, { method: 'POST', body: form });
    expect(multi.status).toBe(200);
    expect(await multi.json()).toMatchObject({ name: 'multi.txt', type: 'text/plain' });
    expect(readFileSync(path.join(dir(), 'multi.txt'), 'utf8')).toBe('multipart bytes');

    const noFile = new FormData();
    noFile.append('other', 'x');
    const refused = await agent.fetch(`/files/upload-v2?path=${encodeURIComponent(path.join(dir(), 'none.txt'))}`, { method: 'POST', body: noFile });
    expect(refused.status).toBe(400);
    expect(existsSync(path.join(dir(), 'none.txt'))).toBe(false);
    expect((await agent.fetch('/files/upload-v2', { method: 'POST', body: 'x' })).status).toBe(400);
  });

  it('leaves nothing behind, and the old file whole, when the upload breaks off', async () => {
    const target = path.join(dir(), 'broken.bin');
    mkdirSync(dir(), { recursive: true });
    writeFileSync(target, 'previous content');
    const url = new URL(`${agent.url}/files/upload-v2?path=${encodeURIComponent(target)}`);
    await new Promise<void>((resolve) => {
      const req = request(url, { method: 'POST', headers: { Authorization: `Bearer ${agent.token}`, 'Content-Type': 'application/octet-stream', 'Content-Length': String(10 * 1024 * 1024) } });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(256 * 1024, 1), () => setTimeout(() => (req.destroy(), resolve()), 200));
    });
    await waitFor(() => readdirSync(dir()).every((n) => !n.includes('.cove-upload-')), 10_000, 'the temp file to be removed');
    expect(readFileSync(target, 'utf8')).toBe('previous content');
  });
});
