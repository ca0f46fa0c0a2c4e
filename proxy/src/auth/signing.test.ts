import { describe, expect, it } from 'vitest';
import { checkSignedFileUrl, fileUrlSignature, type SignedParams } from './signing';

const KEY = 'key-123';
const NOW = 1_699_999_000;

/** The reason of a refusal, or 'ok'. */
const reason = (r: ReturnType<typeof checkSignedFileUrl>): string => (r.ok ? 'ok' : r.reason);
/** The query of a signed URL, each name with its values. */
const params = (entries: Record<string, string | string[]>): SignedParams => new Map(Object.entries(entries).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));
const check = (p: SignedParams, over: Partial<Parameters<typeof checkSignedFileUrl>[0]> = {}) =>
  checkSignedFileUrl({ key: KEY, method: 'GET', operation: '/files/download', params: p, nowSeconds: NOW, ...over });

describe('fileUrlSignature', () => {
  it('computes what the Daytona SDK computes (values from @daytonaio/sdk 0.218 computeFileUrlSignature)', () => {
    expect(fileUrlSignature(KEY, 'GET', '/home/daytona/a b.txt', '1700000000')).toBe('v1_5I7o3ys90qNNyK-lDuIsuv10PZQcdBxu4JVkrMguEB8');
    expect(fileUrlSignature(KEY, 'POST', '/tmp/x', '0')).toBe('v1_RHefkACsEXfnkpvNe2F5z0GorAZh__EhfLdz15Fkb2E');
  });
});

describe('checkSignedFileUrl', () => {
  const path = '/home/daytona/a b.txt';
  const good = { path, expires: '1700000000', signature: fileUrlSignature(KEY, 'GET', path, '1700000000') };

  it('admits a valid URL and gives the path alone', () => {
    expect(check(params(good))).toEqual({ ok: true, path });
    const upload = { path: '/tmp/x', expires: '0', signature: fileUrlSignature(KEY, 'POST', '/tmp/x', '0') };
    expect(check(params(upload), { method: 'POST', operation: '/files/upload-v2', nowSeconds: 4e9 })).toEqual({ ok: true, path: '/tmp/x' });
  });

  it('refuses other operations and the wrong method for an operation', () => {
    expect(reason(check(params(good), { operation: '/files/info' }))).toMatch(/only/);
    expect(reason(check(params(good), { method: 'PUT' }))).toMatch(/with GET, not PUT/);
    // A download signature does not open an upload.
    expect(check(params(good), { method: 'POST', operation: '/files/upload-v2' }).ok).toBe(false);
  });

  it('needs path, expires and signature once each', () => {
    for (const missing of ['path', 'expires', 'signature'] as const) {
      const { [missing]: _, ...rest } = good;
      expect(reason(check(params(rest))), missing).toMatch(/once each/);
    }
    expect(check(params({ ...good, path: [path, '/etc/passwd'] })).ok).toBe(false);
    expect(check(params({ ...good, path: '' })).ok).toBe(false);
  });

  it('refuses an expiry that is not a time, or has passed; 0 never expires', () => {
    for (const expires of ['-1', '1e9', '0x10', '99999999999999', '10000000000001', ' 1700000000']) {
      expect(check(params({ ...good, expires })), expires).toMatchObject({ ok: false });
    }
    expect(reason(check(params(good), { nowSeconds: 1_700_000_000 }))).toMatch(/expired at 2023-11-14T22:13:20.000Z/);
    const forever = { path, expires: '0', signature: fileUrlSignature(KEY, 'GET', path, '0') };
    expect(check(params(forever), { nowSeconds: 4e9 }).ok).toBe(true);
  });

  it('gives one answer for a wrong, altered or rotated signature, and for a sandbox without a key', () => {
    const reasons = [
      check(params({ ...good, signature: 'v1_wrong' })),
      check(params({ ...good, path: '/home/daytona/other' })),
      check(params({ ...good, expires: '1700000001' })),
      check(params(good), { key: 'rotated-key' }),
      check(params(good), { key: undefined }),
      check(params({ ...good, signature: good.signature.slice(3) })),
    ];
    for (const r of reasons) expect(r).toMatchObject({ ok: false });
    expect(new Set(reasons.map((r) => (r.ok ? '' : r.reason))).size).toBe(1);
  });
});
