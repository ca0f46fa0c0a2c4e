import { hostMatches } from './domains';
import type { Substitution } from './types';

/**
 * Secrets in outbound requests (pure): the placeholders of a sandbox's mounted secrets whose hosts include the
 * request's host are replaced by the secrets' values; every other placeholder is left as it is.
 */

/** The substitutions that apply to requests to `host` (normalised). */
export function substitutionsFor(subs: readonly Substitution[], host: string): Substitution[] {
  return subs.filter((s) => s.hosts.length > 0 && hostMatches(s.hosts, host));
}

/** `text` with each applicable placeholder replaced; `used` collects the names of the secrets that were. */
export function substitute(text: string, subs: readonly Substitution[], used: Set<string>): string {
  if (!text.includes('dtn_secret_')) return text;
  let out = text;
  for (const s of subs) {
    if (!out.includes(s.placeholder)) continue;
    out = out.split(s.placeholder).join(s.value);
    used.add(s.name);
  }
  return out;
}

/** Header values (raw pairs, as Node gives them) with placeholders replaced. */
export function substituteHeaders(rawHeaders: readonly string[], subs: readonly Substitution[], used: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) out.push(rawHeaders[i], substitute(rawHeaders[i + 1], subs, used));
  return out;
}
