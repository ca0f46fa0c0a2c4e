/**
 * `outboundProxyUrl` (pure): an HTTP(S) proxy a sandbox's environment names, as the SDK describes it — convenience
 * routing through the standard variables, not a boundary (a process that clears them goes direct).
 */

/** Thrown for a URL Cove refuses; the message says why. */
export class ProxyUrlError extends Error {
  override name = 'ProxyUrlError';
}

/** The URL normalised (`http:` or `https:`, a host, no path beyond `/`), or a ProxyUrlError. */
export function parseProxyUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ProxyUrlError(`outboundProxyUrl: ${JSON.stringify(text.slice(0, 80))} is not a URL such as http://proxy.example.com:3128`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProxyUrlError(`outboundProxyUrl: the scheme must be http or https, not ${url.protocol.slice(0, -1)}`);
  if (!url.hostname) throw new ProxyUrlError('outboundProxyUrl: the URL names no host');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) throw new ProxyUrlError('outboundProxyUrl: give the proxy alone, without a path, query or fragment');
  if (text.length > 2048) throw new ProxyUrlError('outboundProxyUrl: longer than 2048 characters');
  return url.href.replace(/\/$/, '');
}

/** The environment that routes a sandbox's HTTP(S) clients through `url` (none for null); loopback stays direct. */
export function proxyEnv(url: string | null): Record<string, string> {
  if (!url) return {};
  const noProxy = 'localhost,127.0.0.1,::1';
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url, NO_PROXY: noProxy, no_proxy: noProxy };
}
