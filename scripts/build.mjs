// Bundles dist/cli.mjs (the `cove` command) and dist/agent.mjs (the agent alone, for the bundle inside sandboxes).
// Native modules and the server's dependencies stay external.
import { build } from 'esbuild';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// --outdir lets work in progress build beside the main bundle (it must stay inside the checkout to find node_modules).
const flag = process.argv.indexOf('--outdir');
const outdir = flag > 0 ? process.argv[flag + 1] : `${root}/dist`;
// zod re-exports every locale from its main entry; Cove's messages are English, and the other locales cost the
// agent megabytes of idle memory. Keep only `en`.
const onlyEnglishZodLocales = {
  name: 'only-english-zod-locales',
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      args.importer.includes('/node_modules/zod/') ? { path: args.importer, namespace: 'zod-locales' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(new URL('../locales/en.js', `file://${args.path}`).pathname)};`,
      loader: 'js',
      resolveDir: new URL('.', `file://${args.path}`).pathname,
    }));
  },
};

const serverBuild = {
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  // Native modules, and the TypeScript compiler that code-run loads only when asked (it would triple the bundle).
  // The server's modules (SQLite, Docker client, logger) load from node_modules; only the CLI reaches them.
  external: ['node-pty', 'koffi', 'typescript', 'better-sqlite3', 'dockerode', 'pino'],
  // CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __coveRequire } from 'node:module'; const require = __coveRequire(import.meta.url);" },
  plugins: [onlyEnglishZodLocales],
  logLevel: 'warning',
};
await build({ ...serverBuild, entryPoints: { cli: `${root}/cli/main.ts` } });
// The agent runs once per sandbox, and V8 keeps its whole source in memory: without indentation and with simpler
// syntax it is 1.2 MB instead of 1.7 MB, and an idle agent holds 1.2 MB less (bench/idle.ts: 24.1 MB private, was
// 25.3). Names are not mangled, so stack traces still name their functions (positions map through agent.mjs.map).
await build({ ...serverBuild, entryPoints: { agent: `${root}/agent/src/entry.ts` }, minifyWhitespace: true, minifySyntax: true });

// esbuild escapes non-ASCII characters in code (charset ascii) but keeps comments inside expressions as they are, and
// one em dash in a zod comment makes V8 hold the whole 1 MB source as a two-byte string: about 1 MB more idle memory.
// Escaping what is left keeps the source one-byte (in a comment the escape is just text; in code it is equivalent).
for (const name of ['cli.mjs', 'agent.mjs']) {
  const file = `${outdir}/${name}`;
  const text = readFileSync(file, 'utf8');
  // eslint-disable-next-line no-control-regex
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) writeFileSync(file, ascii);
}

// The web dashboard (dashboard/): one minified browser bundle, its CSS with xterm.js's, and the page, in
// dist/dashboard/, which `cove serve` serves at /dashboard/ (proxy/src/dashboard/).
await build({
  entryPoints: { main: `${root}/dashboard/src/main.ts`, style: `${root}/dashboard/src/style.css` },
  outdir: `${outdir}/dashboard`,
  bundle: true,
  minify: true,
  platform: 'browser',
  format: 'esm',
  target: ['chrome111', 'firefox111', 'safari16'],
  sourcemap: 'linked',
  logLevel: 'warning',
});
copyFileSync(`${root}/dashboard/index.html`, `${outdir}/dashboard/index.html`);
