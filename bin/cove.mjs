#!/usr/bin/env -S node --max-semi-space-size=2
// The `cove` command of a checkout: installs dependencies when they are missing, rebuilds the bundle when a source
// file is newer than it, then runs it. An installed package ships the bundle and skips both steps.
// --max-semi-space-size=2 (MiB): the server's garbage is short-lived (request buffers, socket reads); a small young
// generation frees it sooner. Under bench/hostile.ts it keeps the server near 150 MB where the default grew to 210 MB,
// and bench/preview.ts is no slower.
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bundle = `${root}dist/cli.mjs`;
const SOURCES = ['agent', 'proxy', 'images', 'lib', 'wire', 'cli', 'dashboard'];

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const full = `${dir}/${entry.name}`;
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

if (!process.env.COVE_NO_BUILD && existsSync(`${root}scripts/build.mjs`)) {
  if (!existsSync(`${root}node_modules/.package-lock.json`)) {
    process.stderr.write('cove: installing dependencies (npm ci)…\n');
    execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: ['ignore', process.stderr, 'inherit'] });
  }
  const built = existsSync(bundle) ? statSync(bundle).mtimeMs : 0;
  const newest = Math.max(...SOURCES.filter((d) => existsSync(root + d)).map((d) => newestSource(root + d)));
  if (newest > built) execFileSync(process.execPath, [`${root}scripts/build.mjs`], { stdio: ['ignore', process.stderr, 'inherit'] });
}
// Under npx, npm runs this command through `sh -c`, and a SIGTERM to npx ends that shell without passing the signal
// on: once the process that started this one is gone, this one takes it as a SIGTERM (`cove serve` then stops).
if (process.env.npm_command === 'exec') {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, 'SIGTERM');
  }, 250);
  watch.unref();
}
await import(bundle);
