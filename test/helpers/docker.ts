import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { BASE_IMAGE, buildBaseImage } from '../../images/src/base';
import { buildAgentBundle } from '../../images/src/bundle';
import { COVE_BIN, ROOT } from './agent';

const run = promisify(execFile);

/** The folder the agent bundle is built into (git-ignored; shared with `cove images build` and other tests). */
const TEST_BUNDLE_DIR = path.join(ROOT, '.cove/bundle');
/** Immutable copies of the bundle, one per content hash, that test containers mount (see snapshotBundle). */
const SNAPSHOT_DIR = path.join(ROOT, '.cove/test-bundles');
;

/**
 * A Docker client for tests, once the engine answers. Fails (never skips: tests that need Docker must not pass
 * silently where it is missing) with what to install and start.
 */
export async function requireDocker(): Promise<Dockerode> {
  const docker = new Dockerode();
  try {
    await docker.ping();
    return docker;
  } catch (err) {
    throw new Error(
      `These tests need a Docker engine, and none answers on /var/run/docker.sock (${(err as Error).message}). ` +
        'Install it with `sudo apt-get install -y docker.io` and start it (`sudo dockerd &`, or `sudo systemctl start docker`); ' +
        'run the tests as root or as a member of the docker group.',
    );
  }
}

let prepared: Promise<{ bundleDir: string; baseImage: string }> | undefined;

/**
 * Makes what sandboxes need, once per process and safely across the parallel test workers: the CLI bundle (rebuilt
 * by bin/cove.mjs when a source is newer), the agent bundle (rebuilt when the agent changed) and the Debian base
 * image (built with debootstrap when missing, about a minute).
 */
export function prepareSandboxAssets(): Promise<{ bundleDir: string; baseImage: string }> {
  prepared ??= withLock(path.join(ROOT, '.cove/prepare.lock'), async () => {
    // `cove agent --help` goes through bin/cove.mjs, which rebuilds dist/ when a source file is newer.
    execFileSync(process.execPath, [COVE_BIN, 'agent', '--help'], { stdio: 'ignore' });
    const built = buildAgentBundle({ root: ROOT, out: TEST_BUNDLE_DIR }) as unknown;
    const bundleDir = snapshotBundle(typeof built === 'string' ? built : (built as { dir: string }).dir);
    await buildBaseImage();
    return { bundleDir, baseImage: BASE_IMAGE };
  });
  return prepared;
}

/** The bundle's identity: its content hash file (or the older stamp file). */
function bundleId(dir: string): string | undefined {
  for (const file of ['.bundle-hash', '.stamp']) {
    try {
      return readFileSync(path.join(dir, file), 'utf8').trim();
    } catch {
      /* try the next */
    }
  }
  return undefined;
}

/**
 * An immutable copy of the bundle for test containers to mount. The shared bundle folder is replaced whenever anyone
 * (another engineer's test, `cove images build`) rebuilds it, and containers that mount it would lose their agent
 * mid-test. Copies older than two hours are pruned.
 */
function snapshotBundle(dir: string): string {
  mkdirSync(SNAPSHOT_DIR, { recursive: true });
  for (let attempt = 0; attempt < 5; attempt++) {
    const id = bundleId(dir);
    if (!id) throw new Error(`${dir} holds no complete agent bundle`);
    const target = path.join(SNAPSHOT_DIR, createHash('sha256').update(id).digest('hex').slice(0, 16));
    if (!existsSync(path.join(target, 'bin/node'))) {
      const tmp = `${target}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      cpSync(dir, tmp, { recursive: true, verbatimSymlinks: true });
      // Rebuilt while we copied: the copy may mix two bundles.
      if (bundleId(dir) !== id) {
        rmSync(tmp, { recursive: true, force: true });
        continue;
      }
      try {
        renameSync(tmp, target);
      } catch {
        rmSync(tmp, { recursive: true, force: true }); // another process made the same copy first
      }
    }
    for (const old of readdirSync(SNAPSHOT_DIR)) {
      const full = path.join(SNAPSHOT_DIR, old);
      if (full !== target && Date.now() - statSync(full).mtimeMs > 2 * 3600_000) rmSync(full, { recursive: true, force: true });
    }
    return target;
  }
  throw new Error(`the agent bundle in ${dir} kept changing while it was copied`);
}

/** Runs `fn` holding a directory lock (mkdir is atomic); a lock older than 15 minutes is taken as abandoned. */
async function withLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(path.dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 15 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        /* released meanwhile */
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** A short name with a random suffix, so parallel runs and leftovers never collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A random agent token. */
export function agentToken(): string {
  return randomBytes(24).toString('hex');
}

/**
 * Builds an image from a Dockerfile text with `docker build` in a temp folder; returns its tag. Remove it with
 * `removeImage` when done.
 */
export async function buildTestImage(dockerfile: string, tag = `${uniqueName('cove-test')}:latest`): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-image-'));
  try {
    writeFileSync(path.join(dir, 'Dockerfile'), dockerfile);
    await run('docker', ['build', '-q', '-t', tag, dir], { maxBuffer: 16 * 1024 * 1024 });
    return tag;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`docker build of a test image failed: ${e.stderr || e.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes an image, ignoring one already gone. */
export async function removeImage(tag: string): Promise<void> {
  await run('docker', ['image', 'rm', '-f', tag]).catch(() => {});
}

/** A client of one sandbox's agent over its container address. */
export function agentClient(ip: string, token: string, port = 2280) {
  const base = `http://${ip}:${port}`;
  const auth = { Authorization: `Bearer ${token}` };
  return {
    base,
    fetch: (p: string, init: RequestInit = {}) => fetch(base + p, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } }),
    /** POST /process/execute; throws with the body when the status is not 2xx. */
    async exec(command: string, timeoutS = 30): Promise<{ exitCode: number; result: string }> {
      const res = await fetch(`${base}/process/execute`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ command, timeout: timeoutS }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`POST /process/execute → ${res.status}: ${text}`);
      return JSON.parse(text);
    },
    /** GET as JSON; throws with the body when the status is not 2xx. */
    async get<T = any>(p: string): Promise<T> {
      const res = await fetch(base + p, { headers: auth });
      const text = await res.text();
      if (!res.ok) throw new Error(`GET ${p} → ${res.status}: ${text}`);
      return JSON.parse(text);
    },
  };
}
