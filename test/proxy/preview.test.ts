/**
 * Preview URLs against a real `cove serve` and real servers inside real sandboxes: routing to servers bound to
 * 0.0.0.0 and to 127.0.0.1, streams, WebSockets, large bodies, keep-alive, and every rule of preview auth.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { hostOf, PREVIEW_FIXTURES, previewFetch, previewSocket, previewStream, roundTrip, toolbox } from '../helpers/preview';

const run = promisify(execFile);
let cove: TestCove;
/** Sandbox A runs the echo app on 8080 (0.0.0.0) and 8081 (127.0.0.1), python3 -m http.server on 8000 and 8001 (same). */
let a: string;
/** Sandbox B runs the echo app on 8080. */
let b: string;
let other: string;

interface Link {
  sandboxId: string;
  url: string;
  token: string;
}

async function link(id: string, port: number, key?: string): Promise<Link> {
  const res = await cove.api(`/sandbox/${id}/ports/${port}/preview-url`, { key });
  const body = await res.json();
  if (!res.ok) throw Object.assign(new Error(body.message), { status: res.status });
  return body;
}

async function createSandbox(body: object = {}): Promise<string> {
  const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`create failed: ${JSON.stringify(json)}`);
  return json.id;
}

async function startEchoApps(id: string, binds: [number, string][]): Promise<void> {
  const box = toolbox(cove, id);
  await box.uploadDir(PREVIEW_FIXTURES, '/home/cove/preview');
  for (const [port, host] of binds) await box.serve(`node /home/cove/preview/echo-server.mjs ${port} ${host}`, port);
}

const BROWSER = { Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

/** Reads a streaming response until its text so far contains `text`. */
function readUntil(res: IncomingMessage, text: string, seen = { all: '' }): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (seen.all.includes(text)) {
        res.off('data', onData);
        res.off('end', onEnd);
        res.pause();
        resolve(seen.all);
        return true;
      }
      return false;
    };
    const onData = (d: Buffer) => {
      seen.all += d.toString();
      check();
    };
    const onEnd = () => reject(new Error(`the stream ended without ${JSON.stringify(text)}; got ${JSON.stringify(seen.all)}`));
    if (check()) return;
    res.on('data', onData);
    res.once('end', onEnd);
    res.resume();
  });
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The complete responses at the start of `raw` (Content-Length or chunked bodies; ASCII text). */
function splitResponses(raw: string): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = raw;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const [line, ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    let at = end + 4;
    let body = '';
    if (headers['transfer-encoding'] === 'chunked') {
      for (;;) {
        const eol = rest.indexOf('\r\n', at);
        if (eol < 0) return out;
        const size = parseInt(rest.slice(at, eol), 16);
        if (rest.length < eol + 2 + size + 2) return out;
        body += rest.slice(eol + 2, eol + 2 + size);
        at = eol + 2 + size + 2;
        if (size === 0) break;
      }
    } else {
      const length = Number(headers['content-length'] ?? 0);
      if (rest.length < at + length) return out;
      body = rest.slice(at, at + length);
      at += length;
    }
    out.push({ status: Number(line.split(' ')[1]), headers, body });
    rest = rest.slice(at);
  }
}

/**
 * Writes `requests` on one connection to the proxy at once (pipelined) and reads `count` responses, then (with
 * `untilClosed`) waits for the proxy to close the connection.
 */
