import { CoveError } from '../../../lib/http/errors';
import path from 'node:path';

/**
 * Turns one glob into a regular expression over a whole string (a glob that cannot be one is an INVALID_REQUEST): `*` and `?` stay within a path segment, `**` crosses
 * segments, `[…]` (`[!…]` negated) is a character class and `{a,b}` an alternation (nested allowed).
 * chokidar 4+ dropped glob support, hence this small translation instead of a dependency.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        const wholeSegment = (i === 0 || glob[i - 1] === '/') && (i + 2 === glob.length || glob[i + 2] === '/');
        i++;
        if (wholeSegment && glob[i + 1] === '/') {
          // `**/` also matches no folder at all: `**/x` matches `x`.
          re += '(?:.*/)?';
          i++;
        } else re += '.*';
      } else re += '[^/]*';
    } else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = glob.slice(i + 1, end);
        if (body.startsWith('!')) body = '^' + body.slice(1);
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (ch === '{') {
      braces++;
      re += '(?:';
    } else if (ch === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (ch === ',' && braces > 0) re += '|';
    else if (ch === '\\' && i + 1 < glob.length) re += '\\' + glob[++i];
    else re += ch.replace(/[.+^$()|[\]\\{}]/g, '\\$&');
  }
  re += ')'.repeat(braces);
  try {
    return new RegExp(`^${re}$`);
  } catch (err) {
    // A character class the regular expression engine refuses, such as the reversed range `[z-a]`.
    throw new CoveError('INVALID_REQUEST', `Invalid ignore glob ${JSON.stringify(glob.slice(0, 100))}`, (err as Error).message);
  }
}

/**
 * The ignore test of one watch. A glob without "/" matches a name at any depth; one with "/" matches the path
 * relative to `root` or any of its leading folders (so `build/out` also ignores what is inside it). The watched
 * path itself is never ignored, so watching inside `node_modules` works even with the default ignores.
 */
export function createIgnoreMatcher(root: string, globs: readonly string[]): (absolute: string) => boolean {
  const names: RegExp[] = [];
  const paths: RegExp[] = [];
  for (const glob of globs) {
    const trimmed = glob.replace(/\/+$/, '');
    if (trimmed.includes('/')) paths.push(globToRegExp(trimmed.replace(/^\/+/, '')));
    else if (trimmed) names.push(globToRegExp(trimmed));
  }
  if (names.length === 0 && paths.length === 0) return () => false;
  return (absolute) => {
    const rel = path.relative(root, absolute);
    if (rel === '' || rel.startsWith('..')) return false;
    const segments = rel.split(path.sep);
    if (names.length > 0 && segments.some((s) => names.some((re) => re.test(s)))) return true;
    if (paths.length > 0) {
      let prefix = '';
      for (const s of segments) {
        prefix = prefix ? `${prefix}/${s}` : s;
        if (paths.some((re) => re.test(prefix))) return true;
      }
    }
    return false;
  };
}
