import { describe, expect, it } from 'vitest';
import { splitGlobList, WatchQuery } from './watch';

describe('splitGlobList', () => {
  it('splits on commas outside braces, trims, and drops empty items', () => {
    expect(splitGlobList('*.log, dist ,build/**')).toEqual(['*.log', 'dist', 'build/**']);
    expect(splitGlobList('*.{js,ts},src/{a,{b,c}}/x')).toEqual(['*.{js,ts}', 'src/{a,{b,c}}/x']);
    expect(splitGlobList(',,a,,')).toEqual(['a']);
    expect(splitGlobList('')).toEqual([]);
  });

  it('does not let a stray closing brace hide the commas after it', () => {
    expect(splitGlobList('a},b')).toEqual(['a}', 'b']);
    // An unclosed brace keeps the rest as one glob.
    expect(splitGlobList('{a,b')).toEqual(['{a,b']);
  });
});

describe('WatchQuery', () => {
  it('turns the flags on by default and reads true/false/1/0', () => {
    expect(WatchQuery.parse({ path: '/w' })).toEqual({ path: '/w', recursive: true, ignore: [], ignoreDefaults: true, initial: false });
    expect(WatchQuery.parse({ path: 'x', recursive: '0', ignoreDefaults: 'false', initial: '1', ignore: '*.tmp,{a,b}' })).toEqual({
      path: 'x',
      recursive: false,
      ignore: ['*.tmp', '{a,b}'],
      ignoreDefaults: false,
      initial: true,
    });
    expect(WatchQuery.parse({ path: 'x', recursive: '' }).recursive).toBe(true);
  });

  it('refuses an empty path and flags it cannot read', () => {
    expect(WatchQuery.safeParse({ path: '' }).success).toBe(false);
    expect(WatchQuery.safeParse({ path: 'x', recursive: 'yes' }).success).toBe(false);
  });
});
