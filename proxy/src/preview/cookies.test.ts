import { describe, expect, it } from 'vitest';
import { cookiePairs, cookiesWithout, cookieValue, setCookieAllowed } from './cookies';

describe('cookiePairs', () => {
  it('reads name=value pairs as sent, values holding = and spaces around trimmed', () => {
    expect(cookiePairs(' a = 1 ;b=x=y;; c=')).toEqual([
      { name: 'a', value: '1', raw: 'a = 1' },
      { name: 'b', value: 'x=y', raw: 'b=x=y' },
      { name: 'c', value: '', raw: 'c=' },
    ]);
  });

  it('keeps a pair without = as a nameless value, and reads nothing from nothing', () => {
    expect(cookiePairs('flag')).toEqual([{ name: '', value: 'flag', raw: 'flag' }]);
    expect(cookiePairs(undefined)).toEqual([]);
    expect(cookiePairs(' ; ')).toEqual([]);
  });
});

describe('cookieValue and cookiesWithout', () => {
  it('finds the first cookie of a name, case-sensitively', () => {
    expect(cookieValue('a=1; a=2', 'a')).toBe('1');
    expect(cookieValue('A=1', 'a')).toBeUndefined();
    expect(cookieValue(undefined, 'a')).toBeUndefined();
  });

  it('removes every cookie of the names dropped, the nameless one kept', () => {
    expect(cookiesWithout('x=1; flag; x=2; y=3', (n) => n === 'x')).toBe('flag; y=3');
    expect(cookiesWithout(undefined, () => false)).toBeUndefined();
  });
});

describe('setCookieAllowed', () => {
  const host = '3000-sbx.preview.example';
  it('reads the Domain attribute in any case and with spaces, and ignores a Domain in the value', () => {
    expect(setCookieAllowed(`a=1;  DOMAIN = ${host} ; Secure`, host)).toBe(true);
    expect(setCookieAllowed('a=Domain=preview.example; Path=/', host)).toBe(true);
    expect(setCookieAllowed('a=1; Domain=preview.example', host)).toBe(false);
    expect(setCookieAllowed('a=1; Domain', host)).toBe(true);
  });

  it('refuses when any of several Domain attributes is wider', () => {
    expect(setCookieAllowed(`a=1; Domain=${host}; Domain=example`, host)).toBe(false);
    expect(setCookieAllowed(`a=1; Domain=evil-${host}`, host)).toBe(false);
  });
});
