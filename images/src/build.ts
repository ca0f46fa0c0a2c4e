import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BASE_IMAGE, buildBaseImage } from './base';
import { buildAgentBundle } from './bundle';
import { ensureDockerEngine } from './engine';
import { checkoutRoot, docker, ensureCommands, imageLabel, run, sha256, withLock, type BuildLog } from './host';

/** The default sandbox image. */
export const SANDBOX_IMAGE = 'cove-sandbox:latest';

/** The desktop image (computer use): the Dockerfile's `desktop` stage, an X desktop and its tools; built when asked for. */
export const DESKTOP_IMAGE = 'cove-desktop:latest';

/**
 * Label of SANDBOX_IMAGE holding the hash of everything it was built from (Dockerfile, agent bundle, Node and npm
 * packages, base image). A start whose inputs hash the same keeps the image; any change rebuilds it.
 */
export const CONTENT_HASH_LABEL = 'dev.cove.content-hash';

/**
 * npm packages the default image carries globally, pinned so that the image is the same on every build
 * (sandboxes cannot reach the npm registry themselves). typescript-language-server 6 needs Node 22; the image has 20.
 */
const GLOBAL_NPM_PACKAGES = ['typescript@5.9.3', 'typescript-language-server@5.3.0', 'pyright@1.1.414', 'ts-node@10.9.2'];

/** The cache folder of a checkout (`.cove/`): the agent bundle, the image's Node runtime and the build lock. */
export function defaultCacheDir(root: string = checkoutRoot()): string {
  return path.join(root, '.cove');
}

/**
 * Where buildImages() keeps the agent bundle in `cacheDir`: the folder the runtime bind-mounts read-only at
 * /opt/cove. Stable across rebuilds.
 */
function agentBundleDir(cacheDir: string = defaultCacheDir()): string {
  return path.join(cacheDir, 'bundle');
}

interface BuildOptions {
  /** The checkout (holds dist/agent.mjs and images/); by default the one this module belongs to. */
  root?: string;
  /** Where the bundle and the image's runtime are kept between builds; defaultCacheDir(root) by default. */
  cacheDir?: string;
  /** Rebuild everything, even what is up to date: base image, bundle, runtime, sandbox image (and desktop image). */
  force?: boolean;
  /** Also build DESKTOP_IMAGE (from SANDBOX_IMAGE) when it is missing or out of date. */
  desktop?: boolean;
  /** Progress lines. */
  log?: BuildLog;
}

export interface BuildResult {
  /** The agent bundle, to bind-mount read-only at /opt/cove. */
  bundleDir: string;
  bundleHash: string;
  /** SANDBOX_IMAGE's content hash (its CONTENT_HASH_LABEL). */
  sandboxHash: string;
  /** What this call built ('agent bundle', image names); empty when all was up to date. */
  built: string[];
}

/**
 * Builds what is missing or out of date: the agent bundle (from the checkout's dist/agent.mjs), the Debian base image
 * and the default sandbox image. Cheap when all is up to date (hashes and `docker image inspect`), so it runs at
 * every start of the proxy. Concurrent calls, in this process or others, wait for each other (a lock in cacheDir).
 * Installs and starts the Docker engine when it is missing or stopped (as root, engine.ts); building the base image
 * needs root and Debian's mirror, the image's npm packages the npm registry.
 */
export async function buildImages(opts: BuildOptions = {}): Promise<BuildResult> {
  const log = opts.log ?? (() => {});
  const root = opts.root ?? checkoutRoot();
  const cacheDir = opts.cacheDir ?? defaultCacheDir(root);
  await ensureDockerEngine(log);
  mkdirSync(cacheDir, { recursive: true });
  return withLock(path.join(cacheDir, 'build.lock'), log, async () => {
    const built: string[] = [];
    const bundle = buildAgentBundle({ root, out: agentBundleDir(cacheDir), force: opts.force, log });
    if (bundle.built) built.push('agent bundle');
    if (await buildBaseImage({ force: opts.force, log })) built.push(BASE_IMAGE);
    const runtime = await prepareRuntime(path.join(cacheDir, 'runtime'), { force: opts.force, log });

    const dockerfile = path.join(root, 'images/sandbox/Dockerfile');
    const baseId = docker(['image', 'inspect', '--format', '{{.Id}}', BASE_IMAGE]);
    const dockerfileText = readFileSync(dockerfile, 'utf8');
    const hash = sandboxContentHash({ dockerfile: dockerfileText, bundleHash: bundle.hash, runtime, baseId });
    if (opts.force || imageLabel(SANDBOX_IMAGE, CONTENT_HASH_LABEL) !== hash) {
      await buildSandboxImage({ dockerfile, context: cacheDir, hash, log });
      built.push(SANDBOX_IMAGE);
    }
    if (opts.desktop && (await buildDesktopImage({ dockerfile, context: cacheDir, hash: sha256(hash, 'desktop'), force: opts.force, log }))) built.push(DESKTOP_IMAGE);
    return { bundleDir: bundle.dir, bundleHash: bundle.hash, sandboxHash: hash, built };
  });
}

let ensured: Promise<BuildResult> | undefined;

/**
 * buildImages() once per process, with the checkout's defaults: for tests, which call it in beforeAll (with a hook
 * timeout of several minutes: a first build takes that long). Progress goes to `log`, stderr by default.
 */
