import { describe, expect, it } from 'vitest';
import { parseProxyUrl, ProxyUrlError, proxyEnv } from './outbound-proxy';

describe('outboundProxyUrl', () => {
  it('takes an http or https proxy, credentials included', () => {
    expect(parseProxyUrl('http://proxy.example.com:3128')).toBe('http://proxy.example.com:3128');
    expect(parseProxyUrl('https://user:p%40ss@proxy.example.com/')).toBe('https://user:p%40ss@proxy.example.com');
  });

  it('refuses other schemes, paths and what is not a URL, saying why', () => {
    expect(() => parseProxyUrl('socks5://proxy:1080')).toThrow(/scheme must be http or https/);
    expect(() => parseProxyUrl('http://proxy:3128/path')).toThrow(/without a path/);
    expect(() => parseProxyUrl('proxy:3128')).toThrow(ProxyUrlError);
    expect(() => parseProxyUrl('not a url')).toThrow(/not a URL/);
  });

  it('sets both spellings of the variables, loopback left direct', () => {
    const env = proxyEnv('http://proxy:3128');
    expect(env.HTTP_PROXY).toBe('http://proxy:3128');
    expect(env.https_proxy).toBe('http://proxy:3128');
    expect(env.NO_PROXY).toContain('localhost');
    expect(proxyEnv(null)).toEqual({});
  });
});
