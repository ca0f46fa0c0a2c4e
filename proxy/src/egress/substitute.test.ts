import { describe, expect, it } from 'vitest';
import { substitute, substituteHeaders, substitutionsFor } from './substitute';
import type { Substitution } from './types';

const token: Substitution = { secretId: 'a', name: 'TOKEN', placeholder: 'dtn_secret_aaaa', value: 'real-token', hosts: ['api.example.com', '*.example.net'] };
const other: Substitution = { secretId: 'b', name: 'OTHER', placeholder: 'dtn_secret_bbbb', value: 'other-value', hosts: ['other.test'] };
const nowhere: Substitution = { secretId: 'c', name: 'NOWHERE', placeholder: 'dtn_secret_cccc', value: 'never', hosts: [] };

describe('secret substitution', () => {
  it('applies to the hosts of each secret only (none for a secret without hosts)', () => {
    expect(substitutionsFor([token, other, nowhere], 'api.example.com')).toEqual([token]);
    expect(substitutionsFor([token, other, nowhere], 'x.example.net')).toEqual([token]);
    expect(substitutionsFor([token, other, nowhere], 'example.com')).toEqual([]);
  });

  it('replaces every occurrence in URLs and header values, names what it used, and leaves other placeholders', () => {
    const used = new Set<string>();
    expect(substitute('/v1?key=dtn_secret_aaaa&again=dtn_secret_aaaa&b=dtn_secret_bbbb', [token], used)).toBe('/v1?key=real-token&again=real-token&b=dtn_secret_bbbb');
    expect([...used]).toEqual(['TOKEN']);
    const headers = substituteHeaders(['Authorization', 'Bearer dtn_secret_aaaa', 'X-Other', 'dtn_secret_bbbb'], [token], new Set());
    expect(headers).toEqual(['Authorization', 'Bearer real-token', 'X-Other', 'dtn_secret_bbbb']);
    const none = new Set<string>();
    expect(substitute('/plain', [token], none)).toBe('/plain');
    expect(none.size).toBe(0);
  });
});
