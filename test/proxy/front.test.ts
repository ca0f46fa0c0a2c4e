/**
 * The front door under hostile input, against a real `cove serve` and real apps inside real sandboxes: requests that
 * used to stop the server, credentials that must never reach a sandbox, hostile responses from a sandbox app, memory
 * held for one connection, and the preview cookie.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COVE_BIN } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { PREVIEW_FIXTURES, previewFetch, toolbox } from '../helpers/preview';

let cove: TestCove;
/** Private: the echo app on 8080, the hostile raw app on 9090. */
let priv: string;
/** Public: the echo app on 8080, the hostile raw app on 9090. */
let pub: string;
let token8080: string;
let token9090: string;
let proxyPort: number;

async function createSandbox(body: object = {}): Promise<string> {
  const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`create failed: ${JSON.stringify(json)}`);
  return json.id;
}

async function startApps(id: string): Promise<void> {
  const box = toolbox(cove, id);
  await box.uploadDir(PREVIEW_FIXTURES, '/home/cove/preview');
  await box.serve('node /home/cove/preview/echo-server.mjs 8080 0.0.0.0', 8080);
  await box.serve('node /home/cove/preview/raw-server.mjs 9090', 9090);
}

async function previewToken(id: string, port: number): Promise<string> {
  const res = await cove.api(`/sandbox/${id}/ports/${port}/preview-url`);
  return (await res.json()).token;
}

const hostFor = (id: string, port: number) => `${port}-${id}.localhost:${proxyPort}`;

/** Writes raw bytes to the proxy and reads until the proxy closes the connection (or `ms` pass). */
function rawExchange(bytes: string | Buffer, ms = 5_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, ms);
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.write(bytes);
  });
}

const request = (host: string, target: string, headers: Record<string, string> = {}, method = 'GET') =>
  `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

/** The server still answers its API, and has logged no error that escaped a boundary. */
async function expectServing(): Promise<void> {
  const res = await cove.api('/sandbox');
  expect(res.status).toBe(200);
  expect(cove.process.exitCode).toBeNull();
  expect(cove.output()).not.toMatch(/\((uncaught|unhandled rejection)\)/);
}

function rssMiB(pid: number): number {
  const status = execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' });
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

beforeAll(async () => {
  cove = await startCove({ pool: 2 });
  proxyPort = Number(new URL(cove.url).port);
  [priv, pub] = await Promise.all([createSandbox(), createSandbox({ public: true })]);
  await Promise.all([startApps(priv), startApps(pub)]);
  [token8080, token9090] = await Promise.all([previewToken(priv, 8080), previewToken(priv, 9090)]);
}, 20 * 60_000);

afterAll(async () => {
  if (!cove) return;
  for (const id of [priv, pub]) if (id) await cove.api(`/sandbox/${id}`, { method: 'DELETE' });
  await cove.destroy();
});

describe('requests that used to stop the server', () => {
  it('answers a toolbox path with malformed percent-encoding with 400, with or without a key', async () => {
    for (const headers of [{}, { Authorization: `Bearer ${cove.apiKey}` }] as Record<string, string>[]) {
      const { text } = await rawExchange(request(`127.0.0.1:${proxyPort}`, '/toolbox/%ZZ/x', { ...headers, Connection: 'close' }));
      expect(text).toMatch(/^HTTP\/1\.1 400 /);
      expect(text).toContain('"code":"INVALID_REQUEST"');
    }
    await expectServing();
  });

  it('answers preview targets that are not paths with 400, on private and public sandboxes, relayed or not', async () => {
    for (const id of [priv, pub]) {
      for (const target of ['http://[/', 'http://a b/', '*']) {
        for (const headers of [{}, { "X-Daytona-Preview-Token": token8080 }] as Record<string, string>[]) {
          const { text } = await rawExchange(request(hostFor(id, 8080), target, { ...headers, Connection: 'close' }));
          expect(text, `${target} on ${id === pub ? 'public' : 'private'}`).toMatch(/^HTTP\/1\.1 4\d\d /);
        }
      }
      // `//a:99999/` is a path (origin-form): it reaches the app as sent.
      const { text } = await rawExchange(request(hostFor(id, 8080), '//a:99999/echo', { 'X-Daytona-Preview-Token': token8080, Connection: 'close' }));
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
    }
    // Absolute-form targets are taken as the origin-form path they carry.
    const res = await rawExchange(request(hostFor(pub, 8080), `http://${hostFor(pub, 8080)}/echo?x=1`, { Connection: 'close' }));
    expect(res.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(res.text).toContain('"url":"/echo?x=1"');
    await expectServing();
  });
});

