import type { SingleBar } from 'cli-progress';
import { UsageError } from './args';
import { ApiError } from './client';

/** Prints a value as JSON on stdout (what `--json` promises: nothing else goes there). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints human output on stdout. */
export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** A command's help on stdout: as text, or as `{"usage": …}` under --json. */
export function printHelp(usage: string, json: boolean | undefined): void {
  if (json) printJson({ usage });
  else print(usage);
}

/**
 * The subcommand of a command group (`cove sandbox create …`). Help asked for instead prints `usage` and gives
 * undefined; no subcommand is a usage error.
 */
export function groupAction(argv: string[], usage: string, actions: string): string | undefined {
  const [action] = argv;
  if (action !== undefined && !action.startsWith('-')) return action;
  if (argv.includes('--help') || argv.includes('-h')) {
    printHelp(usage, argv.includes('--json'));
    return undefined;
  }
  throw new UsageError(`missing command: ${actions}`);
}

/** Rows under a header, each column as wide as its widest cell, two spaces apart; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

/** How long ago an ISO time was, in the largest whole unit: `42s`, `5m`, `3h`, `12d`; `-` when unknown. */
export function age(iso: string, now = Date.now()): string {
  const then = Date.parse(iso);
  // An unknown time (unparsable, or the epoch some records carry for "always") has no age.
  if (Number.isNaN(then) || then <= 0) return '-';
  const seconds = Math.max(0, Math.floor((now - then) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** Bytes in binary units: `512 B`, `1.5 KiB`, `20.0 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Progress of a transfer by bytes. */
export interface Progress {
  /** `bytes` more are done, of the file named. */
  add(bytes: number, file: string): void;
  stop(): void;
}

/** A progress bar on stderr when it is a terminal and the output is for people; otherwise nothing is drawn. */
export async function createProgress(total: number, show: boolean): Promise<Progress> {
  if (!show || !process.stderr.isTTY) return { add: () => {}, stop: () => {} };
  const { SingleBar, Presets } = await import('cli-progress');
  const bar: SingleBar = new SingleBar(
    {
      stream: process.stderr,
      format: '{bar} {percentage}% | {done} / {size} | {file}',
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
    },
    Presets.shades_classic,
  );
  let done = 0;
  bar.start(Math.max(total, 1), 0, { done: formatBytes(0), size: formatBytes(total), file: '' });
  return {
    add(bytes, file) {
      done += bytes;
      bar.update(done, { done: formatBytes(done), file });
    },
    stop: () => bar.stop(),
  };
}

/** How a failed command reports: `cove: message` on stderr, or `{"error": message, …}` under --json. */
export function reportError(err: unknown, json: boolean): void {
  const message = err instanceof Error ? err.message : String(err);
  if (json) {
    const extra = err instanceof ApiError ? { status: err.status, ...(err.code ? { code: err.code } : {}) } : {};
    process.stderr.write(`${JSON.stringify({ error: message, ...extra })}\n`);
  } else {
    process.stderr.write(`cove: ${message}\n`);
  }
}
