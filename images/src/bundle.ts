import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ensureCommands, sha256, type BuildLog } from './host';

/** Where the bundle is mounted (read-only) in every sandbox. The bundled node's interpreter path depends on it. */
export const BUNDLE_MOUNT = '/opt/cove';

/** The agent's command line inside a sandbox; the image's own ENTRYPOINT/CMD follow `--`. */
export const AGENT_COMMAND = [`${BUNDLE_MOUNT}/bin/node`, `${BUNDLE_MOUNT}/agent/cli.mjs`, 'agent'];

/** File in the bundle holding its content hash; written last, so a bundle without it is incomplete. */
const HASH_FILE = '.bundle-hash';

/**
 * Bumped whenever the bundle's layout or recipe changes, so that bundles built by an older recipe are rebuilt even
 * though the agent and Node they hold are the same.
 */
const BUNDLE_RECIPE = 3;

/**
 * OpenSSH's SFTP server (Debian's openssh-sftp-server), carried in the bundle as `bin/sftp-server` beside Node, with
 * the same loader and libraries: SFTP works in images that have none of their own. The agent prefers the image's.
 */
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

const require = createRequire(import.meta.url);

/** Shared libraries of `file` as ldd resolves them on this host: soname → path. */
function sharedLibraries(file: string): Map<string, string> {
  const libs = new Map<string, string>();
  for (const line of execFileSync('ldd', [file], { encoding: 'utf8' }).split('\n')) {
    const linked = /^\s*(\S+) => (\/\S+)/.exec(line);
    if (linked) libs.set(linked[1], linked[2]);
    const loader = /^\s*(\/\S*ld-linux\S*)/.exec(line);
    if (loader) libs.set(path.basename(loader[1]), loader[1]);
  }
  return libs;
}

/** A package's folder, found from its main module (some packages do not export their package.json). */
function packageDir(name: string, from?: string): string {
  let dir = path.dirname(require.resolve(name, from ? { paths: [from] } : undefined));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}