export function ensureImages(log: BuildLog = (line) => process.stderr.write(`[images] ${line}\n`)): Promise<BuildResult> {
  ensured ??= buildImages({ log }).catch((err) => {
    ensured = undefined; // a later call may try again
    throw err;
  });
  return ensured;
}

/** The content hash of the sandbox image built from these inputs (the value of CONTENT_HASH_LABEL). */
export function sandboxContentHash(inputs: { dockerfile: string; bundleHash: string; runtime: string; baseId: string }): string {
  return sha256(inputs.dockerfile, inputs.bundleHash, inputs.runtime, inputs.baseId);
}

/**
 * `docker build --target STAGE` of images/sandbox/Dockerfile, tagged `image`, with `context` (the cache dir) as
 * context: its .dockerignore lets only bundle/ and runtime/ through, so nothing is copied to a separate context
 * folder. The image it replaces is removed when no container uses it (each is about a gigabyte).
 */
async function buildStage(opts: { dockerfile: string; context: string; stage: string; image: string; hash: string; note: string; log: BuildLog }): Promise<void> {
  const { log } = opts;
  writeFileSync(path.join(opts.context, '.dockerignore'), '*\n!bundle\n!runtime\nruntime/.stamp\n');
  const previous = imageId(opts.image);
  log(`docker build ${opts.image} (${opts.note})`);
  const started = Date.now();
  await run(
    'docker',
    ['build', '--build-arg', `BASE=${BASE_IMAGE}`, '--target', opts.stage, '--label', `${CONTENT_HASH_LABEL}=${opts.hash}`, '-t', opts.image, '-f', opts.dockerfile, opts.context],
    { log: (line) => /^(Step \d+\/\d+|Successfully|E: |error)/i.test(line) && log(line) },
  );
  log(`${opts.image} built in ${Math.round((Date.now() - started) / 1000)} s`);
  if (previous && previous !== imageId(opts.image)) {
    try {
      execFileSync('docker', ['image', 'rm', previous], { stdio: 'ignore' });
    } catch {
      // Still used by a container (or by another tag): leave it.
    }
  }
}

const buildSandboxImage = (opts: { dockerfile: string; context: string; hash: string; log: BuildLog }) =>
  buildStage({ ...opts, stage: 'sandbox', image: SANDBOX_IMAGE, note: 'apt-get of the tools takes a few minutes the first time' });

/**
 * DESKTOP_IMAGE (the Dockerfile's `desktop` stage, on the same `system` stage as the sandbox image), unless an image
 * of that name carries `hash`. Returns whether it built.
 */
async function buildDesktopImage(opts: { dockerfile: string; context: string; hash: string; force?: boolean; log: BuildLog }): Promise<boolean> {
  if (!opts.force && imageLabel(DESKTOP_IMAGE, CONTENT_HASH_LABEL) === opts.hash) return false;
  await buildStage({ ...opts, stage: 'desktop', image: DESKTOP_IMAGE, note: 'apt-get of the desktop, ffmpeg and Chromium takes a few minutes the first time' });
  return true;
}

function imageId(name: string): string | undefined {
  try {
    return docker(['image', 'inspect', '--format', '{{.Id}}', name]);
  } catch {
    return undefined;
  }
}

/**
 * Lays out /usr/local of the image in `dir`: this host's Node (symbols stripped), its npm, and GLOBAL_NPM_PACKAGES
 * installed from the npm registry. Kept while its inputs are the same; returns the stamp naming them.
 */
async function prepareRuntime(dir: string, opts: { force?: boolean; log: BuildLog }): Promise<string> {
  const { log } = opts;
  const node = realpathSync(process.execPath);
  const hostNpm = path.join(path.dirname(node), '../lib/node_modules/npm');
  const npmVersion = existsSync(hostNpm) ? (JSON.parse(readFileSync(path.join(hostNpm, 'package.json'), 'utf8')) as { version: string }).version : '10';
  const stamp = `node ${process.version} ${statSync(node).size} npm ${npmVersion} ${GLOBAL_NPM_PACKAGES.join(' ')}`;
  const stampFile = path.join(dir, '.stamp');
  if (!opts.force && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return stamp;

  ensureCommands({ strip: 'binutils' }, log);
  const tmp = `${dir}.new-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(path.join(tmp, 'bin'), { recursive: true });
  mkdirSync(path.join(tmp, 'lib/node_modules'), { recursive: true });
  cpSync(node, path.join(tmp, 'bin/node'));
  execFileSync('strip', ['--strip-all', path.join(tmp, 'bin/node')]);
  const npmArgs = ['install', '-g', '--no-audit', '--no-fund', '--no-update-notifier', '--prefix', tmp];
  if (existsSync(hostNpm)) {
    // The host's own npm, so the image's npm matches its Node and costs no download.
    cpSync(hostNpm, path.join(tmp, 'lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(tmp, 'bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(tmp, 'bin/npx'));
  } else {
    npmArgs.push('npm@10');
  }
  log(`npm install -g ${GLOBAL_NPM_PACKAGES.join(' ')} (on the host, for the image)`);
  await run('npm', [...npmArgs, ...GLOBAL_NPM_PACKAGES], { log });
  writeFileSync(path.join(tmp, '.stamp'), stamp);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return stamp;
}
