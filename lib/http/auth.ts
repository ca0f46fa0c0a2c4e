import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Returns a checker for `Authorization: Bearer <token>` headers. Both sides are hashed first so the compare is
 * constant-time whatever the lengths; the token itself is kept only as its digest.
 */
export function createBearerCheck(token: string): (authorization: string | undefined | null) => boolean {
  const expected = createHash('sha256').update(token).digest();
  return (authorization) => {
    if (!authorization) return false;
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    if (!match) return false;
    const given = createHash('sha256').update(match[1]).digest();
    return timingSafeEqual(given, expected);
  };
}
