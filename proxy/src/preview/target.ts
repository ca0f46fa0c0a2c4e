/**
 * Request targets of preview traffic, read without ever throwing: what is not a target we can forward is `undefined`
 * (the caller answers 400), and percent-encoding that does not decode is kept as sent.
 */

/** A query parameter as sent (`raw`) and decoded (`name`, `value`; `+` is a space, as browsers encode forms). */
export interface QueryParam {
  raw: string;
  name: string;
  value: string;
}

/** Percent-decoding that never throws: a malformed sequence leaves the text as it was. */
export function decodeLoose(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    // Decode what decodes, sequence by sequence; keep the rest.
    return text.replace(/(%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}

/** Splits a request target into path and query (without `?`); undefined when it is not origin-form or absolute-form. */
export function splitTarget(target: string): { path: string; query: string | undefined } | undefined {
  let rest = target;
  if (!rest.startsWith('/')) {
    // Absolute-form (RFC 9112 §3.2.2): a server must accept it; what the app gets is the origin-form.
    // The authority must be a host name or address with an optional port; `http://[/` is not one.
    const m = /^https?:\/\/(?:[A-Za-z0-9._~!$&'()*+,;=%-]*|\[[0-9A-Fa-f:.]+\])(?::\d{0,5})?(?=[/?]|$)/.exec(rest);
    if (!m) return undefined;
    rest = rest.slice(m[0].length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  // A target that starts with `//` is a path, not an authority, in origin-form.
  if (/[\0-\x20\x7f#]/.test(rest)) return undefined;
  const q = rest.indexOf('?');
  return q < 0 ? { path: rest, query: undefined } : { path: rest.slice(0, q), query: rest.slice(q + 1) };
}

/** The parameters of a query string, in order, decoded loosely. */
export function parseQuery(query: string | undefined): QueryParam[] {
  if (!query) return [];
  const params: QueryParam[] = [];
  for (const raw of query.split('&')) {
    if (!raw) continue;
    const eq = raw.indexOf('=');
    const name = decodeLoose((eq < 0 ? raw : raw.slice(0, eq)).replace(/\+/g, ' '));
    const value = eq < 0 ? '' : decodeLoose(raw.slice(eq + 1).replace(/\+/g, ' '));
    params.push({ raw, name, value });
  }
  return params;
}

/**
 * The target the app gets: origin-form, without the parameters `drop` selects (compared on decoded names, so no
 * encoding of a name slips through). A target that carries none of them is returned exactly as sent.
 */
export function targetWithout(target: string, drop: (param: QueryParam) => boolean): string | undefined {
  const split = splitTarget(target);
  if (!split) return undefined;
  const params = parseQuery(split.query);
  const kept = params.filter((p) => !drop(p));
  if (kept.length === params.length) return target.startsWith('/') ? target : `${split.path}${split.query === undefined ? '' : `?${split.query}`}`;
  return kept.length ? `${split.path}?${kept.map((p) => p.raw).join('&')}` : split.path;
}
