import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ensureCommands } from './host';

/** Where the bundle is mounted (read-only) in every sandbox. The bundled node's interpreter path depends on it. */
export const BUNDLE_MOUNT = '/opt/cove';

/** The agent's command line inside a sandbox; the image's own ENTRYPOINT/CMD follow `--`. */
export const AGENT_COMMAND = [`${BUNDLE_MOUNT}/bin/node`, `${BUNDLE_MOUNT}/agent/cli.mjs`, 'agent'];

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

/**
 * Builds the self-contained agent bundle: this host's Node binary with its own dynamic loader and shared libraries,
 * the bundled agent, and its native modules. The Node binary's interpreter is rewritten to the bundle's loader at
 * BUNDLE_MOUNT, so the agent runs in any linux/amd64 image (glibc or musl, or none) without installing anything.
 * Returns the bundle folder. Rebuilt only when the agent bundle or this Node changed.
 */
export function buildAgentBundle(opts: { root: string; out: string; log?: (line: string) => void }): string {
  const log = opts.log ?? (() => {});
  const cli = path.join(opts.root, 'dist/cli.mjs');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  const stamp = `${process.version} ${readFileSync(cli).length} ${execFileSync('sha256sum', [cli], { encoding: 'utf8' }).split(' ')[0]}`;
  const stampFile = path.join(opts.out, '.stamp');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return opts.out;

  ensureCommands({ patchelf: 'patchelf', ldd: 'libc-bin' }, log);
  log(`building the agent bundle in ${opts.out}`);
  rmSync(opts.out, { recursive: true, force: true });
  for (const dir of ['bin', 'lib', 'agent/node_modules']) mkdirSync(path.join(opts.out, dir), { recursive: true });

  // Node and every library it and the native modules link against, loader included.
  const node = realpathSync(process.execPath);
  const natives = [
    path.join(packageDir('node-pty'), 'build/Release/pty.node'),
    path.join(packageDir('@koromix/koffi-linux-x64', packageDir('koffi')), 'linux_x64/koffi.node'),
  ];
  const libs = new Map<string, string>();
  for (const file of [node, ...natives]) for (const [name, file2] of sharedLibraries(file)) libs.set(name, file2);
  for (const [name, file] of libs) cpSync(realpathSync(file), path.join(opts.out, 'lib', name));
  const loader = [...libs.keys()].find((n) => n.startsWith('ld-linux'));
  if (!loader) throw new Error('could not find the dynamic loader of this Node binary');

  const bundledNode = path.join(opts.out, 'bin/node');
  cpSync(node, bundledNode);
  chmodSync(bundledNode, 0o755);
  execFileSync('patchelf', ['--set-interpreter', `${BUNDLE_MOUNT}/lib/${loader}`, '--force-rpath', '--set-rpath', `${BUNDLE_MOUNT}/lib`, bundledNode]);

  // The agent and the modules it loads at run time (native ones, and the TypeScript compiler for code-run).
  cpSync(cli, path.join(opts.out, 'agent/cli.mjs'));
  const modules = path.join(opts.out, 'agent/node_modules');
  const copyPackage = (name: string, files: string[]) => {
    const from = packageDir(name);
    for (const f of files) cpSync(path.join(from, f), path.join(modules, name, f), { recursive: true });
  };
  copyPackage('node-pty', ['package.json', 'lib', 'build/Release/pty.node']);
  copyPackage('koffi', ['package.json', 'index.cjs', 'index.js', 'src/koffi/index.cjs', 'src/koffi/src/static.cjs']);
  const koffiNative = path.dirname(path.dirname(natives[1]));
  cpSync(koffiNative, path.join(modules, '@koromix/koffi-linux-x64'), { recursive: true });
  copyPackage('typescript', ['package.json', 'lib/typescript.js']);
  writeFileSync(path.join(opts.out, 'agent/package.json'), '{"type":"module"}\n');
  writeFileSync(stampFile, stamp);
  return opts.out;
}
