import path from 'node:path';
import { compileGlob, type Glob } from '../system/glob';

/**
 * The ignore test of one watch. A glob without "/" matches a name at any depth; one with "/" matches the path
 * relative to `root` or any of its leading folders (so `build/out` also ignores what is inside it). The watched
 * path itself is never ignored, so watching inside `node_modules` works even with the default ignores.
 */
export function createIgnoreMatcher(root: string, globs: readonly string[]): (absolute: string) => boolean {
  const names: Glob[] = [];
  const paths: Glob[] = [];
  // `*` and `?` stay within a path segment, `**` crosses segments, `[…]` (`[!…]` negated), `{a,b}` (see glob.ts).
  const compile = (glob: string) => compileGlob(glob, { globstar: 'segment', caretNegates: false });
  for (const glob of globs) {
    const trimmed = glob.replace(/\/+$/, '');
    if (trimmed.includes('/')) paths.push(compile(trimmed.replace(/^\/+/, '')));
    else if (trimmed) names.push(compile(trimmed));
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
