import type { Logger } from 'pino';
import type { EgressPorts } from '../runtime/egress-policy';
import type { EgressCa } from './ca';
import { startDnsServer } from './dns';
import type { EgressLog } from './log';
import { startEgressProxy } from './proxy';
import { createNameResolver } from './resolver';
import type { EgressSandbox } from './types';

/**
 * Cove's egress services on the host, for sandboxes whose policy sends traffic through them (runtime/egress-policy.ts):
 * the egress proxy (ports 80 and 443) and the DNS server (port 53), listening on the bridge's gateway address at
 * ports the firewall's redirects name, sharing one resolver and writing to one egress log.
 */
export interface EgressServices {
  ports: EgressPorts;
  close(): Promise<void>;
}

export async function startEgressServices(opts: {
  /** The bridge's gateway address. */
  gateway: string;
  /** The bridge's network: no sandbox reaches another through the proxy. */
  subnet: string;
  allowPrivate: boolean;
  /** Name servers to resolve with (`--dns-server`); the host's own when empty. */
  dnsServers: string[];
  sandboxAt(ip: string): EgressSandbox | undefined;
  /** With it, HTTPS to mounted secrets' hosts is intercepted to substitute them. */
  ca?: EgressCa;
  log: EgressLog;
  logger: Logger;
}): Promise<EgressServices> {
  const resolver = createNameResolver({ servers: opts.dnsServers });
  const common = { host: opts.gateway, sandboxAt: (ip: string) => opts.sandboxAt(ip), resolver, log: opts.log, logger: opts.logger };
  const proxy = await startEgressProxy({ ...common, allowPrivate: opts.allowPrivate, refusedNetworks: opts.subnet ? [opts.subnet] : [], ca: opts.ca });
  const dns = await startDnsServer(common).catch(async (err: Error) => {
    await proxy.close();
    throw err;
  });
  return {
    ports: { ...proxy.ports, dns: dns.port },
    close: async () => {
      await Promise.all([proxy.close(), dns.close()]);
    },
  };
}
