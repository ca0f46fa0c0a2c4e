// Bundles the CLI (agent included) into dist/cli.mjs. Native modules stay external.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// --outdir lets work in progress build beside the main bundle (it must stay inside the checkout to find node_modules).
const flag = process.argv.indexOf('--outdir');
const outdir = flag > 0 ? process.argv[flag + 1] : `${root}/dist`;
await build({
  entryPoints: { cli: `${root}/cli/main.ts` },
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  external: ['node-pty', 'koffi'],
  // CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __coveRequire } from 'node:module'; const require = __coveRequire(import.meta.url);" },
  logLevel: 'warning',
});
