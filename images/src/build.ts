import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BASE_IMAGE, buildBaseImage, imageExists } from './base';
import { buildAgentBundle } from './bundle';
import { run } from './host';

/** The default sandbox image. */
export const SANDBOX_IMAGE = 'cove-sandbox:latest';

/** npm packages the default image carries globally (sandboxes cannot reach the npm registry themselves). */
const GLOBAL_NPM_PACKAGES = ['typescript@5.9', 'typescript-language-server@4', 'pyright@1'];

export interface BuildOptions {
  /** The checkout (holds dist/ and images/). */
  root: string;
  /** Where build contexts and the bundle are kept between builds. */
  cacheDir: string;
  /** Rebuild even when the image exists. */
  force?: boolean;
  log?: (line: string) => void;
}

/**
 * Builds what is missing: the Debian base image, the agent bundle and the default sandbox image. Safe to call at
 * every start: existing images are kept unless `force`.
 */
export async function buildImages(opts: BuildOptions): Promise<{ bundleDir: string; built: string[] }> {
  const log = opts.log ?? (() => {});
  const built: string[] = [];
  const bundleDir = buildAgentBundle({ root: opts.root, out: path.join(opts.cacheDir, 'bundle'), log });
  if (!opts.force && imageExists(SANDBOX_IMAGE)) return { bundleDir, built };

  if (opts.force || !imageExists(BASE_IMAGE)) {
    await buildBaseImage(log);
    built.push(BASE_IMAGE);
  }
  const context = path.join(opts.cacheDir, 'sandbox-context');
  await prepareRuntime(path.join(opts.cacheDir, 'runtime'), log);
  rmSync(context, { recursive: true, force: true });
  mkdirSync(context, { recursive: true });
  cpSync(path.join(opts.root, 'images/sandbox/Dockerfile'), path.join(context, 'Dockerfile'));
  cpSync(path.join(opts.cacheDir, 'runtime'), path.join(context, 'runtime'), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => !src.endsWith('.stamp'),
  });
  cpSync(bundleDir, path.join(context, 'bundle'), { recursive: true });
  log(`docker build ${SANDBOX_IMAGE}`);
  await run('docker', ['build', '--build-arg', `BASE=${BASE_IMAGE}`, '-t', SANDBOX_IMAGE, context], { log });
  rmSync(context, { recursive: true, force: true });
  built.push(SANDBOX_IMAGE);
  return { bundleDir, built };
}

/** Node (this host's) and the global npm packages, laid out as /usr/local. Cached by package list. */
async function prepareRuntime(dir: string, log: (line: string) => void): Promise<void> {
  const stamp = `${process.version} ${GLOBAL_NPM_PACKAGES.join(' ')}`;
  const stampFile = path.join(dir, '.stamp');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  cpSync(realpathSync(process.execPath), path.join(dir, 'bin/node'));
  log(`npm install -g ${GLOBAL_NPM_PACKAGES.join(' ')} (for the image)`);
  await run('npm', ['install', '-g', '--no-audit', '--no-fund', '--prefix', dir, 'npm@10', ...GLOBAL_NPM_PACKAGES], { log });
  if (!existsSync(path.join(dir, 'bin/npx'))) symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(dir, 'bin/npx'));
  writeFileSync(stampFile, stamp);
}
