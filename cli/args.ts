import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command line Cove cannot act on: the command exits with 2 and the help names the right form. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Whether an error is about the command line rather than the work (Node's parseArgs errors included). */
export function isUsageError(err: unknown): boolean {
  if (err instanceof UsageError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}

/** Options every client command takes. */
const CLIENT_OPTIONS = {
  'api-url': { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The help lines of CLIENT_OPTIONS, for every client command's usage. */
export const CLIENT_OPTIONS_HELP = `  --api-url URL   the Cove API (else COVE_API_URL, else the one \`cove login\` saved)
  --api-key KEY   an API key (else COVE_API_KEY, else the one \`cove login\` saved)
  --json          machine-readable JSON on stdout (errors as {"error": …} on stderr)
  -h, --help      this help`;

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses a client command's arguments: its own options beside the common ones, positionals allowed, strict. */
export function parseCommand<T extends Options>(argv: string[], options: T) {
  return parseArgs({ args: argv, options: { ...CLIENT_OPTIONS, ...options }, allowPositionals: true, strict: true });
}

/** `NAME=VALUE` pairs (-e, --label) into an object; a pair without a name or `=` is a usage error. */
export function parseAssignments(pairs: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new UsageError(`${flag} wants NAME=VALUE, got "${pair}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** A whole number flag in [min, max], or undefined when not given. */
export function parseWholeNumber(value: string | undefined, flag: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} wants a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? '' : ` to ${max}`}, got "${value}"`);
  }
  return n;
}

/** The positionals named by `names`, the last `optional` of which may be missing; more or fewer is a usage error. */
export function expectPositionals(positionals: string[], names: string[], optional = 0): string[] {
  const min = names.length - optional;
  if (positionals.length < min) throw new UsageError(`missing ${names.slice(positionals.length, min).join(' ')}`);
  if (positionals.length > names.length) throw new UsageError(`unexpected argument "${positionals[names.length]}"`);
  return positionals;
}
