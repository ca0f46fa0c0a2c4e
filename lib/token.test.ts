import { describe, expect, it } from 'vitest';
import { LOWER_ALNUM, randomToken } from './token';

describe('randomToken', () => {
  it('draws the asked length from the alphabet only', () => {
    for (const length of [0, 1, 32, 40, 1000]) {
      const t = randomToken(length);
      expect(t).toHaveLength(length);
      expect(t).toMatch(/^[a-z0-9]*$/);
    }
    expect(randomToken(64, 'ab')).toMatch(/^[ab]{64}$/);
  });

  it('favours no character (byte % 36 made the first four about 1.14× likelier than the rest)', () => {
    const counts = new Map<string, number>();
    const text = randomToken(360_000);
    for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(36);
    // 10,000 expected per character, standard deviation about 99: a 1.14× bias would put the first four near 11,000.
    const first = ['a', 'b', 'c', 'd'].map((c) => counts.get(c)!);
    const rest = [...LOWER_ALNUM.slice(4)].map((c) => counts.get(c)!);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(first) / mean(rest)).toBeGreaterThan(0.97);
    expect(mean(first) / mean(rest)).toBeLessThan(1.03);
  });

  it('refuses alphabets it cannot draw from evenly', () => {
    expect(() => randomToken(4, 'a')).toThrow(RangeError);
    expect(() => randomToken(4, 'x'.repeat(257))).toThrow(RangeError);
  });
});
