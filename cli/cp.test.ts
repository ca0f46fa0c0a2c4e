import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { landingPath, parseLocation } from './cp';

describe('parseLocation', () => {
  it('reads ID:PATH as a sandbox path', () => {
    expect(parseLocation('abc123:/home/cove/x.txt')).toEqual({ sandbox: 'abc123', path: '/home/cove/x.txt' });
    expect(parseLocation('my-box.1:rel/path')).toEqual({ sandbox: 'my-box.1', path: 'rel/path' });
    expect(parseLocation('box:')).toEqual({ sandbox: 'box', path: '.' });
    expect(parseLocation('box:/a:b')).toEqual({ sandbox: 'box', path: '/a:b' });
  });

  it('reads paths starting with /, . or ~ and paths without a colon as local', () => {
    expect(parseLocation('/tmp/a:b')).toEqual({ path: '/tmp/a:b' });
    expect(parseLocation('./a:b')).toEqual({ path: './a:b' });
    expect(parseLocation('~/x')).toEqual({ path: '~/x' });
    expect(parseLocation('file.txt')).toEqual({ path: 'file.txt' });
    expect(parseLocation('-:x')).toEqual({ path: '-:x' });
  });

  it('refuses an empty argument', () => {
    expect(() => parseLocation('')).toThrow(/empty/);
  });
});

describe('landingPath', () => {
  it('puts an item inside an existing folder or a path ending with /', () => {
    expect(landingPath('/home/cove', true, 'a.txt', path.posix)).toBe('/home/cove/a.txt');
    expect(landingPath('/home/cove/new/', false, 'a.txt', path.posix)).toBe('/home/cove/new/a.txt');
  });

  it('names the item DST otherwise, and SRC/. lands its contents in DST', () => {
    expect(landingPath('/home/cove/b.txt', false, 'a.txt', path.posix)).toBe('/home/cove/b.txt');
    expect(landingPath('out', true, 'dir', path, true)).toBe('out');
  });
});
