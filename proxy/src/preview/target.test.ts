/** Pure parts of preview forwarding: request targets, query parameters, cookies. */
import { describe, expect, it } from 'vitest';
import { cookiesWithout, cookieValue, setCookieAllowed } from './cookies';
import { isPreviewCookie, isTokenParam } from './credentials';
import { decodeLoose, parseQuery, splitTarget, targetWithout } from './target';

describe('request targets', () => {
  it('splits origin-form and absolute-form targets, and refuses anything else without throwing', () => {
    expect(splitTarget('/a/b?x=1')).toEqual({ path: '/a/b', query: 'x=1' });
    expect(splitTarget('//a:99999/')).toEqual({ path: '//a:99999/', query: undefined });
    expect(splitTarget('http://host:8080/p?q')).toEqual({ path: '/p', query: 'q' });
    expect(splitTarget('http://[::1]:80/p')).toEqual({ path: '/p', query: undefined });
    expect(splitTarget('https://h')).toEqual({ path: '/', query: undefined });
    for (const bad of ['http://[/', '*', 'a/b', '', '/a b', '/a\u0000', '/a#frag', 'ftp://h/', 'http://a b/']) expect(splitTarget(bad), bad).toBeUndefined();
  });

  it('decodes percent-encoding loosely: what does not decode stays as sent', () => {
    expect(decodeLoose('cove%5Fpreview%5Ftoken')).toBe('cove_preview_token');
    expect(decodeLoose('%ZZ')).toBe('%ZZ');
    expect(decodeLoose('%ZZ%41')).toBe('%ZZA');
    expect(decodeLoose('%E2%82%AC%')).toBe('€%');
  });

  it('drops parameters by decoded name and leaves other targets exactly as sent', () => {
    const ours = (p: { name: string }) => isTokenParam(p.name);
    expect(targetWithout('/x?a=1&cove%5Fpreview%5Ftoken=T&b=%ZZ', ours)).toBe('/x?a=1&b=%ZZ');
    expect(targetWithout('/x?COVE_PREVIEW_TOKEN=T', ours)).toBe('/x');
    expect(targetWithout('/x?DAYTONA%5FSANDBOX%5FAUTH%5FKEY=T&&c', ours)).toBe('/x?c');
    expect(targetWithout('/x?a=1&&b', ours)).toBe('/x?a=1&&b');
    expect(targetWithout('http://h/x?a=1', ours)).toBe('/x?a=1');
    expect(targetWithout('http://[/', ours)).toBeUndefined();
    expect(parseQuery('a+b=c+d&e')).toEqual([
      { raw: 'a+b=c+d', name: 'a b', value: 'c d' },
      { raw: 'e', name: 'e', value: '' },
    ]);
  });
});

describe('preview cookies', () => {
  it('reads and removes our cookie in both forms, keeping the rest as sent', () => {
    const header = 'a=1; cove_preview=T1; __Host-cove_preview=T2;b=x=y';
    expect(cookieValue(header, 'cove_preview')).toBe('T1');
    expect(cookieValue(header, '__Host-cove_preview')).toBe('T2');
    expect(cookiesWithout(header, isPreviewCookie)).toBe('a=1; b=x=y');
    expect(cookiesWithout('cove_preview=1', isPreviewCookie)).toBeUndefined();
  });

  it('lets through host-only cookies and cookies for exactly this host, and nothing wider', () => {
    const host = '8080-abc.cove.example.com';
    expect(setCookieAllowed('a=1; Path=/; HttpOnly', host)).toBe(true);
    expect(setCookieAllowed(`a=1; Domain=${host}`, host)).toBe(true);
    expect(setCookieAllowed(`a=1; domain=.${host.toUpperCase()}`, host)).toBe(true);
    expect(setCookieAllowed('a=1; Domain=', host)).toBe(true);
    for (const wide of ['cove.example.com', '.cove.example.com', 'example.com', 'localhost', 'other.example.org']) {
      expect(setCookieAllowed(`a=1; Path=/; Domain=${wide}`, host), wide).toBe(false);
    }
  });
});

describe('request targets: more edges', () => {
  it('keeps a target with none of the dropped parameters exactly as sent, and gives absolute-form as origin-form', () => {
    const none = () => false;
    expect(targetWithout('/a?%ZZ&&x', none)).toBe('/a?%ZZ&&x');
    expect(targetWithout('http://h:8080/a?b', none)).toBe('/a?b');
    expect(targetWithout('http://h?b', none)).toBe('/?b');
    expect(targetWithout('/a?', none)).toBe('/a?');
  });

  it('refuses ports past five digits and schemes other than http(s)', () => {
    expect(splitTarget('http://h:123456/')).toBeUndefined();
    expect(splitTarget('ws://h/')).toBeUndefined();
    expect(splitTarget('HTTP://h/')).toBeUndefined();
  });

  it('decodes names and values of parameters apart, = in values included', () => {
    expect(parseQuery('a=b=c&%41=%42')).toEqual([
      { raw: 'a=b=c', name: 'a', value: 'b=c' },
      { raw: '%41=%42', name: 'A', value: 'B' },
    ]);
    expect(parseQuery(undefined)).toEqual([]);
    expect(parseQuery('')).toEqual([]);
  });
});
