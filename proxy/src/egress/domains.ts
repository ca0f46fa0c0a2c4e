/**
 * Host names and `*.` wildcards as `domainAllowList` and secrets' `hosts` give them (pure: no I/O).
 *
 * A pattern is a DNS name (`api.example.com`) or `*.` and a name (`*.example.com`), compared case-insensitively
 * without a trailing dot. A wildcard matches names with one or more labels before its suffix, never the suffix
 * itself: `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com` (list both to allow
 * both). Ports, paths, schemes and IP addresses are refused: a pattern names hosts, and addresses are what
 * `networkAllowList` is for.
 */

/** Thrown for a pattern Cove refuses; the message names the entry and why. */
export class HostPatternError extends Error {
  override name = 'HostPatternError';
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const MAX_NAME = 253;

/** The name `host` normalised (lowercase, no trailing dot), or undefined when it is not a DNS name. */
export function normalHost(host: string): string | undefined {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (!name || name.length > MAX_NAME) return undefined;
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  // All-numeric last label: an IPv4 address (or something a resolver would take for one), not a name.
  if (/^[0-9]+$/.test(labels[labels.length - 1])) return undefined;
  return name;
}

/** One pattern, normalised; `what` names the field in the error. */
export function parseHostPattern(text: string, what: string): string {
  const entry = text.trim();
  const shown = JSON.stringify(entry.slice(0, 80));
  const wildcard = entry.startsWith('*.');
  const name = normalHost(wildcard ? entry.slice(2) : entry);
  if (name === undefined) {
    const why = /[:/]/.test(entry)
      ? 'give a host name alone, without scheme, port or path'
      : /^[0-9.]+$/.test(entry)
        ? 'IP addresses are not host names (allow networks with networkAllowList)'
        : 'it is not a host name such as api.example.com or *.example.com';
    throw new HostPatternError(`${what}: ${shown}: ${why}`);
  }
  // A wildcard needs a registrable-looking suffix: `*.com` would allow a whole top-level domain.
  if (wildcard && !name.includes('.')) throw new HostPatternError(`${what}: ${shown} would match a whole top-level domain`);
  return wildcard ? `*.${name}` : name;
}

/** A comma-separated list of patterns (`domainAllowList`), normalised and without repeats; at most `max`. */
export function parseHostList(text: string, what: string, max: number): string[] {
  const out: string[] = [];
  for (const entry of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const pattern = parseHostPattern(entry, what);
    if (!out.includes(pattern)) out.push(pattern);
  }
  if (out.length > max) throw new HostPatternError(`${what} holds ${out.length} host names; at most ${max} are allowed`);
  return out;
}

/** Whether the (normalised) `host` is one `patterns` allow. */
export function hostMatches(patterns: readonly string[], host: string): boolean {
  for (const p of patterns) {
    if (p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p) return true;
  }
  return false;
}
