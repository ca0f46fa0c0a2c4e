import { parseArgs } from 'node:util';
import { buildImages, defaultCacheDir, SANDBOX_IMAGE } from './build';

export const IMAGES_USAGE = `Usage: cove images build [--force] [--cache-dir DIR]

Builds what is missing or out of date: the agent bundle, the Debian base image (debootstrap, needs root) and the
default sandbox image ${SANDBOX_IMAGE}. Progress goes to stderr.

  --force          rebuild everything, even what is up to date
  --cache-dir DIR  where the bundle and the image's Node runtime are kept (default: .cove/ of the checkout)`;

/** `cove images …`. Progress lines go to stderr; the bundle folder is printed on stdout once everything is built. */
export async function runImagesCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      force: { type: 'boolean', default: false },
      'cache-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [sub, ...extra] = positionals;
  if (values.help || sub === undefined || sub === 'help') {
    process.stdout.write(`${IMAGES_USAGE}\n`);
    return;
  }
  if (sub !== 'build' || extra.length) {
    process.stderr.write(`cove images: unknown command "${[sub, ...extra].join(' ')}"\n\n${IMAGES_USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const started = Date.now();
  const result = await buildImages({
    cacheDir: values['cache-dir'] ?? defaultCacheDir(),
    force: values.force,
    log: (line) => process.stderr.write(`cove images: ${line}\n`),
  });
  const took = Math.round((Date.now() - started) / 1000);
  process.stderr.write(
    `cove images: ${result.built.length ? `built ${result.built.join(', ')} in ${took} s` : 'everything is up to date'}\n`,
  );
  process.stdout.write(`${result.bundleDir}\n`);
}
