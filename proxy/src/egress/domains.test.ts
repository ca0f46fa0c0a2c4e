import { describe, expect, it } from 'vitest';
import { hostMatches, HostPatternError, normalHost, parseHostList, parseHostPattern } from './domains';

describe('host patterns', () => {
  it('normalises names and wildcards', () => {
    expect(parseHostPattern(' API.Example.com. ', 'hosts')).toBe('api.example.com');
    expect(parseHostPattern('*.Example.COM', 'hosts')).toBe('*.example.com');
    expect(normalHost('xn--bcher-kva.example')).toBe('xn--bcher-kva.example');
  });

  it('refuses what is not a host name, saying why', () => {
    expect(() => parseHostPattern('https://a.com/x', 'hosts')).toThrow(/without scheme, port or path/);
    expect(() => parseHostPattern('a.com:443', 'hosts')).toThrow(/without scheme, port or path/);
    expect(() => parseHostPattern('10.0.0.1', 'domainAllowList')).toThrow(/networkAllowList/);
    expect(() => parseHostPattern('*.com', 'hosts')).toThrow(/top-level domain/);
    expect(() => parseHostPattern('a..com', 'hosts')).toThrow(HostPatternError);
    expect(() => parseHostPattern('-a.com', 'hosts')).toThrow(HostPatternError);
    expect(() => parseHostPattern('a_b.com', 'hosts')).toThrow(HostPatternError);
    expect(() => parseHostPattern('*', 'hosts')).toThrow(HostPatternError);
    expect(() => parseHostPattern('a.*.com', 'hosts')).toThrow(HostPatternError);
    expect(() => parseHostPattern(`${'a'.repeat(64)}.com`, 'hosts')).toThrow(HostPatternError);
  });

  it('parses lists without repeats, within a limit', () => {
    expect(parseHostList('a.com, *.b.com,,A.com', 'domainAllowList', 5)).toEqual(['a.com', '*.b.com']);
    expect(() => parseHostList('a.com,b.com,c.com', 'domainAllowList', 2)).toThrow(/at most 2/);
  });

  it('matches a wildcard against subdomains only', () => {
    const patterns = ['api.example.com', '*.cdn.net'];
    expect(hostMatches(patterns, 'api.example.com')).toBe(true);
    expect(hostMatches(patterns, 'x.api.example.com')).toBe(false);
    expect(hostMatches(patterns, 'a.cdn.net')).toBe(true);
    expect(hostMatches(patterns, 'a.b.cdn.net')).toBe(true);
    expect(hostMatches(patterns, 'cdn.net')).toBe(false);
    expect(hostMatches(patterns, 'evilcdn.net')).toBe(false);
  });
});
