import { describe, expect, it } from 'vitest';
import { createBearerCheck } from './auth';

describe('createBearerCheck', () => {
  const check = createBearerCheck('s3cret-token');

  it('accepts the token as a Bearer credential, the scheme in any case, with surrounding spaces', () => {
    expect(check('Bearer s3cret-token')).toBe(true);
    expect(check('bearer s3cret-token')).toBe(true);
    expect(check('BEARER   s3cret-token')).toBe(true);
    expect(check('  Bearer s3cret-token  ')).toBe(true);
  });

  it('refuses missing, empty, other schemes and other tokens', () => {
    for (const header of [undefined, null, '', 'Bearer', 'Bearer ', 's3cret-token', 'Basic s3cret-token', 'Token s3cret-token', 'Bearers3cret-token']) {
      expect(check(header), String(header)).toBe(false);
    }
    expect(check('Bearer s3cret-toke')).toBe(false);
    expect(check('Bearer s3cret-token2')).toBe(false);
    expect(check('Bearer S3CRET-TOKEN')).toBe(false);
    expect(check('Bearer s3cret-token extra')).toBe(false);
  });

  it('compares tokens of any length without throwing (both sides are hashed first)', () => {
    expect(check(`Bearer ${'x'.repeat(100_000)}`)).toBe(false);
    expect(check('Bearer \u00e9\u{1F600}')).toBe(false);
    expect(createBearerCheck('\u00e9\u{1F600}')('Bearer \u00e9\u{1F600}')).toBe(true);
  });

  it('keeps checks of different tokens apart', () => {
    const other = createBearerCheck('other');
    expect(other('Bearer other')).toBe(true);
    expect(other('Bearer s3cret-token')).toBe(false);
    expect(check('Bearer other')).toBe(false);
  });
});