async function pipelined(requests: string[], count = requests.length, untilClosed = false): Promise<{ responses: RawResponse[]; closed: boolean }> {
  const socket = net.connect(Number(new URL(cove.url).port), '127.0.0.1');
  let raw = '';
  let closed = false;
  socket.on('data', (d) => (raw += d.toString('latin1')));
  socket.on('close', () => (closed = true));
  socket.write(requests.join(''));
  const deadline = Date.now() + 15_000;
  while ((splitResponses(raw).length < count || (untilClosed && !closed)) && !closed) {
    if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(raw)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const result = { responses: splitResponses(raw), closed };
  socket.destroy();
  return result;
}

const get = (host: string, target: string, headers: Record<string, string> = {}) =>
  `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

beforeAll(async () => {
  cove = await startCove({ pool: 2 });
  [a, b] = await Promise.all([createSandbox(), createSandbox()]);
  await Promise.all([
    startEchoApps(a, [
      [8080, '0.0.0.0'],
      [8081, '127.0.0.1'],
    ]),
    startEchoApps(b, [[8080, '0.0.0.0']]),
  ]);
  const box = toolbox(cove, a);
  await box.exec('mkdir -p /home/cove/site && echo "python file" > /home/cove/site/hello.txt');
  await box.serve('cd /home/cove/site && python3 -m http.server --bind 0.0.0.0 8000', 8000);
  await box.serve('cd /home/cove/site && python3 -m http.server --bind 127.0.0.1 8001', 8001);
  other = execFileSync(process.execPath, [COVE_BIN, 'keys', 'create', '--name', 'other', '--data-dir', cove.dataDir], { encoding: 'utf8' }).trim();
}, 20 * 60_000);

afterAll(async () => {
  if (!cove) return;
  for (const id of [a, b]) if (id) await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
  await cove.destroy();
});

describe('preview routing', () => {
  it('reaches servers bound to 0.0.0.0 and to 127.0.0.1 inside the sandbox (node and python)', async () => {
    for (const port of [8000, 8001]) {
      const { url, token } = await link(a, port);
      expect(url).toBe(`http://${port}-${a}.localhost:${new URL(cove.url).port}`);
      const res = await previewFetch(`${url}/hello.txt`, { headers: { 'X-Daytona-Preview-Token': token } });
      expect(res.status).toBe(200);
      expect(res.text()).toBe('python file\n');
    }
    for (const [port, bound] of [
      [8080, '0.0.0.0'],
      [8081, '127.0.0.1'],
    ] as const) {
      const { url, token } = await link(a, port);
      const res = await previewFetch(`${url}/echo`, { headers: { 'X-Daytona-Preview-Token': token } });
      expect(res.status).toBe(200);
      // The app sees Host localhost:PORT (what dev servers that check Host accept) and the real origin beside it.
      expect(res.json()).toMatchObject({ bound, headers: { host: `localhost:${port}`, 'x-forwarded-host': hostOf(url), 'x-forwarded-proto': 'http' } });
    }
    // curl resolves *.localhost to loopback by itself, as browsers do.
    const { url, token } = await link(a, 8081);
    const { stdout } = await run('curl', ['-sS', '-H', `X-Cove-Preview-Token: ${token}`, `${url}/`]);
    expect(stdout).toContain('hello from port 8081');
  });

  it('streams SSE and chunked responses as they are written, not buffered', async () => {
    for (const port of [8080, 8081]) {
      const { url, token } = await link(a, port);
      const headers = { 'X-Daytona-Preview-Token': token };
      for (const [p, first] of [
        ['/sse', 'data: event 1\n\n'],
        ['/chunked', 'chunk 1\n'],
      ] as const) {
        const { res } = await previewStream(`${url}${p}`, { headers });
        expect(res.statusCode).toBe(200);
        const seen = { all: '' };
        // The app sends its next event only when asked: each must arrive while the stream is still open.
        expect(await readUntil(res, first, seen)).toBe(first);
        await previewFetch(`${url}/next`, { headers });
        await readUntil(res, first.replace('1', '2'), seen);
        expect(res.complete).toBe(false);
        await previewFetch(`${url}/next`, { headers });
        await readUntil(res, 'end', seen);
        expect(seen.all).toContain(first.replace('1', '3'));
      }
      const { res } = await previewStream(`${url}/sse`, { headers });
      expect(res.headers['content-type']).toBe('text/event-stream');
      res.destroy();
    }
  });

  it('upgrades WebSockets to servers on 0.0.0.0 and 127.0.0.1', async () => {
    for (const port of [8080, 8081]) {
      const { url, token } = await link(a, port);
      const ws = await previewSocket(`${url}/ws`, { 'X-Daytona-Preview-Token': token });
      expect((await roundTrip(ws, 'hello')).toString()).toBe('hello');
      const big = randomBytes(200_000);
      expect((await roundTrip(ws, big)).equals(big)).toBe(true);
      ws.close();
      await expect(previewSocket(`${url}/ws`)).rejects.toMatchObject({ status: 401 });
      await expect(previewSocket(`${url}/ws`, { 'X-Daytona-Preview-Token': (await link(b, 8080)).token })).rejects.toMatchObject({ status: 401 });
    }
  });

  it('carries a 50 MB upload to the app intact (node fetch and curl with Expect: 100-continue)', async () => {
    const body = randomBytes(50 * 1024 * 1024);
    const sha256 = createHash('sha256').update(body).digest('hex');
    for (const port of [8080, 8081]) {
      const { url, token } = await link(a, port);
      const res = await previewFetch(`${url}/upload`, { method: 'POST', headers: { 'X-Daytona-Preview-Token': token }, body });
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ bytes: body.length, sha256 });
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-upload-'));
    try {
      writeFileSync(path.join(dir, 'big.bin'), body);
      const { url, token } = await link(a, 8081);
      const { stdout } = await run('curl', ['-sS', '--fail', '-H', `X-Daytona-Preview-Token: ${token}`, '--data-binary', `@${dir}/big.bin`, `${url}/upload`]);
      expect(JSON.parse(stdout)).toEqual({ bytes: body.length, sha256 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps connections alive on both sides', async () => {
    const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const port of [8080, 8081]) {
        const { url, token } = await link(a, port);
        const answers = [];
        for (let i = 0; i < 5; i++) answers.push(await previewFetch(`${url}/conn`, { headers: { 'X-Daytona-Preview-Token': token }, agent: client }));
        // The client's connection to the proxy is reused, and so is the proxy's connection to the app.
        expect(answers.slice(1).every((r) => r.reusedSocket)).toBe(true);
        expect(new Set(answers.map((r) => r.json().remotePort)).size).toBe(1);
      }
    } finally {
      client.destroy();
    }
  });

  it('turns redirects to the app’s own localhost address into the preview origin', async () => {
    const { url, token } = await link(a, 8081);
    const res = await previewFetch(`${url}/redirect`, { headers: { 'X-Daytona-Preview-Token': token } });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe(`${url}/echo?from=redirect`);
  });

  it('answers 502 naming the port when nothing listens (HTML for browsers, JSON for API clients)', async () => {
    for (const port of [9999, 3000]) {
      const { url, token } = await link(a, port);
      const json = await previewFetch(`${url}/`, { headers: { 'X-Daytona-Preview-Token': token } });
      expect(json.status).toBe(502);
      expect(json.headers['content-type']).toBe('application/json');
      expect(json.json()).toMatchObject({ code: 'PORT_NOT_LISTENING', message: expect.stringContaining(`port ${port}`) });
      const html = await previewFetch(`${url}/`, { headers: { ...BROWSER, 'X-Daytona-Preview-Token': token } });
      expect(html.status).toBe(502);
      expect(html.headers['content-type']).toContain('text/html');
      expect(html.text()).toContain(`port ${port}`);
      await expect(previewSocket(`${url}/ws`, { 'X-Daytona-Preview-Token': token })).rejects.toMatchObject({ status: 502 });
    }
  });
});

