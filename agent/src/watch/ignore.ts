import path from 'node:path';
import { compilePathGlob } from '../system/glob';

/**
 * The ignore test of one watch: a path is ignored when it or any folder above it (up to the watched `root`) matches
 * one of the globs as a path glob (see `compilePathGlob` in system/glob.ts: a glob without `/` is a name at any
 * depth, one with `/` a path from `root`), so ignoring a folder ignores what is inside it. The watched path itself is
 * never ignored, so watching inside `node_modules` works even with the default ignores.
 */
export function createIgnoreMatcher(root: string, globs: readonly string[]): (absolute: string) => boolean {
  const compiled = globs.map(compilePathGlob);
  if (compiled.length === 0) return () => false;
  return (absolute) => {
    const rel = path.relative(root, absolute);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return false;
    const segments = rel.split(path.sep);
    let prefix = '';
    for (const s of segments) {
      prefix = prefix ? `${prefix}/${s}` : s;
      if (compiled.some((g) => g.test(prefix))) return true;
    }
    return false;
  };
}