describe('limits', () => {
  it('answers a request whose body it will not read with Connection: close, and closes', async () => {
    for (const auth of [{}, { Authorization: `Bearer ${cove.apiKey}` }] as Record<string, string>[]) {
      const head = request(`127.0.0.1:${proxyPort}`, '/api/sandbox', { ...auth, 'Content-Type': 'application/json', 'Content-Length': String(1 << 30) }, 'POST');
      const { text, closed } = await rawExchange(head + '{"a":'.padEnd(64 * 1024, ' '));
      expect(text).toMatch(/^HTTP\/1\.1 4\d\d /);
      expect(text.toLowerCase()).toContain('connection: close');
      expect(closed).toBe(true);
    }
  });

  it('keeps the connection of a small JSON call refused before its body arrived, and answers the next call on it', async () => {
    // What the SDK does: a toolbox call to a sandbox that cannot take it (here: none of that id) answered at once, the
    // body following the head a moment later, then its next call on the same kept-alive connection.
    const socket = net.connect(proxyPort, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d.toString('latin1')));
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => {});
    const body = '{"command":"echo hi"}';
    const auth = { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' };
    socket.write(request(`127.0.0.1:${proxyPort}`, '/toolbox/00000000-0000-0000-0000-000000000000/process/execute', { ...auth, 'Content-Length': String(body.length) }, 'POST'));
    await new Promise((r) => setTimeout(r, 200));
    expect(text).toMatch(/^HTTP\/1\.1 404 /);
    expect(text.toLowerCase()).not.toContain('connection: close');
    socket.write(body + request(`127.0.0.1:${proxyPort}`, '/api/sandbox', { Authorization: `Bearer ${cove.apiKey}` }));
    const deadline = Date.now() + 5000;
    while (!/HTTP\/1\.1 200 /.test(text) && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    socket.destroy();
    expect(text.split('HTTP/1.1 ').slice(1).map((r) => r.slice(0, 3))).toEqual(['404', '200']);
  });

  it('answers a chunked body over the JSON limit with 413 (not a reset), closes, and logs nothing unexpected', async () => {
    const head = request(`127.0.0.1:${proxyPort}`, '/api/sandbox', { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, 'POST');
    const chunk = `10000\r\n${'{'.repeat(0x10000)}\r\n`;
    for (let i = 0; i < 5; i++) {
      const { text, closed } = await rawExchange(head + chunk.repeat(6));
      expect(text).toMatch(/^HTTP\/1\.1 413 /);
      expect(text).toContain('PAYLOAD_TOO_LARGE');
      expect(closed).toBe(true);
    }
    await expectServing();
  });

  it('answers a request with Connection: close once, even when junk follows it on the connection', async () => {
    const { text, closed } = await rawExchange(request(`127.0.0.1:${proxyPort}`, '/', { Connection: 'close' }) + 'zz\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 404 /);
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(closed).toBe(true);
    await expectServing();
  });

  it('answers heads over 16 KiB with 431 and closes, on the API and on previews', async () => {
    for (const host of [`127.0.0.1:${proxyPort}`, hostFor(pub, 8080)]) {
      const { text, closed } = await rawExchange(request(host, '/echo', { 'X-Big': 'a'.repeat(20 * 1024) }));
      expect(text, host).toMatch(/^HTTP\/1\.1 431 /);
      expect(closed).toBe(true);
    }
    await expectServing();
  });
});

describe('bad input to the control API', () => {
  it('refuses an image reference Docker cannot read with 400 naming the field, before any Docker call', async () => {
    for (const body of [{ image: 'no such image:ever' }, { snapshot: 'UPPER/case' }, { buildInfo: { dockerfileContent: 'FROM a b' } }, { buildInfo: { dockerfileContent: 'FROM bad image' } }]) {
      const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await res.json()).code).toBe('INVALID_REQUEST');
    }
    const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify({ image: 'no such image:ever' }) });
    expect((await res.json()).message).toMatch(/image/);
  });
});

