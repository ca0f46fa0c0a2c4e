/**
 * Through a real `cove serve`, the default image and the published SDK: the sandbox environment (updateEnv), resource
 * metrics (getMetricsLatest), signed file URLs (downloadUrl, uploadUrl, rotateSigningKey), toolbox WebSockets opened
 * with DAYTONA_SANDBOX_AUTH_KEY as browser runtimes do, and CORS on /api and /toolbox. What reaches the agent is read
 * off the wire: the test captures the packets to port 2280 on this host (root and python3 needed).
 */
import type { Sandbox } from '@daytonaio/sdk';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCove, type TestCove } from '../helpers/cove';

const ORIGIN = 'https://app.example.test';
const OTHER_ORIGIN = 'https://evil.example.test';

let cove: TestCove;
let a: Sandbox;
let b: Sandbox;
beforeAll(async () => {
  cove = await startCove({ pool: 1, args: ['--cors-origins', `${ORIGIN}/, http://localhost:5173`] });
  const daytona = cove.daytona();
  [a, b] = await Promise.all([daytona.create(), daytona.create()]);
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
});

/**
 * Runs `action` while capturing the TCP payloads to and from port 2280 (the agents) on every interface of this host;
 * returns them concatenated. Needs root and python3: a test that cannot capture fails saying so.
 */
async function agentTraffic(action: () => Promise<void>): Promise<Buffer> {
  const script = `
import socket, sys, time, base64
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.settimeout(0.1)
out = bytearray()
print('ready', flush=True)
stop = None
while stop is None or time.time() < stop:
    if stop is None and sys.stdin in __import__('select').select([sys.stdin], [], [], 0)[0]:
        sys.stdin.readline(); stop = time.time() + 0.5
    try:
        p = s.recv(65535)
    except socket.timeout:
        continue
    if len(p) < 34 or p[12:14] != b'\\x08\\x00' or p[23] != 6: continue
    t = 14 + (p[14] & 15) * 4
    if 2280 not in (int.from_bytes(p[t:t+2], 'big'), int.from_bytes(p[t+2:t+4], 'big')): continue
    out += p[t + (p[t+12] >> 4) * 4:]
sys.stdout.write(base64.b64encode(bytes(out)).decode())
`;
  const py = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  py.stdout.on('data', (d) => (stdout += d));
  py.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => py.once('close', resolve));
  const ready = new Promise<void>((resolve, reject) => {
    py.stdout.on('data', () => stdout.startsWith('ready') && resolve());
    py.once('error', (err) => reject(new Error(`packet capture needs python3: ${err.message}`)));
    py.once('close', () => reject(new Error(`packet capture failed (needs root): ${stderr}`)));
  });
  await ready;
  try {
    await action();
  } finally {
    py.stdin.write('stop\n');
  }
  expect(await exited, stderr).toBe(0);
  return Buffer.from(stdout.slice('ready\n'.length), 'base64');
}

const sign = (key: string, method: string, filePath: string, expires: number) =>
  `v1_${createHmac('sha256', key).update(`v1:files:${method}:${filePath}:${expires}`).digest('base64url')}`;

async function signingKey(id: string): Promise<string> {
  const res = await cove.api(`/sandbox/${id}/signing-key`);
  expect(res.status).toBe(200);
  return res.json();
}

