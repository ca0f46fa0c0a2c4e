/** Cookies on preview hosts: ours never reach the app, and the app's never reach other preview hosts. */

/** `name=value` pairs of a Cookie header, as sent. */
export function cookiePairs(header: string | undefined): Array<{ name: string; value: string; raw: string }> {
  const pairs = [];
  for (const part of (header ?? '').split(';')) {
    const raw = part.trim();
    if (!raw) continue;
    const eq = raw.indexOf('=');
    pairs.push({ name: (eq < 0 ? '' : raw.slice(0, eq)).trim(), value: (eq < 0 ? raw : raw.slice(eq + 1)).trim(), raw });
  }
  return pairs;
}

/** The value of cookie `name`, if sent. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  return cookiePairs(header).find((p) => p.name === name)?.value;
}

/** The Cookie header without the cookies `drop` selects; undefined when none is left. */
export function cookiesWithout(header: string | undefined, drop: (name: string) => boolean): string | undefined {
  const kept = cookiePairs(header).filter((p) => !drop(p.name));
  return kept.length ? kept.map((p) => p.raw).join('; ') : undefined;
}

/**
 * Whether a Set-Cookie from the app may reach the browser of preview host `host` (no port): only a host-only cookie,
 * or one whose Domain is exactly this host. A Domain of the preview domain or above it would be sent to every other
 * sandbox's preview (and could shadow their cookies), so such a Set-Cookie is dropped.
 */
export function setCookieAllowed(setCookie: string, host: string): boolean {
  const name = host.toLowerCase();
  for (const attr of setCookie.split(';').slice(1)) {
    const eq = attr.indexOf('=');
    if ((eq < 0 ? attr : attr.slice(0, eq)).trim().toLowerCase() !== 'domain') continue;
    const domain = (eq < 0 ? '' : attr.slice(eq + 1)).trim().toLowerCase().replace(/^\./, '');
    // An empty Domain is ignored by browsers (host-only); anything else must be this very host.
    if (domain && domain !== name) return false;
  }
  return true;
}
