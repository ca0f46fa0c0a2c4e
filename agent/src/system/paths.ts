import path from 'node:path';
import { CoveError } from '../../../lib/errors';

/**
 * A client's path resolved against `base` (relative paths start there). No file name can hold a NUL character, and
 * Node's file functions throw a TypeError for one instead of an OS error: it is refused here, as INVALID_FILE_PATH.
 */
export function resolvePath(base: string, p: string): string {
  if (p.includes('\0')) throw new CoveError('INVALID_FILE_PATH', `Invalid path ${JSON.stringify(p.slice(0, 200))}: it contains a NUL character`);
  return path.resolve(base, p);
}