describe('no Cove credential reaches a sandbox', () => {
  const echo = async (id: string, target: string, headers: Record<string, string>) => {
    const res = await previewFetch(`http://${hostFor(id, 8080)}${target}`, { headers });
    expect(res.status, res.text()).toBe(200);
    return res.json() as { url: string; headers: Record<string, string> };
  };

  it('strips an API key from Authorization, whatever admitted the request', async () => {
    const basic = `Basic ${Buffer.from(`user:${cove.apiKey}`).toString('base64')}`;
    for (const authorization of [`Bearer ${cove.apiKey}`, `token ${cove.apiKey}`, basic, `Bearer ${token8080}`]) {
      // Public: admitted without credentials.
      expect((await echo(pub, '/echo', { Authorization: authorization })).headers.authorization).toBeUndefined();
      // Private, admitted by a token header, a cookie.
      expect((await echo(priv, '/echo', { Authorization: authorization, 'X-Daytona-Preview-Token': token8080 })).headers.authorization).toBeUndefined();
      expect((await echo(priv, '/echo', { Authorization: authorization, Cookie: `cove_preview=${token8080}` })).headers.authorization).toBeUndefined();
    }
    // The app's own credentials pass.
    expect((await echo(pub, '/echo', { Authorization: 'Bearer app-own-credential' })).headers.authorization).toBe('Bearer app-own-credential');
    // A CORS preflight reaches the app without them.
    const pre = await previewFetch(`http://${hostFor(priv, 8080)}/echo`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://example.test', 'Access-Control-Request-Method': 'PUT', Authorization: `Bearer ${cove.apiKey}` },
    });
    expect(pre.headers['x-app-preflight']).toBe('yes');
    expect(pre.headers['x-app-authorization']).toBe('none');
  });

  it('strips preview tokens in query parameters in any encoding, and our cookie in both forms', async () => {
    for (const name of ['cove_preview_token', 'cove%5Fpreview%5Ftoken', 'DAYTONA_SANDBOX_AUTH_KEY', 'daytona%5Fsandbox%5Fauth%5Fkey', 'COVE_PREVIEW_TOKEN']) {
      const seen = await echo(pub, `/echo?a=1&${name}=${token8080}&b=2`, {});
      expect(seen.url, name).toBe('/echo?a=1&b=2');
    }
    // A known secret as the value of any parameter does not pass either.
    expect((await echo(pub, `/echo?key=${encodeURIComponent(cove.apiKey)}&a=1`, {})).url).toBe('/echo?a=1');
    const seen = await echo(pub, '/echo', { Cookie: `a=1; cove_preview=${token8080}; __Host-cove_preview=${token8080}; b=2` });
    expect(seen.headers.cookie).toBe('a=1; b=2');
  });

  it('accepts an encoded token parameter and redirects a browser to the URL without it (no loop)', async () => {
    const url = `http://${hostFor(priv, 8080)}/echo?x=1&cove%5Fpreview%5Ftoken=${token8080}`;
    const first = await previewFetch(url, { headers: { Accept: 'text/html' } });
    expect(first.status).toBe(302);
    expect(first.headers.location).toBe('/echo?x=1');
    const cookie = String(first.headers['set-cookie']).split(';')[0];
    const second = await previewFetch(`http://${hostFor(priv, 8080)}/echo?x=1`, { headers: { Accept: 'text/html', Cookie: cookie } });
    expect(second.status).toBe(200);
    expect(second.json().url).toBe('/echo?x=1');
    // An API client gets the answer at once, without the parameter.
    const api = await previewFetch(url);
    expect(api.status).toBe(200);
    expect(api.json().url).toBe('/echo?x=1');
  });
});