describe('updateEnv', () => {
  it('changes what later commands and sessions start with; running sessions keep theirs', async () => {
    await a.process.createSession('env-early');
    await a.updateEnv({ EXTRAS_GREETING: 'hello there', EXTRAS_GONE: 'soon' });
    expect((await a.process.executeCommand('echo "$EXTRAS_GREETING|$EXTRAS_GONE"')).result.trim()).toBe('hello there|soon');
    const early = await a.process.executeSessionCommand('env-early', { command: 'echo "[$EXTRAS_GREETING]"' });
    expect(early.output?.trim()).toBe('[]');
    await a.process.createSession('env-late');
    const late = await a.process.executeSessionCommand('env-late', { command: 'echo "[$EXTRAS_GREETING]"' });
    expect(late.output?.trim()).toBe('[hello there]');

    await a.updateEnv({}, { unset: ['EXTRAS_GONE'] });
    expect((await a.process.executeCommand('echo "${EXTRAS_GONE-unset}|$EXTRAS_GREETING"')).result.trim()).toBe('unset|hello there');
    const py = await a.process.codeRun('import os\nprint(os.environ.get("EXTRAS_GREETING"))');
    expect(py.result.trim()).toBe('hello there');
  });

  it('refuses bad names with a 400 naming the field', async () => {
    for (const [env, field] of [
      [{ '1BAD': 'x' }, 'set.1BAD'],
      [{ 'A=B': 'x' }, 'set.A=B'],
      [{ COVE_AGENT_TOKEN: 'x' }, 'set.COVE_AGENT_TOKEN'],
      [{ NUL_VALUE: 'a\u0000b' }, 'set.NUL_VALUE'],
    ] as const) {
      await expect(a.updateEnv(env as Record<string, string>)).rejects.toMatchObject({ statusCode: 400, message: expect.stringContaining(field) });
    }
    await expect(a.updateEnv({}, { unset: ['NOT-A-NAME'] })).rejects.toMatchObject({ statusCode: 400, message: expect.stringContaining('unset.0') });
  });
});

describe('getMetricsLatest', () => {
  it("reports the sandbox's own limits and use", async () => {
    const m = await a.getMetricsLatest();
    // The default class: 1 CPU and 1 GiB, from the sandbox's cgroup (not the host's 2 CPUs and more memory).
    expect(m.cpuCount).toBe(1);
    expect(m.memTotal).toBe(1024 ** 3);
    expect(m.memUsed).toBeGreaterThan(0);
    expect(m.memTotal).toBeGreaterThan(m.memUsed);
    expect(m.diskUsed).toBeGreaterThan(0);
    expect(m.diskTotal).toBeGreaterThan(m.diskUsed);
    expect(m.cpuUsedPct).toBeGreaterThanOrEqual(0);
    expect(m.cpuUsedPct).toBeLessThanOrEqual(100);
    expect(Math.abs(m.timestamp.getTime() - Date.now())).toBeLessThan(10_000);

    // A busy loop for a few seconds, sampled while it runs: on a loaded host it gets its share only part of the time.
    await a.process.executeCommand('(timeout 6 sh -c "while :; do :; done" &) ; true');
    let busiest = 0;
    for (let i = 0; i < 10 && busiest <= 30; i++) {
      await new Promise((r) => setTimeout(r, 400));
      busiest = Math.max(busiest, (await a.getMetricsLatest()).cpuUsedPct);
    }
    expect(busiest).toBeGreaterThan(30);
  });
});

