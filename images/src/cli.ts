import { parseArgs } from 'node:util';
import { buildImages, defaultCacheDir, DESKTOP_IMAGE, SANDBOX_IMAGE } from './build';

export const IMAGES_USAGE = `Usage: cove images build [--force] [--desktop] [--cache-dir DIR]

Builds what is missing or out of date: the agent bundle, the Debian base image (debootstrap, needs root) and the
default sandbox image ${SANDBOX_IMAGE}. As root, installs and starts the Docker engine first when it is missing or
stopped. Progress goes to stderr.

  --force          rebuild everything, even what is up to date
  --desktop        also build the desktop image ${DESKTOP_IMAGE} (computer use: an X desktop, xdotool, ImageMagick,
                   ffmpeg, Chromium) from ${SANDBOX_IMAGE}
  --cache-dir DIR  where the bundle and the image's Node runtime are kept (default: .cove/ of the checkout)
  --json           on stdout, what was built as JSON: {"bundleDir", "built": [...], "seconds"}`;

/** `cove images …`. Progress lines go to stderr; the bundle folder is printed on stdout once everything is built. */
export async function runImagesCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      force: { type: 'boolean', default: false },
      desktop: { type: 'boolean', default: false },
      'cache-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      json: { type: 'boolean', default: false },
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
  const progress = await stepProgress();
  let result;
  try {
    result = await buildImages({
      cacheDir: values['cache-dir'] ?? defaultCacheDir(),
      force: values.force,
      desktop: values.desktop,
      log: (line) => progress.line(line),
    });
  } finally {
    progress.stop();
  }
  const took = Math.round((Date.now() - started) / 1000);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ bundleDir: result.bundleDir, built: result.built, seconds: took })}\n`);
    return;
  }
  process.stderr.write(`cove images: ${result.built.length ? `built ${result.built.join(', ')} in ${took} s` : 'everything is up to date'}\n`);
  process.stdout.write(`${result.bundleDir}\n`);
}

/**
 * Progress lines of a build on stderr; on a terminal, the image build's `Step N/M` lines move a progress bar (other
 * lines are printed above it).
 */
async function stepProgress(): Promise<{ line(text: string): void; stop(): void }> {
  const print = (text: string) => process.stderr.write(`cove images: ${text}\n`);
  if (!process.stderr.isTTY) return { line: print, stop: () => {} };
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar({ stream: process.stderr, format: 'cove images: {bar} step {value}/{total} {step}', hideCursor: true, barsize: 30 }, Presets.shades_classic);
  let shown = false;
  return {
    line(text) {
      const step = /^Step (\d+)\/(\d+) : (.*)$/.exec(text);
      if (!step) {
        if (shown) bar.stop();
        shown = false;
        print(text);
        return;
      }
      const summary = step[3].slice(0, 50);
      if (!shown) bar.start(Number(step[2]), Number(step[1]), { step: summary });
      else bar.update(Number(step[1]), { step: summary });
      shown = true;
    },
    stop: () => shown && bar.stop(),
  };
}
