import { describe, expect, it } from 'vitest';
import { compileGlob, compilePathGlob } from './glob';

/** Asserts what `glob` matches and misses, one string at a time. */
function check(compile: (g: string) => { test(t: string): boolean }, glob: string, matches: string[], misses: string[]): void {
  const g = compile(glob);
  for (const m of matches) expect(g.test(m), `${glob} should match ${JSON.stringify(m)}`).toBe(true);
  for (const m of misses) expect(g.test(m), `${glob} should miss ${JSON.stringify(m)}`).toBe(false);
}

describe('compileGlob', () => {
  it('matches stars and question marks within a segment, a leading dot included', () => {
    check(compileGlob, '*.ts', ['a.ts', '.ts', '.hidden.ts'], ['a.tsx', 'dir/a.ts', 'a.ts/']);
    check(compileGlob, '?', ['a', '.'], ['', 'ab', '/']);
    check(compileGlob, '*', ['', 'anything'], ['a/b']);
    check(compileGlob, 'a*b*c', ['abc', 'aXbYc', 'abbc'], ['ab', 'a/b/c']);
  });

  it('reads ** before / at a segment start as zero or more folders, anything else as any run', () => {
    check(compileGlob, '**/x', ['x', 'a/x', 'a/b/x'], ['ax', 'a/xy']);
    check(compileGlob, 'a/**/x', ['a/x', 'a/b/x', 'a/b/c/x'], ['ax', 'a/bx', 'b/a/x']);
    check(compileGlob, 'a/**', ['a/b', 'a/b/c', 'a/'], ['a', 'b/a/c']);
    check(compileGlob, 'a**b', ['ab', 'a/x/b', 'axb'], ['a/x/c']);
    check(compileGlob, 'a**/b', ['ax/b', 'a/x/b'], ['ab']);
    check(compileGlob, '{**/x,y}', ['x', 'a/x', 'y'], ['a/y']);
  });

  it('matches classes: ranges, both negations, ] first, never a slash', () => {
    check(compileGlob, '[a-c0-9]', ['a', 'c', '5'], ['d', 'A', '', 'ab']);
    check(compileGlob, '[!a-c]', ['d', '.'], ['a', '/']);
    check(compileGlob, '[^a-c]', ['d'], ['b', '/']);
    check(compileGlob, '[]]', [']'], ['[']);
    check(compileGlob, '[!]]', ['a'], [']']);
    check(compileGlob, '[/a]', ['a'], ['/']);
    check(compileGlob, '[\\]', ['\\'], ['a']);
  });

  it('takes a [ without a closing ] literally', () => {
    check(compileGlob, 'a[b', ['a[b'], ['ab']);
  });

  it('matches alternatives, nested and empty, and has no ranges', () => {
    check(compileGlob, '*.{js,ts}', ['a.js', 'a.ts'], ['a.jsx', 'a.']);
    check(compileGlob, 'a{,.bak}', ['a', 'a.bak'], ['a.', 'a.bak.bak']);
    check(compileGlob, '{a,{b,c}d}', ['a', 'bd', 'cd'], ['b', 'ad']);
    check(compileGlob, 'f{1..3}', ['f1..3'], ['f2']);
    check(compileGlob, 'a{b,c', ['ab', 'ac'], ['a{b,c', 'a']);
    check(compileGlob, 'a,b}', ['a,b}'], ['a', 'b']);
  });

  it('takes the character after a backslash literally', () => {
    check(compileGlob, '\\*', ['*'], ['a', '']);
    check(compileGlob, 'a\\{b,c\\}', ['a{b,c}'], ['ab']);
    check(compileGlob, '\\?\\[x]', ['?[x]'], ['a[x]', '?x']);
  });

  it('matches on UTF-16 code units', () => {
    check(compileGlob, '?', ['\u00e9'], ['\u{1F600}']);
    check(compileGlob, '??', ['\u{1F600}'], []);
  });

  it('refuses reversed ranges and braces nested too deep as invalid requests', () => {
    expect(() => compileGlob('[z-a]')).toThrow(expect.objectContaining({ code: 'INVALID_REQUEST' }));
    expect(() => compileGlob(`${'{'.repeat(100)}a${'}'.repeat(100)}`)).toThrow(expect.objectContaining({ code: 'INVALID_REQUEST' }));
    expect(() => compileGlob(`${'{'.repeat(10)}a${'}'.repeat(10)}`)).not.toThrow();
  });

  it('stays linear on globs that make a backtracking matcher explode', () => {
    const text = 'a'.repeat(20_000);
    const started = performance.now();
    expect(compileGlob('*a*a*a*a*a*a*a*a*b').test(text)).toBe(false);
    expect(compileGlob('{*,*}'.repeat(20) + 'b').test(text)).toBe(false);
    expect(compileGlob('**/**/**/**/**/**/b').test(`${'a/'.repeat(5000)}c`)).toBe(false);
    // A backtracking matcher takes minutes to hours here; the automaton takes milliseconds.
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('compilePathGlob', () => {
  it('matches a glob without / against the last segment, at any depth', () => {
    check(compilePathGlob, '*.log', ['a.log', 'x/y/a.log'], ['a.log/x', 'alog']);
    check(compilePathGlob, 'node_modules', ['node_modules', 'a/node_modules'], ['node_modules/x', 'xnode_modules']);
  });

  it('matches a glob with / against the whole relative path, a leading / anchoring it at the root', () => {
    check(compilePathGlob, 'build/**', ['build/a', 'build/a/b'], ['x/build/a', 'build']);
    check(compilePathGlob, '/build', ['build'], ['x/build']);
    check(compilePathGlob, 'src/*.ts', ['src/a.ts'], ['a.ts', 'x/src/a.ts', 'src/a/b.ts']);
  });

  it('leaves out trailing slashes, and matches nothing with a glob of slashes only', () => {
    check(compilePathGlob, 'dist/', ['dist', 'a/dist'], ['dist/x']);
    check(compilePathGlob, '//', [], ['', 'a', '/']);
    check(compilePathGlob, '', [], ['', 'a']);
  });
});