describe('signed file URLs', () => {
  it('upload and download with plain fetch and no Authorization; the signature never reaches the agent', async () => {
    const up = await a.uploadUrl('/home/cove/signed/up.txt', 120);
    expect(up).toMatch(new RegExp(`/toolbox/${a.id}/files/upload-v2\\?path=.*&expires=\\d+&signature=v1_`));
    const form = new FormData();
    form.append('file', new Blob(['signed upload']), 'up.txt');
    const signature = new URL(up).searchParams.get('signature')!;
    const seen = await agentTraffic(async () => {
      const res = await fetch(up, { method: 'POST', body: form });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(await res.json()).toMatchObject({ path: '/home/cove/signed/up.txt' });
    });
    expect(seen.includes('/files/upload-v2?path=%2Fhome%2Fcove%2Fsigned%2Fup.txt')).toBe(true);
    expect(seen.includes(signature)).toBe(false);
    expect(seen.includes('signature=')).toBe(false);

    const down = await fetch(await a.downloadUrl('/home/cove/signed/up.txt'));
    expect(down.status).toBe(200);
    expect(await down.text()).toBe('signed upload');

    // A raw body works too (curl --data-binary).
    const raw = await fetch(await a.uploadUrl('/home/cove/signed/raw.bin'), { method: 'POST', body: 'raw bytes', headers: { 'Content-Type': 'application/octet-stream' } });
    expect(raw.status).toBe(200);
    expect((await a.fs.downloadFile('/home/cove/signed/raw.bin')).toString()).toBe('raw bytes');

    // A TTL of 0 never expires, as the SDK documents.
    const forever = await a.downloadUrl('/home/cove/signed/up.txt', 0);
    expect(new URL(forever).searchParams.get('expires')).toBe('0');
    expect((await fetch(forever)).status).toBe(200);
  });

  it('refuses expired, altered, misused, foreign and rotated URLs', async () => {
    const file = '/home/cove/signed/up.txt';
    const good = await a.downloadUrl(file, 300);
    expect((await fetch(good)).status).toBe(200);
    const key = await signingKey(a.id);
    const base = `${cove.url.replace('127.0.0.1', 'localhost')}/toolbox/${a.id}`;
    const refused = async (url: string, init: RequestInit, status: number, message: RegExp) => {
      const res = await fetch(url, init);
      expect(res.status, url).toBe(status);
      expect(await res.json(), url).toMatchObject({ message: expect.stringMatching(message) });
    };

    const past = Math.floor(Date.now() / 1000) - 10;
    const expired = `${base}/files/download?${new URLSearchParams({ path: file, expires: String(past), signature: sign(key, 'GET', file, past) })}`;
    await refused(expired, {}, 403, /expired/);

    const u = new URL(good);
    const tampered = new URL(good);
    const sig = u.searchParams.get('signature')!;
    tampered.searchParams.set('signature', sig.slice(0, -1) + (sig.endsWith('A') ? 'B' : 'A'));
    await refused(tampered.href, {}, 403, /not valid/);
    const otherPath = new URL(good);
    otherPath.searchParams.set('path', '/etc/passwd');
    await refused(otherPath.href, {}, 403, /not valid/);
    const later = new URL(good);
    later.searchParams.set('expires', String(Number(u.searchParams.get('expires')) + 3600));
    await refused(later.href, {}, 403, /not valid/);
    const twice = `${good}&path=${encodeURIComponent('/etc/passwd')}`;
    await refused(twice, {}, 403, /once each/);

    // The method and the operation must be the ones signed.
    await refused(good, { method: 'POST', body: 'x' }, 403, /GET, not POST/);
    const up = await a.uploadUrl('/home/cove/signed/method.txt');
    await refused(up, {}, 403, /POST, not GET/);
    await refused(up, { method: 'PUT', body: 'x' }, 403, /POST, not PUT/);
    await refused(up.replace('/files/upload-v2', '/files/upload'), { method: 'POST', body: 'x' }, 403, /only/);

    // Another sandbox's URL, and a URL of this sandbox signed with the other's key.
    await refused(good.replace(`/toolbox/${a.id}/`, `/toolbox/${b.id}/`), {}, 403, /not valid/);
    const keyB = await signingKey(b.id);
    const exp = Math.floor(Date.now() / 1000) + 300;
    await refused(`${base}/files/download?${new URLSearchParams({ path: file, expires: String(exp), signature: sign(keyB, 'GET', file, exp) })}`, {}, 403, /not valid/);
    await refused(`${cove.url}/toolbox/no-such-sandbox/files/download?${u.searchParams}`, {}, 403, /not valid/);

    // No signature and no key: 401.
    await refused(`${base}/files/download?path=${encodeURIComponent(file)}`, {}, 401, /API key/);

    // Rotation invalidates every URL signed before, at once; URLs signed after work.
    await a.rotateSigningKey();
    expect(await signingKey(a.id)).not.toBe(key);
    await refused(good, {}, 403, /rotated/);
    await refused(`${base}/files/download?${new URLSearchParams({ path: file, expires: '0', signature: sign(key, 'GET', file, 0) })}`, {}, 403, /not valid/);
    expect((await fetch(await a.downloadUrl(file))).status).toBe(200);

    // The signing-key routes are authenticated like every sandbox route.
    expect((await cove.api(`/sandbox/${a.id}/signing-key`, { key: null })).status).toBe(401);
    expect((await cove.api(`/sandbox/${a.id}/signing-key/rotate`, { method: 'POST', key: null })).status).toBe(401);

    // Kept in the server's database, one per sandbox, the current one only.
    const db = new Database(path.join(cove.dataDir, 'cove.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT sandbox_id, key FROM signing_keys WHERE sandbox_id IN (?, ?)').all(a.id, b.id) as { sandbox_id: string; key: string }[];
      expect(Object.fromEntries(rows.map((r) => [r.sandbox_id, r.key]))).toEqual({ [a.id]: await signingKey(a.id), [b.id]: keyB });
    } finally {
      db.close();
    }
  });
});

