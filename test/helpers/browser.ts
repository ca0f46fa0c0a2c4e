import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

/** Debian's Chromium, which the browser tests drive through playwright-core. */
const CHROMIUM = '/usr/bin/chromium';

/** Flags for a headless Chromium in a test: no sandbox (root), no GPU, QUIC or background traffic. */
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Fails (never skips) where Chromium is missing, with the line that installs it. */
function requireChromium(): string {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`These tests drive Debian's Chromium at ${CHROMIUM}, which is missing. Install it with: sudo apt-get install -y chromium`);
  }
  return CHROMIUM;
}

/** A headless Chromium. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: requireChromium(), headless: true, args: ARGS });
}

/** A headless Chromium with its profile in `userDataDir` (kept between pages, as a person's browser is). */
export function launchChromiumProfile(userDataDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, { executablePath: requireChromium(), headless: true, args: ARGS });
}
