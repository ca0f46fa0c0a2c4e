/**
 * The web dashboard at /dashboard/ of a real `cove serve`, driven in Debian's headless Chromium through playwright-core:
 * sign in with the admin key, create a sandbox with the form, run commands in the browser terminal (xterm.js over the
 * PTY WebSocket, admitted by a one-use port-1 preview token), come back to the same shell after a reload, upload and
 * download a file, open a preview link, make an SSH command, stop, start and delete, sign out. Screenshots of each
 * step go to test-results/dashboard/. Also the static file handler itself: redirect, types, ETags, traversal, 404s.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { launchChromium } from '../helpers/browser';
import { startCove, type TestCove } from '../helpers/cove';
import { toolbox } from '../helpers/preview';

const SHOTS = path.join(import.meta.dirname, '../../test-results/dashboard');

let cove: TestCove;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** The sandbox the form creates, found by its name. */
const NAME = `dash-${randomBytes(3).toString('hex')}`;
let sandboxId = '';
/** Addresses of the WebSockets the page opened, and statuses of its calls that revoke their tokens. */
const sockets: string[] = [];
const revocations: number[] = [];
/** Uncaught exceptions of the page, and what the browser refused under its Content-Security-Policy. */
const pageErrors: string[] = [];


let shot = 0;
const screenshot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${String(++shot).padStart(2, '0')}-${name}.png`), fullPage: true });

/** The visible text of the terminal (xterm.js renders its rows as DOM), with its non-breaking spaces as spaces. */
const screenText = async () => (await page.locator('#terminal .xterm-rows').innerText()).replace(/\u00a0/g, ' ');

/** Types a line into the terminal and presses Enter. */
async function typeLine(text: string): Promise<void> {
  await page.locator('#terminal .xterm-helper-textarea').focus();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/** GET with the target exactly as given (fetch would resolve `..` before sending). */
function rawGet(target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const { hostname, port } = new URL(cove.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: target, method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  // This run's screenshots only.
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  cove = await startCove({ pool: 1 });
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cove.url });
  page = await context.newPage();
  // Confirmations (delete) are accepted, as a user would.
  page.on('dialog', (dialog) => void dialog.accept());
  page.on('websocket', (ws) => sockets.push(ws.url()));
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) pageErrors.push(message.text());
  });
  page.on('response', (res) => {
    if (/\/ports\/1\/signed-preview-url\/[^/]+\/expire$/.test(res.url())) revocations.push(res.status());
  });
}, 20 * 60_000);

afterAll(async () => {
  await browser?.close();
  if (sandboxId) await cove?.api(`/sandbox/${sandboxId}`, { method: 'DELETE' }).catch(() => {});
  await cove?.destroy();
});

describe('the dashboard in Chromium', () => {
  it('signs in with the API key, refusing a wrong one', async () => {
    const res = await page.goto(`${cove.url}/dashboard`);
    expect(res?.status()).toBe(200);
    expect(page.url()).toBe(`${cove.url}/dashboard/`);
    await page.getByLabel('API key').fill('not-a-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('#sign-in-error').textContent()).toBe('Cove refused this API key.');
    await screenshot('sign-in-refused');

    await page.getByLabel('API key').fill(cove.apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#app').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => sessionStorage.getItem('cove.apiKey'))).toBe(cove.apiKey);
    // Never in the address.
    expect(page.url()).not.toContain(cove.apiKey);
    await screenshot('signed-in');
  });

  it('creates a sandbox with the form and shows it started, with its labels and resources', async () => {
    await page.locator('#create summary').click();
    await page.getByLabel('Name', { exact: true }).fill(NAME);
    await page.getByLabel('CPU (vCPU)').fill('1');
    await page.getByLabel('Memory (GiB)').fill('1');
    await page.getByLabel('Auto-stop after idle minutes').fill('30');
    await page.getByLabel('Environment').fill('GREETING=hello-from-env');
    await page.getByLabel('Labels').fill('purpose=dashboard-test');
    await screenshot('create-form');
    await page.getByRole('button', { name: 'Create sandbox' }).click();

    const row = page.locator(`#sandboxes tr[data-name="${NAME}"]`);
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 60_000 }).toBe('started');
    sandboxId = (await row.getAttribute('data-id'))!;
    const text = await row.innerText();
    expect(text).toContain('purpose=dashboard-test');
    expect(text).toContain('1 vCPU · 1 GiB');
    expect(text).toContain('cove-sandbox');
    const created = (await (await cove.api(`/sandbox/${sandboxId}`)).json()) as unknown;
    expect(created).toMatchObject({ env: { GREETING: 'hello-from-env' }, labels: { purpose: 'dashboard-test' }, autoStopInterval: 30, cpu: 1, memory: 1 });
    await screenshot('sandbox-started');
  });

  it('runs a shell in the terminal, follows the window size, and finds the same shell after a reload', async () => {
    // A new sandbox opens on its terminal.
    await page.locator('#tab-terminal[aria-selected="true"]').waitFor();
    await expect.poll(() => page.locator('#terminal-status').textContent(), { timeout: 30_000 }).toMatch(/^Connected to session /);
    const sessionId = await page.evaluate((id) => sessionStorage.getItem(`cove.pty.${id}`), sandboxId);
    expect(sessionId).toBeTruthy();

    // The browser cannot send the API key on a WebSocket: a port-1 preview token admits the upgrade, then is revoked.
    expect(sockets).toHaveLength(1);
    expect(sockets[0]).not.toContain(cove.apiKey);
    const token = new URL(sockets[0]).searchParams.get('DAYTONA_SANDBOX_AUTH_KEY')!;
    expect(token).toMatch(/^[a-z0-9]{32}$/);
    await expect.poll(() => revocations).toEqual([204]);
    const status = await new Promise<number>((resolve, reject) => {
      const reuse = new WebSocket(sockets[0].replace(/^ws:\/\/[^/]+/, cove.url.replace(/^http/, 'ws')));
      reuse.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      reuse.once('open', () => reject(new Error('a used token opened the terminal again')));
      reuse.once('error', reject);
    });
    expect(status).toBe(401);

    await typeLine('echo cove-$((6*7)) $GREETING');
    await expect.poll(screenText, { timeout: 15_000 }).toContain('cove-42 hello-from-env');
    await typeLine('M=mark$((2+3))');

    // The PTY has the terminal's size, and follows it when the window narrows.
    const box = toolbox(cove, sandboxId);
    const before = (await (await box.call(`/process/pty/${sessionId}`)).json()) as { cols: number; rows: number };
    await page.setViewportSize({ width: 900, height: 900 });
    await expect.poll(async () => ((await (await box.call(`/process/pty/${sessionId}`)).json()) as { cols: number }).cols, { timeout: 10_000 }).toBeLessThan(before.cols);
    await screenshot('terminal');

    await page.reload();
    await expect.poll(() => page.locator('#terminal-status').textContent(), { timeout: 30_000 }).toBe(`Connected to session ${sessionId}`);
    // The agent replays the screen: the earlier output is there, and the shell keeps its variable.
    await expect.poll(screenText, { timeout: 15_000 }).toContain('cove-42 hello-from-env');
    await typeLine('echo "$M-ok"');
    await expect.poll(screenText, { timeout: 15_000 }).toContain('mark5-ok');

    // Paste (the button reads the clipboard, as Ctrl+Shift+V pastes through the browser).
    await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((2*4))'));
    await page.getByRole('button', { name: 'Paste' }).click();
    await page.locator('#terminal .xterm-helper-textarea').focus();
    await page.keyboard.press('Enter');
    await expect.poll(screenText, { timeout: 15_000 }).toContain('pasted-8');
    await screenshot('terminal-after-reload');
  });

  it('uploads a file, downloads it byte for byte, and deletes it', async () => {
    await page.getByRole('tab', { name: 'Files' }).click();
    await expect.poll(() => page.getByLabel('Folder').inputValue(), { timeout: 15_000 }).toBe('/home/cove');
    const bytes = randomBytes(200_000);
    await page.locator('#files-upload').setInputFiles({ name: 'payload.bin', mimeType: 'application/octet-stream', buffer: bytes });
    const row = page.locator('#files tr[data-name="payload.bin"]');
    await row.waitFor({ timeout: 15_000 });
    await screenshot('files');

    const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'Download payload.bin' }).click()]);
    expect(download.suggestedFilename()).toBe('payload.bin');
    expect(readFileSync(await download.path()).equals(bytes)).toBe(true);

    await row.getByRole('button', { name: 'Delete payload.bin' }).click();
    await row.waitFor({ state: 'detached', timeout: 15_000 });
    expect((await toolbox(cove, sandboxId).call('/files/info?path=/home/cove/payload.bin')).status).toBe(404);
  });

  it('opens a preview link of a server in the sandbox', async () => {
    const box = toolbox(cove, sandboxId);
    await box.upload('/home/cove/site/index.html', '<!doctype html><title>site</title><h1 id="hello">served from the sandbox</h1>');
    await box.serve('cd /home/cove/site && python3 -m http.server 8000', 8000);

    await page.getByRole('tab', { name: 'Preview' }).click();
    await page.getByLabel('Port').fill('8000');
    await page.getByRole('button', { name: 'Get preview link' }).click();
    await page.locator('#preview-result').waitFor();
    expect(await page.getByLabel('URL').inputValue()).toBe(`http://8000-${sandboxId}.localhost:${new URL(cove.url).port}`);
    await screenshot('preview-link');

    const [preview] = await Promise.all([context.waitForEvent('page'), page.getByRole('link', { name: 'Open the preview in a new tab' }).click()]);
    await preview.waitForLoadState();
    await expect.poll(() => preview.locator('#hello').textContent(), { timeout: 15_000 }).toBe('served from the sandbox');
    // The token became the preview host's cookie and left the address.
    expect(preview.url()).toBe(`http://8000-${sandboxId}.localhost:${new URL(cove.url).port}/`);
    await preview.screenshot({ path: path.join(SHOTS, `${String(++shot).padStart(2, '0')}-preview-page.png`) });
    await preview.close();
  });

  it('makes an SSH command and copies it', async () => {
    await page.getByRole('tab', { name: 'SSH' }).click();
    await page.getByRole('button', { name: 'Create SSH access' }).click();
    await page.locator('#ssh-result').waitFor();
    const command = await page.getByLabel('Command').inputValue();
    expect(command).toMatch(/^ssh -p \d+ \S+@localhost$/);
    await page.locator('#ssh-result').getByRole('button', { name: 'Copy' }).click();
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(command);
    await screenshot('ssh');
  });

  it('stops, starts and deletes the sandbox from its row, then signs out', async () => {
    const row = page.locator(`#sandboxes tr[data-name="${NAME}"]`);
    await row.getByRole('button', { name: `Stop sandbox ${NAME}` }).click();
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 60_000 }).toBe('stopped');
    await screenshot('stopped');
    await row.getByRole('button', { name: `Start sandbox ${NAME}` }).click();
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 60_000 }).toBe('started');
    await row.getByRole('button', { name: `Delete sandbox ${NAME}` }).click();
    await row.waitFor({ state: 'detached', timeout: 60_000 });
    expect(((await (await cove.api(`/sandbox/${sandboxId}`)).json()) as { state: string }).state).toBe('destroyed');
    sandboxId = '';
    await screenshot('deleted');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith('cove.')))).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});