const packageVersion = (dir: string): string => (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;

/** The packages the agent loads at run time from the bundle's node_modules (kept out of the esbuild bundle). */
function runtimePackages(): { nodePty: string; koffi: string; koffiNative: string; typescript: string } {
  const koffi = packageDir('koffi');
  return { nodePty: packageDir('node-pty'), koffi, koffiNative: packageDir('@koromix/koffi-linux-x64', koffi), typescript: packageDir('typescript') };
}

/**
 * The content hash a bundle built now from `cli` would have: the recipe, this Node binary, the agent's code and the
 * versions of its run-time packages. Cheap (no hashing of the 100 MB Node binary: its path, size and mtime stand for
 * it), so it can be checked at every start.
 */
function agentBundleHash(cli: string): string {
  const node = realpathSync(process.execPath);
  const nodeStat = statSync(node);
  const pkgs = runtimePackages();
  const sftp = existsSync(SFTP_SERVER) ? statSync(SFTP_SERVER) : undefined;
  return sha256(
    `recipe ${BUNDLE_RECIPE}`,
    `node ${process.version} ${node} ${nodeStat.size} ${nodeStat.mtimeMs}`,
    `sftp-server ${sftp ? `${sftp.size} ${sftp.mtimeMs}` : 'missing'}`,
    readFileSync(cli),
    ...Object.values(pkgs).map((dir) => `${path.basename(dir)}@${packageVersion(dir)}`),
  );
}

/** The content hash of a built bundle, or undefined when `dir` holds no complete bundle. */
function readBundleHash(dir: string): string | undefined {
  try {
    return readFileSync(path.join(dir, HASH_FILE), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Builds the self-contained agent bundle: this host's Node binary with its own dynamic loader and shared libraries,
 * the bundled agent (`dist/agent.mjs` of `root`), and its native modules. The Node binary's interpreter is rewritten to
 * the bundle's loader at BUNDLE_MOUNT, so the agent runs in any linux/amd64 image (glibc or musl, or no libc at all)
 * without installing anything. Returns the bundle folder, its content hash and whether this call built it.
 *
 * Rebuilt only when its hash changed (or `force`). The new bundle is assembled beside `out` and swapped in with two
 * renames, so `out` is never seen half-written; containers that mount the old one keep it (see prunePrevious).
 */
export function buildAgentBundle(opts: { root: string; out: string; force?: boolean; log?: BuildLog }): { dir: string; hash: string; built: boolean } {
  const log = opts.log ?? (() => {});
  // The agent alone (dist/agent.mjs), not the whole CLI: sandboxes never load the server's modules.
  const cli = path.join(opts.root, 'dist/agent.mjs');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (node scripts/build.mjs)`);
  const hash = agentBundleHash(cli);
  if (!opts.force && readBundleHash(opts.out) === hash) return { dir: opts.out, hash, built: false };

  ensureCommands({ patchelf: 'patchelf', ldd: 'libc-bin', strip: 'binutils', [SFTP_SERVER]: 'openssh-sftp-server' }, log);
  log(`building the agent bundle in ${opts.out}`);
  const tmp = `${opts.out}.new-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const dir of ['bin', 'lib', 'agent/node_modules']) mkdirSync(path.join(tmp, dir), { recursive: true });

  // Node and every library it and the native modules link against, loader included.
  const node = realpathSync(process.execPath);
  const pkgs = runtimePackages();
  const natives = [path.join(pkgs.nodePty, 'build/Release/pty.node'), path.join(pkgs.koffiNative, 'linux_x64/koffi.node')];
  const libs = new Map<string, string>();
  for (const file of [node, SFTP_SERVER, ...natives]) for (const [name, file2] of sharedLibraries(file)) libs.set(name, file2);
  for (const [name, file] of libs) cpSync(realpathSync(file), path.join(tmp, 'lib', name));
  const loader = [...libs.keys()].find((n) => n.startsWith('ld-linux'));
  if (!loader) throw new Error('could not find the dynamic loader of this Node binary');

  const bundledNode = path.join(tmp, 'bin/node');
  cpSync(node, bundledNode);
  chmodSync(bundledNode, 0o755);
  stripSymbols(bundledNode, log);
  // DT_RPATH (not RUNPATH) so that it also applies to the libraries' own dependencies (libstdc++ → libm, libc).
  execFileSync('patchelf', ['--set-interpreter', `${BUNDLE_MOUNT}/lib/${loader}`, '--force-rpath', '--set-rpath', `${BUNDLE_MOUNT}/lib`, bundledNode]);
  const bundledSftp = path.join(tmp, 'bin/sftp-server');
  cpSync(realpathSync(SFTP_SERVER), bundledSftp);
  chmodSync(bundledSftp, 0o755);
  execFileSync('patchelf', ['--set-interpreter', `${BUNDLE_MOUNT}/lib/${loader}`, '--force-rpath', '--set-rpath', `${BUNDLE_MOUNT}/lib`, bundledSftp]);

  // The agent and the modules it loads at run time (native ones, and the TypeScript compiler for code-run).
  cpSync(cli, path.join(tmp, 'agent/cli.mjs'));
  const modules = path.join(tmp, 'agent/node_modules');
  const copyPackage = (from: string, name: string, files: string[]) => {
    for (const f of files) cpSync(path.join(from, f), path.join(modules, name, f), { recursive: true });
  };
  copyPackage(pkgs.nodePty, 'node-pty', ['package.json', 'lib', 'build/Release/pty.node']);
  copyPackage(pkgs.koffi, 'koffi', ['package.json', 'index.cjs', 'index.js', 'src/koffi/index.cjs', 'src/koffi/src/static.cjs']);
  cpSync(pkgs.koffiNative, path.join(modules, '@koromix/koffi-linux-x64'), { recursive: true });
  copyPackage(pkgs.typescript, 'typescript', ['package.json', 'lib/typescript.js']);
  writeFileSync(path.join(tmp, 'agent/package.json'), '{"type":"module"}\n');
  // Tests of the agent and of its code-run mount this folder into images; make sure every file is readable by any
  // user there (user code runs the bundled node for JavaScript as a non-root account).
  execFileSync('chmod', ['-R', 'a+rX', tmp]);
  writeFileSync(path.join(tmp, HASH_FILE), `${hash}\n`);

  // Running sandboxes bind-mount the folder itself (its inode), so the previous bundle is moved aside, not deleted:
  // their agents keep their files. Only the newest few previous bundles are kept.
  const previousHash = readBundleHash(opts.out);
  if (previousHash) renameSync(opts.out, `${opts.out}.previous-${previousHash.slice(0, 16)}-${Date.now()}`);
  renameSync(tmp, opts.out);
  prunePrevious(opts.out, 3);
  log(`agent bundle ready (${Math.round(folderBytes(opts.out) / 1e6)} MB)`);
  return { dir: opts.out, hash, built: true };
}

/**
 * Removes the symbol table and debug info from the copied Node: 99 MB → 86 MB for Debian's Node 20 here. Safe for
 * native addons, which bind to Node through the dynamic symbol table that strip keeps. Done before patchelf, because
 * strip after patchelf's rewrite grows the file instead. A strip that fails leaves the binary whole.
 */
function stripSymbols(file: string, log: BuildLog): void {
  try {
    execFileSync('strip', ['--strip-all', file], { stdio: 'pipe' });
  } catch (err) {
    log(`strip failed, keeping Node's symbols: ${(err as Error).message}`);
  }
}

/** Removes all but the `keep` newest bundles moved aside by earlier rebuilds. */
function prunePrevious(out: string, keep: number): void {
  const prefix = `${path.basename(out)}.previous-`;
  const previous = readdirSync(path.dirname(out))
    .filter((name) => name.startsWith(prefix))
    .sort((a, b) => Number(b.split('-').pop()) - Number(a.split('-').pop()));
  for (const name of previous.slice(keep)) rmSync(path.join(path.dirname(out), name), { recursive: true, force: true });
}

function folderBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}
