/**
 * Preview URLs in a real browser: Debian's headless Chromium through playwright-core opens a preview link with its
 * token in the query, keeps working from the cookie, and runs a Vite dev server (bound to 127.0.0.1 in the sandbox,
 * allowedHosts left at its default) with its HMR WebSocket through the proxy.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromiumProfile } from '../helpers/browser';
import { startCove, type TestCove } from '../helpers/cove';
import { PREVIEW_FIXTURES, toolbox } from '../helpers/preview';

const VITE_VERSION = '7';

let cove: TestCove;
let sandbox: string;
let context: BrowserContext;
let userDataDir: string;


/**
 * Vite installed on the host (sandboxes cannot reach the npm registry), once per machine in a temp folder: the
 * project with its node_modules is uploaded into the sandbox.
 */
function installVite(): string {
  const dir = path.join(os.tmpdir(), `cove-preview-vite${VITE_VERSION}`);
  if (existsSync(path.join(dir, 'node_modules/vite/package.json'))) return dir;
  const tmp = mkdtempSync(`${dir}.tmp-`);
  writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ private: true }));
  execFileSync('npm', ['install', `vite@${VITE_VERSION}`, '--no-audit', '--no-fund', '--loglevel=error'], { cwd: tmp, stdio: 'pipe' });
  try {
    execFileSync('mv', ['-T', tmp, dir]);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another run installed it first
  }
  return dir;
}

async function link(port: number): Promise<{ url: string; token: string }> {
  const res = await cove.api(`/sandbox/${sandbox}/ports/${port}/preview-url`);
  if (!res.ok) throw new Error(`preview-url → ${res.status}: ${await res.text()}`);
  return res.json();
}

beforeAll(async () => {
  cove = await startCove({ pool: 1 });
  const res = await cove.api('/sandbox', { method: 'POST', body: '{}' });
  sandbox = (await res.json()).id;
  const box = toolbox(cove, sandbox);
  await box.uploadDir(PREVIEW_FIXTURES, '/home/cove/preview');
  await box.serve('node /home/cove/preview/echo-server.mjs 8081 127.0.0.1', 8081);
  await box.uploadDir(installVite(), '/home/cove/vite-app');
  await box.uploadDir(path.join(PREVIEW_FIXTURES, 'vite-app'), '/home/cove/vite-app');
  await box.serve('cd /home/cove/vite-app && npx vite --host 127.0.0.1 --port 5173 --strictPort', 5173);
  userDataDir = mkdtempSync(path.join(os.tmpdir(), 'cove-chromium-'));
  mkdirSync(userDataDir, { recursive: true });
  context = await launchChromiumProfile(userDataDir);
}, 20 * 60_000);

afterAll(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  if (sandbox) await cove.api(`/sandbox/${sandbox}`, { method: 'DELETE' });
  await cove?.destroy();
});

describe('previews in Chromium', () => {
  it('opens a link with the token in the query, then lives on the cookie', async () => {
    const { url, token } = await link(8081);
    const page = await context.newPage();
    try {
      const refused = await page.goto(`${url}/`);
      expect(refused?.status()).toBe(401);
      expect(await page.locator('h1').textContent()).toMatch(/private/);

      const opened = await page.goto(`${url}/?DAYTONA_SANDBOX_AUTH_KEY=${token}`);
      expect(opened?.status()).toBe(200);
      // Redirected to the same URL without the token.
      expect(page.url()).toBe(`${url}/`);
      expect(await page.locator('#app').textContent()).toBe('hello from port 8081');
      const cookies = await context.cookies(url);
      expect(cookies).toEqual([expect.objectContaining({ name: 'cove_preview', domain: new URL(url).hostname, httpOnly: true, sameSite: 'Lax' })]);

      const reloaded = await page.reload();
      expect(reloaded?.status()).toBe(200);
      expect(await page.locator('#app').textContent()).toBe('hello from port 8081');
      // The page's own requests carry the cookie, and the app never sees it.
      const seen = await page.evaluate(async () => (await fetch('/echo')).json());
      expect(seen.headers.cookie).toBeUndefined();
      expect(seen.headers.host).toBe('localhost:8081');
    } finally {
      await page.close();
    }
  });

  it('runs a Vite dev server with hot updates through the preview host', async () => {
    const { url, token } = await link(5173);
    const page = await context.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    try {
      const opened = await page.goto(`${url}/?DAYTONA_SANDBOX_AUTH_KEY=${token}`);
      expect(opened?.status()).toBe(200);
      await expect.poll(() => page.locator('#message').textContent(), { timeout: 30_000 }).toBe('hello from vite');
      // The Vite client's HMR WebSocket connected through the proxy (with the cookie, Host rewritten).
      await expect.poll(() => logs.some((l) => l.includes('[vite] connected')), { timeout: 30_000 }).toBe(true);
      expect(await page.evaluate(() => (window as unknown as { __hot: boolean }).__hot)).toBe(true);
      const loadId = await page.evaluate(() => (window as unknown as { __loadId: string }).__loadId);

      // An edit through the toolbox reaches the page as a hot update, without a reload.
      await toolbox(cove, sandbox).upload('/home/cove/vite-app/message.js', "export const message = 'edited through the toolbox';\n");
      await expect.poll(() => page.locator('#message').textContent(), { timeout: 30_000 }).toBe('edited through the toolbox');
      expect(await page.evaluate(() => (window as unknown as { __loadId: string }).__loadId)).toBe(loadId);
      expect(logs.some((l) => l.includes('[vite] hot updated'))).toBe(true);
    } finally {
      await page.close();
      const original = readFileSync(path.join(PREVIEW_FIXTURES, 'vite-app/message.js'));
      await toolbox(cove, sandbox).upload('/home/cove/vite-app/message.js', original);
    }
  });
});