describe('preview relay (one connection, many requests)', () => {
  it('admits and strips every pipelined request, chunked bodies included, and hands the connection over when it must', async () => {
    const { url, token } = await link(a, 8080);
    const host = hostOf(url);
    const body = 'x'.repeat(70_000);
    const chunked = `POST /upload HTTP/1.1\r\nHost: ${host}\r\nX-Daytona-Preview-Token: ${token}\r\nTransfer-Encoding: chunked\r\n\r\n${(50_000).toString(16)};ext=1\r\n${body.slice(0, 50_000)}\r\n${(20_000).toString(16)}\r\n${body.slice(50_000)}\r\n0\r\nx-trailer: t\r\n\r\n`;
    const { responses } = await pipelined([
      get(host, '/echo?i=1', { 'X-Daytona-Preview-Token': token }),
      get(host, '/echo?i=2', { Cookie: `a=1; cove_preview=${token}; b=2`, Authorization: `Bearer ${cove.apiKey}` }),
      chunked,
      // A query token makes the proxy answer with a cookie: from here the HTTP server serves the connection.
      get(host, `/echo?i=4&DAYTONA_SANDBOX_AUTH_KEY=${token}`),
      get(host, '/echo?i=5', { 'X-Cove-Preview-Token': token }),
    ]);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const echoes = [0, 1, 3, 4].map((i) => JSON.parse(responses[i].body));
    expect(echoes.map((e) => e.url)).toEqual(['/echo?i=1', '/echo?i=2', '/echo?i=4', '/echo?i=5']);
    for (const e of echoes) {
      expect(e.headers.host).toBe('localhost:8080');
      expect(e.headers['x-forwarded-host']).toBe(host);
      expect(e.headers['x-daytona-preview-token']).toBeUndefined();
      expect(e.headers['x-cove-preview-token']).toBeUndefined();
      expect(e.headers.authorization).toBeUndefined();
      expect(JSON.stringify(e)).not.toContain(token);
      expect(JSON.stringify(e)).not.toContain(cove.apiKey);
    }
    expect(echoes[1].headers.cookie).toBe('a=1; b=2');
    expect(JSON.parse(responses[2].body)).toEqual({ bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    expect(responses[3].headers['set-cookie']).toContain(`cove_preview=${token}`);
  });

  it('admits each request for its own host: a token of sandbox A sent for sandbox B on A’s connection is refused', async () => {
    const la = await link(a, 8080);
    const lb = await link(b, 8080);
    const { responses } = await pipelined([
      get(hostOf(la.url), '/echo', { 'X-Daytona-Preview-Token': la.token }),
      get(hostOf(lb.url), '/echo', { 'X-Daytona-Preview-Token': la.token, Accept: 'application/json' }),
      get(hostOf(lb.url), '/echo', { 'X-Daytona-Preview-Token': lb.token }),
    ]);
    expect(responses.map((r) => r.status)).toEqual([200, 401, 200]);
    expect(JSON.parse(responses[0].body).headers['x-forwarded-host']).toBe(hostOf(la.url));
    expect(JSON.parse(responses[1].body)).toMatchObject({ code: 'PREVIEW_UNAUTHORIZED' });
    expect(JSON.parse(responses[2].body).headers['x-forwarded-host']).toBe(hostOf(lb.url));
  });

  it('answers bytes that are not HTTP (a TLS hello on the plain port) with 400 at once', async () => {
    const socket = net.connect(Number(new URL(cove.url).port), '127.0.0.1');
    let raw = '';
    socket.on('data', (d) => (raw += d.toString('latin1')));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03]));
    await closed;
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('refuses a request it cannot frame without doubt with 400 and closes, after answering the ones before', async () => {
    const { url, token } = await link(a, 8080);
    const host = hostOf(url);
    const { responses, closed } = await pipelined(
      [
        get(host, '/echo', { 'X-Daytona-Preview-Token': token }),
        `POST /upload HTTP/1.1\r\nHost: ${host}\r\nX-Daytona-Preview-Token: ${token}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
        get(host, '/echo', { 'X-Daytona-Preview-Token': token }),
      ],
      2,
      true,
    );
    expect(responses.map((r) => r.status)).toEqual([200, 400]);
    expect(closed).toBe(true);
  });
});

describe('preview auth', () => {
  it('answers 401 without a valid token: JSON for API clients, a page for browsers', async () => {
    const { url } = await link(a, 8080);
    for (const headers of [{}, { 'X-Daytona-Preview-Token': 'x'.repeat(32) }, { 'X-Daytona-Preview-Token': 'not a token' }] as Record<string, string>[]) {
      const res = await previewFetch(`${url}/echo`, { headers });
      expect(res.status).toBe(401);
      expect(res.json()).toMatchObject({ code: 'PREVIEW_UNAUTHORIZED', message: expect.any(String) });
    }
    const page = await previewFetch(`${url}/`, { headers: BROWSER });
    expect(page.status).toBe(401);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.text()).toMatch(/<h1>.*private/);
    // An unknown sandbox is a 404, whatever the token.
    const unknown = await previewFetch(url.replace(a, '00000000-0000-4000-8000-000000000000'));
    expect(unknown.status).toBe(404);
  });

  it('accepts both token headers and strips them, with Authorization, our query parameters and our cookie', async () => {
    const { url, token } = await link(a, 8081);
    for (const name of ['X-Daytona-Preview-Token', 'X-Cove-Preview-Token']) {
      const res = await previewFetch(`${url}/echo?keep=1&cove_preview_token=${token}`, { headers: { [name]: token, Cookie: `theme=dark; cove_preview=${token}` } });
      expect(res.status).toBe(200);
      const seen = res.json();
      expect(seen.url).toBe('/echo?keep=1');
      expect(seen.headers['x-daytona-preview-token']).toBeUndefined();
      expect(seen.headers['x-cove-preview-token']).toBeUndefined();
      expect(seen.headers.cookie).toBe('theme=dark');
      expect(JSON.stringify(seen)).not.toContain(token);
    }
  });

  it('accepts an API key that may use the sandbox, and strips it', async () => {
    const { url } = await link(a, 8081);
    const res = await previewFetch(`${url}/echo`, { headers: { Authorization: `Bearer ${cove.apiKey}` } });
    expect(res.status).toBe(200);
    expect(res.json().headers.authorization).toBeUndefined();
    expect(JSON.stringify(res.json())).not.toContain(cove.apiKey);
    // Another key sees neither the sandbox's preview link nor its preview.
    await expect(link(a, 8081, other)).rejects.toMatchObject({ status: 404 });
    expect((await previewFetch(`${url}/echo`, { headers: { Authorization: `Bearer ${other}` } })).status).toBe(401);
    expect((await previewFetch(`${url}/echo`, { headers: { Authorization: 'Bearer not-a-key' } })).status).toBe(401);
  });

  it('turns a query token into a host-only HttpOnly SameSite=Lax cookie; browsers are redirected without it', async () => {
    const { url, token } = await link(a, 8081);
    const first = await previewFetch(`${url}/echo?DAYTONA_SANDBOX_AUTH_KEY=${token}&keep=1`, { headers: BROWSER });
    expect(first.status).toBe(302);
    expect(first.headers.location).toBe('/echo?keep=1');
    const cookie = String(first.headers['set-cookie']);
    expect(cookie).toMatch(new RegExp(`^cove_preview=${token};`));
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Lax/);
    expect(cookie).not.toMatch(/Domain=/i);
    const pair = cookie.split(';')[0];
    const again = await previewFetch(`${url}/echo?keep=1`, { headers: { ...BROWSER, Cookie: pair } });
    expect(again.status).toBe(200);
    expect(again.json().url).toBe('/echo?keep=1');
    expect(again.json().headers.cookie).toBeUndefined();
    // API clients get the answer at once (and the cookie beside it); Cove's own parameter name works too.
    const api = await previewFetch(`${url}/echo?cove_preview_token=${token}`);
    expect(api.status).toBe(200);
    expect(api.json().url).toBe('/echo');
    expect(String(api.headers['set-cookie'])).toContain(`cove_preview=${token}`);
  });

  it('opens one port of one sandbox per token', async () => {
    const a8080 = await link(a, 8080);
    const a8081 = await link(a, 8081);
    const b8080 = await link(b, 8080);
    const tries = (url: string, token: string) => [
      previewFetch(`${url}/echo`, { headers: { 'X-Daytona-Preview-Token': token } }),
      previewFetch(`${url}/echo?DAYTONA_SANDBOX_AUTH_KEY=${token}`),
      previewFetch(`${url}/echo`, { headers: { Cookie: `cove_preview=${token}` } }),
    ];
    for (const res of await Promise.all([...tries(a8081.url, a8080.token), ...tries(b8080.url, a8080.token), ...tries(a8080.url, b8080.token)])) {
      expect(res.status).toBe(401);
    }
    for (const res of await Promise.all([...tries(a8080.url, a8080.token), ...tries(b8080.url, b8080.token), ...tries(a8081.url, a8081.token)])) {
      expect(res.status).toBe(200);
    }
  });

  it('revokes a token at once, on a kept-alive connection too', async () => {
    const { url, token } = await link(a, 8081);
    const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const headers = { 'X-Daytona-Preview-Token': token };
      expect((await previewFetch(`${url}/echo`, { headers, agent: client })).status).toBe(200);
      const revoke = await cove.api(`/sandbox/${a}/ports/8081/signed-preview-url/${token}/expire`, { method: 'POST' });
      expect(revoke.status).toBeLessThan(300);
      const after = await previewFetch(`${url}/echo`, { headers, agent: client });
      expect(after.reusedSocket).toBe(true);
      expect(after.status).toBe(401);
    } finally {
      client.destroy();
    }
  });

  it('signed URLs open one port with nothing else, and stop at once when expired', async () => {
    const res = await cove.api(`/sandbox/${a}/ports/8081/signed-preview-url?expiresInSeconds=600`);
    expect(res.status).toBe(200);
    const signed = await res.json();
    expect(signed).toMatchObject({ sandboxId: a, port: 8081, url: expect.stringContaining(`8081-${signed.token}.localhost`) });
    const ok = await previewFetch(`${signed.url}/echo`);
    expect(ok.status).toBe(200);
    expect(ok.json().headers.host).toBe('localhost:8081');
    // The token names port 8081: the same token on another port opens nothing.
    expect((await previewFetch(`${signed.url.replace('8081-', '8080-')}/echo`)).status).toBe(401);
    const ws = await previewSocket(`${signed.url}/ws`);
    expect((await roundTrip(ws, 'signed')).toString()).toBe('signed');
    ws.close();
    const expire = await cove.api(`/sandbox/${a}/ports/8081/signed-preview-url/${signed.token}/expire`, { method: 'POST' });
    expect(expire.status).toBeLessThan(300);
    expect((await previewFetch(`${signed.url}/echo`)).status).toBe(401);
    const page = await previewFetch(`${signed.url}/`, { headers: BROWSER });
    expect(page.status).toBe(401);
    expect(page.text()).toContain('expired');
    // Expiry by time.
    const short = await (await cove.api(`/sandbox/${a}/ports/8081/signed-preview-url?expiresInSeconds=1`)).json();
    await new Promise((r) => setTimeout(r, Date.parse(short.expiresAt) - Date.now() + 50));
    expect((await previewFetch(`${short.url}/echo`)).status).toBe(401);
  });

  it('forwards CORS preflights to the app without credentials', async () => {
    const { url } = await link(a, 8081);
    const res = await previewFetch(`${url}/echo`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-daytona-preview-token' },
    });
    expect(res.status).toBe(204);
    expect(res.headers['x-app-preflight']).toBe('yes');
    expect(res.headers['access-control-allow-origin']).toBe('http://app.example');
    // A plain OPTIONS is no preflight: it needs a token like any request.
    expect((await previewFetch(`${url}/echo`, { method: 'OPTIONS' })).status).toBe(401);
  });

  it('needs nothing for a public sandbox, and says so when a sandbox is stopped', async () => {
    const pub = await createSandbox({ public: true });
    try {
      await startEchoApps(pub, [[8080, '127.0.0.1']]);
      const { url, token } = await link(pub, 8080);
      const res = await previewFetch(`${url}/echo?DAYTONA_SANDBOX_AUTH_KEY=${token}`, { headers: { 'X-Daytona-Preview-Token': token } });
      expect(res.status).toBe(200);
      // Tokens sent anyway are still ours: the app never sees them.
      expect(res.json().url).toBe('/echo');
      expect(res.json().headers['x-daytona-preview-token']).toBeUndefined();
      expect((await previewFetch(`${url}/`, { headers: BROWSER })).status).toBe(200);
      const ws = await previewSocket(`${url}/ws`);
      expect((await roundTrip(ws, 'public')).toString()).toBe('public');
      ws.close();

      expect((await cove.api(`/sandbox/${pub}/stop`, { method: 'POST' })).status).toBeLessThan(300);
      const stopped = await previewFetch(`${url}/echo`);
      expect(stopped.status).toBe(409);
      expect(stopped.json()).toMatchObject({ code: 'SANDBOX_NOT_STARTED', message: expect.stringMatching(/stopped.*start it/) });
      const page = await previewFetch(`${url}/`, { headers: BROWSER });
      expect(page.status).toBe(409);
      expect(page.text()).toMatch(/stopped/);
    } finally {
      await cove.api(`/sandbox/${pub}`, { method: 'DELETE' });
    }
  });

  it('answers 409 for a stopped private sandbox with a valid token, 401 without one', async () => {
    const { url, token } = await link(b, 8080);
    expect((await cove.api(`/sandbox/${b}/stop`, { method: 'POST' })).status).toBeLessThan(300);
    const res = await previewFetch(`${url}/echo`, { headers: { 'X-Daytona-Preview-Token': token } });
    expect(res.status).toBe(409);
    expect(res.json().message).toMatch(/stopped/);
    expect((await previewFetch(`${url}/echo`)).status).toBe(401);
  });
});