describe('hostile responses from a sandbox app', () => {
  const cases = ['/bare-lf', '/bare-cr', '/fold', '/bad-name', '/two-lengths', '/te-gzip', '/te-and-cl', '/bad-status', '/switch'];

  it('answers 502 and closes the client connection, relayed (token header) and through the HTTP server (query token)', async () => {
    for (const path of cases) {
      for (const [via, target, headers] of [
        ['relay', path, { 'X-Daytona-Preview-Token': token9090 }],
        ['http server', `${path}?cove_preview_token=${token9090}`, {}],
      ] as const) {
        // A second request on the same connection must never be answered by what the app sent.
        const req = request(hostFor(priv, 9090), target, headers);
        const { text, closed } = await rawExchange(req + request(hostFor(priv, 9090), '/ok', { 'X-Daytona-Preview-Token': token9090, Connection: 'close' }));
        expect(text, `${path} via ${via}`).toMatch(/^HTTP\/1\.1 502 /);
        expect(text, `${path} via ${via}`).not.toContain('hello');
        if (via === 'relay') {
          // The relay's connection to the app served this client alone: it is dropped, and so is the client's.
          expect(text.match(/HTTP\/1\.1 /g)?.length, `${path} via ${via}: one answer`).toBe(1);
          expect(closed, `${path} via ${via}`).toBe(true);
        } else {
          // The HTTP server frames its own answers: the next request gets its own, from a fresh connection to the app.
          expect(text.split('HTTP/1.1 ').slice(2), `${path} via ${via}`).toEqual([expect.stringMatching(/^200 OK\r\n[^]*\r\n\r\nok$/)]);
        }
      }
    }
    await expectServing();
  });

  it('closes the client connection after a close-delimited response', async () => {
    const req = request(hostFor(priv, 9090), '/close', { 'X-Daytona-Preview-Token': token9090 });
    const { text, closed } = await rawExchange(req + request(hostFor(priv, 9090), '/ok', { 'X-Daytona-Preview-Token': token9090 }));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*until close$/);
    expect(closed).toBe(true);
  });

  it('drops Set-Cookie whose Domain would reach other preview hosts', async () => {
    const host = hostFor(priv, 9090).replace(/:\d+$/, '');
    for (const [via, target, headers] of [
      ['relay', `/cookies?host=${host}`, { 'X-Daytona-Preview-Token': token9090 }],
      ['http server', `/cookies?host=${host}&cove_preview_token=${token9090}`, {}],
    ] as const) {
      const res = await previewFetch(`http://${hostFor(priv, 9090)}${target}`, { headers });
      const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []).map((c) => c.split('=')[0]);
      expect(cookies.filter((c) => c !== 'cove_preview').sort(), via).toEqual(['exact', 'mine']);
    }
  });
});

describe('memory per connection', () => {
  it('does not buffer what a client sends while the app has not answered its upgrade', async () => {
    const pid = cove.process.pid!;
    const before = rssMiB(pid);
    const socket = net.connect(proxyPort, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    socket.write(request(hostFor(pub, 9090), '/never', { Connection: 'Upgrade', Upgrade: 'websocket' }));
    const chunk = Buffer.alloc(1 << 20, 0x61);
    let written = 0;
    // Writes until the proxy stops reading (backpressure holds for a second) or 64 MiB have gone.
    let stalled = false;
    while (written < 64 << 20 && !stalled) {
      written += chunk.length;
      if (socket.write(chunk)) continue;
      stalled = !(await Promise.race([new Promise((r) => socket.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 1_000))]));
    }
    expect(stalled, `the proxy read all ${written >> 20} MiB`).toBe(true);
    const grown = rssMiB(pid) - before;
    socket.destroy();
    expect(grown, `RSS grew ${grown.toFixed(1)} MiB`).toBeLessThan(32);
    await expectServing();
  });
});

describe('the preview cookie over TLS', () => {
  it('is __Host- prefixed, Secure, host-only, HttpOnly and SameSite=Lax, and only that form is accepted', async () => {
    const tls = await startCove({ pool: 0, args: ['--public-url', 'https://cove.example.test'] });
    try {
      const port = Number(new URL(tls.url).port);
      const created = await (await tls.api('/sandbox', { method: 'POST', body: '{}' })).json();
      const token = (await (await tls.api(`/sandbox/${created.id}/ports/8080/preview-url`)).json()).token;
      const host = `8080-${created.id}.localhost:${port}`;
      const res = await previewFetch(`http://${host}/?cove_preview_token=${token}`, { headers: { Accept: 'text/html' } });
      expect(res.status).toBe(302);
      const cookie = String(res.headers['set-cookie']);
      expect(cookie).toMatch(/^__Host-cove_preview=[a-z0-9]{32}; Path=\/; HttpOnly; SameSite=Lax; Secure$/);
      expect(cookie).not.toMatch(/Domain=/i);
      // The plain name is not accepted over TLS (a sibling host could have set it).
      const plain = await previewFetch(`http://${host}/`, { headers: { Cookie: `cove_preview=${token}` } });
      expect(plain.status).toBe(401);
      // The prefixed one is (nothing listens on 8080 there: admitted, then 502).
      const prefixed = await previewFetch(`http://${host}/`, { headers: { Cookie: cookie.split(';')[0] } });
      expect(prefixed.status).toBe(502);
    } finally {
      await tls.destroy();
    }
  });
});