describe('toolbox WebSockets with DAYTONA_SANDBOX_AUTH_KEY', () => {
  const wsBase = () => `${cove.url.replace(/^http/, 'ws')}/toolbox`;
  /** Opens a WebSocket without Authorization; resolves with the socket once open, or the HTTP status it got. */
  const open = (url: string, protocols: string[] = []) =>
    new Promise<{ ws?: WebSocket; status?: number; body?: string }>((resolve) => {
      const ws = new WebSocket(url, protocols);
      ws.once('open', () => resolve({ ws }));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      ws.once('error', () => {});
    });

  it("opens a terminal with the port-1 preview token, and the token never reaches the agent", async () => {
    const { token } = await a.getPreviewLink(1);
    const probe = randomBytes(8).toString('hex');
    let output = '';
    const seen = await agentTraffic(async () => {
      const { ws, status, body } = await open(
        `${wsBase()}/${a.id}/process/pty/create-connect?id=ws-${probe}&cols=80&rows=24&DAYTONA_SANDBOX_AUTH_KEY=${token}&probe=${probe}`,
        ['X-Daytona-SDK-Version~0.218.0', 'X-Daytona-Pty-Exit-Control'],
      );
      expect(status, body).toBeUndefined();
      ws!.on('message', (data) => (output += data.toString()));
      ws!.send('echo "sum=$((40 + 2))"\n');
      const deadline = Date.now() + 15_000;
      while (!output.includes('sum=42') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      ws!.close();
    });
    expect(output).toContain('"status":"connected"');
    expect(output).toContain('sum=42');
    // The capture saw the upgrade reach the agent, without the token.
    expect(seen.includes(`probe=${probe}`)).toBe(true);
    expect(seen.includes(token)).toBe(false);
    expect(seen.toString('latin1')).not.toMatch(/DAYTONA_SANDBOX_AUTH_KEY/i);
  });

  it('refuses a wrong token, a token of another port or sandbox, and the parameter on plain HTTP calls', async () => {
    const { token: port3000 } = await a.getPreviewLink(3000);
    const { token: otherSandbox } = await b.getPreviewLink(1);
    const { token: mine } = await a.getPreviewLink(1);
    for (const t of ['a'.repeat(32), port3000, otherSandbox, `${mine}x`, '']) {
      const res = await open(`${wsBase()}/${a.id}/process/pty/create-connect?id=no-${randomBytes(4).toString('hex')}&DAYTONA_SANDBOX_AUTH_KEY=${t}`);
      expect(res.status, t).toBe(401);
      expect(JSON.parse(res.body!)).toMatchObject({ code: 'UNAUTHORIZED', message: expect.any(String) });
    }
    // Twice, even both valid, is refused.
    expect((await open(`${wsBase()}/${a.id}/process/pty/create-connect?id=twice&DAYTONA_SANDBOX_AUTH_KEY=${mine}&DAYTONA_SANDBOX_AUTH_KEY=${mine}`)).status).toBe(401);
    const http = await fetch(`${cove.url}/toolbox/${a.id}/files?path=/&DAYTONA_SANDBOX_AUTH_KEY=${mine}`);
    expect(http.status).toBe(401);
    expect((await http.json()).message).toMatch(/WebSockets only/);
    expect((await cove.api(`/sandbox?DAYTONA_SANDBOX_AUTH_KEY=${mine}`, { key: null })).status).toBe(401);
  });
});

describe('CORS', () => {
  const preflight = (url: string, origin: string) =>
    fetch(url, { method: 'OPTIONS', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type, x-daytona-source' } });

  it('answers preflights on /api and /toolbox before auth, with the origin only when it is allowed', async () => {
    for (const url of [`${cove.apiUrl}/sandbox`, `${cove.url}/toolbox/${a.id}/files?path=/`, `${cove.url}/toolbox/no-such/process/execute`]) {
      for (const origin of [ORIGIN, 'http://localhost:5173']) {
        const res = await preflight(url, origin);
        expect(res.status, url).toBe(204);
        expect(res.headers.get('access-control-allow-origin')).toBe(origin);
        expect(res.headers.get('access-control-allow-methods')).toMatch(/POST/);
        const allowed = res.headers.get('access-control-allow-headers')!.toLowerCase();
        for (const h of ['authorization', 'content-type', 'x-daytona-source', 'x-daytona-sdk-version', 'x-daytona-organization-id']) expect(allowed).toContain(h);
        expect(Number(res.headers.get('access-control-max-age'))).toBeGreaterThan(0);
        expect(res.headers.get('vary')).toMatch(/Origin/i);
      }
      const other = await preflight(url, OTHER_ORIGIN);
      expect(other.status).toBe(204);
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  it('marks real responses of allowed origins, and real requests still need auth', async () => {
    const listed = await cove.api('/sandbox', { headers: { Origin: ORIGIN } });
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(listed.headers.get('vary')).toMatch(/Origin/i);
    const unauthenticated = await cove.api('/sandbox', { key: null, headers: { Origin: ORIGIN } });
    expect(unauthenticated.status).toBe(401);
    // The browser may read the refusal.
    expect(unauthenticated.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const toolbox = await fetch(`${cove.url}/toolbox/${a.id}/version`, { headers: { Origin: ORIGIN, Authorization: `Bearer ${cove.apiKey}` } });
    expect(toolbox.status).toBe(200);
    expect(toolbox.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect((await fetch(`${cove.url}/toolbox/${a.id}/version`, { headers: { Origin: ORIGIN } })).status).toBe(401);
    const other = await cove.api('/sandbox', { headers: { Origin: OTHER_ORIGIN } });
    expect(other.status).toBe(200);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(other.headers.get('vary')).toMatch(/Origin/i);
  });

  it('is off by default and refuses origins that are not origins', async () => {
    // Checked with the configuration reader `cove serve` uses.
    const { readProxyConfig } = await import('../../proxy/src/config');
    expect(readProxyConfig([], {}, '/').corsOrigins).toEqual([]);
    expect(readProxyConfig([], { COVE_CORS_ORIGINS: 'https://A.example:443/, *' }, '/').corsOrigins).toEqual(['https://a.example', '*']);
    expect(readProxyConfig(['--cors-origins', 'http://x.test:8080'], { COVE_CORS_ORIGINS: '*' }, '/').corsOrigins).toEqual(['http://x.test:8080']);
    for (const bad of ['https://a.example/path', 'ftp://a.example', 'not an origin', 'https://u:p@a.example']) {
      expect(() => readProxyConfig(['--cors-origins', bad], {}, '/'), bad).toThrow(/not an origin/);
    }
  });
});
