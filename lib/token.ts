import { randomBytes } from 'node:crypto';

/** Lower-case letters and digits: tokens that survive hostnames, SSH user names and URLs unchanged. */
export const LOWER_ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * `length` characters drawn uniformly from `alphabet` (at most 256 characters) with the system's CSPRNG. Bytes at or
 * above the largest multiple of the alphabet's size are drawn again, so no character is likelier than another (a plain
 * `byte % 36` favours the first 4 characters).
 */
export function randomToken(length: number, alphabet: string = LOWER_ALNUM): string {
  const n = alphabet.length;
  if (n < 2 || n > 256) throw new RangeError('the alphabet must have 2 to 256 characters');
  const limit = 256 - (256 % n);
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length - out.length + 8)) {
      if (b >= limit) continue;
      out += alphabet[b % n];
      if (out.length === length) break;
    }
  }
  return out;
}
