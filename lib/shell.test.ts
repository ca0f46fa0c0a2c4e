import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { shellQuote } from './shell';

/** What `sh` makes of the quoted words: each word it received, NUL-terminated. */
function roundTrip(words: string[]): string[] {
  const out = execFileSync('sh', ['-c', `printf '%s\\0' ${words.map(shellQuote).join(' ')}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

describe('shellQuote', () => {
  it('leaves safe words bare and quotes everything else', () => {
    expect(shellQuote('ls')).toBe('ls');
    expect(shellQuote('a/b.c-d_e@f%g+h=i:j,k')).toBe('a/b.c-d_e@f%g+h=i:j,k');
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('$HOME')).toBe("'$HOME'");
    expect(shellQuote('line1\nline2')).toBe("'line1\nline2'");
    expect(shellQuote('héllo')).toBe("'héllo'");
    expect(shellQuote('~')).toBe("'~'");
  });

  it('round-trips through a real shell', () => {
    const words = ['', ' ', 'a b', "'", "''", '"', 'a\'b"c', '$HOME', '`id`', '$(id)', '\\', '\\n', 'a\nb', '\t', 'héllo', '日本', '😀', '*', '?', '[a]', '{a,b}', '~', '!', '#x', ';', '&', '|', '>', '<', '-n', '--', '=x'];
    expect(roundTrip(words)).toEqual(words);
  });

  it('passes a NUL through (a shell drops it: no word can hold one)', () => {
    expect(shellQuote('a\0b')).toBe("'a\0b'");
  });
});