describe('the dashboard files', () => {
  it('redirects the bare path, serves the page with its types, security headers and ETags', async () => {
    const bare = await rawGet('/dashboard?x=1');
    expect(bare.status).toBe(301);
    expect(bare.headers.location).toBe('/dashboard/?x=1');

    const html = await rawGet('/dashboard/');
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.headers['content-security-policy']).toContain("default-src 'self'");
    expect(html.headers['x-content-type-options']).toBe('nosniff');
    expect(html.body).toContain('<script type="module" src="main.js">');

    const script = await rawGet('/dashboard/main.js');
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.headers['cache-control']).toBe('no-cache');
    const again = await rawGet('/dashboard/main.js', { 'if-none-match': script.headers.etag! });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
    const head = await rawGet('/dashboard/style.css', {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(Number(head.headers['content-length'])).toBeGreaterThan(1000);
  });

  it('answers 404 envelopes for unknown files and anything outside the folder, 405 for writes', async () => {
    for (const target of ['/dashboard/nope.js', '/dashboard/../package.json', '/dashboard/%2e%2e/package.json', '/dashboard/..%2f..%2fpackage.json', '/dashboard/.hidden', '/dashboard/%zz']) {
      const res = await rawGet(target);
      expect(res.status, target).toBe(404);
      expect(JSON.parse(res.body), target).toMatchObject({ code: 'NOT_FOUND', source: 'DAYTONA_PROXY' });
    }
    const post = await rawGet('/dashboard/', {}, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });
});
