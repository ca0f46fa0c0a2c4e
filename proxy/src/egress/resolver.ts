import { Resolver } from 'node:dns/promises';

/**
 * The names sandboxes with a domain allow-list look up, and the hosts the egress proxy connects to, resolved from the
 * host (its resolvers, or the operator's `--dns-server`), with a small cache: the proxy resolves a name for every
 * connection, and c-ares keeps none.
 */
export interface NameResolver {
  /** IPv4 addresses of `name` (empty when it has none) and how long they may be cached, in seconds. */
  resolve4(name: string): Promise<{ addresses: string[]; ttl: number }>;
}

const MIN_TTL = 5;
const MAX_TTL = 300;
/** Names that do not exist, or failed, are asked again after this long. */
const NEGATIVE_TTL = 5;
const MAX_ENTRIES = 10_000;

export function createNameResolver(opts: { servers?: string[] } = {}): NameResolver {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (opts.servers?.length) resolver.setServers(opts.servers);
  const cache = new Map<string, { until: number; result: Promise<{ addresses: string[]; ttl: number }> }>();

  async function ask(name: string): Promise<{ addresses: string[]; ttl: number }> {
    try {
      const records = await resolver.resolve4(name, { ttl: true });
      const ttl = Math.min(MAX_TTL, Math.max(MIN_TTL, Math.min(...records.map((r) => r.ttl))));
      return { addresses: records.map((r) => r.address), ttl };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') return { addresses: [], ttl: NEGATIVE_TTL };
      throw err;
    }
  }

  return {
    resolve4(name) {
      const now = Date.now();
      const hit = cache.get(name);
      if (hit && hit.until > now) return hit.result;
      const result = ask(name);
      const entry = { until: now + NEGATIVE_TTL * 1000, result };
      cache.delete(name);
      if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
      cache.set(name, entry);
      result.then(
        (r) => (entry.until = Date.now() + r.ttl * 1000),
        () => cache.get(name) === entry && cache.delete(name),
      );
      return result;
    },
  };
}
