/**
 * Outbound network policy of a sandbox, and the firewall rules that enforce it (pure: no processes, no I/O).
 *
 * Every sandbox address gets a chain of its own, `COVE-IP-<address>`, reached from the bridge's egress chain for
 * packets from that address. The chain refuses private ranges (unless the operator allows them), then applies the
 * sandbox's policy: nothing more (open), everything refused (block-all), or only the allow-list's networks. Addresses
 * the chain does not refuse return to Docker's own rules, which forward them.
 *
 * Whatever the policy, the bridge's chain refuses link-local (cloud metadata at 169.254.169.254), multicast and
 * reserved destinations for every address; the host's own addresses are kept out by the INPUT rules (network.ts),
 * other sandboxes by Docker (inter-container traffic is disabled on the bridge), and IPv6 is dropped from the bridge.
 */

/**
 * What a sandbox may reach beyond the default guard, and which of its traffic the host hands to Cove's egress
 * services (proxy/src/egress) instead of forwarding it: its web ports (TCP 80 and 443, for a domain allow-list or
 * secrets) and its DNS (UDP and TCP 53, for a domain allow-list). What is redirected never reaches the chains below,
 * so an allow-list with no networks and a redirect lets out only what the egress proxy passes.
 */
export type EgressPolicy =
  | { kind: 'open'; redirect?: Redirect }
  | { kind: 'block-all' }
  | { kind: 'allow-list'; cidrs: string[]; redirect?: Redirect };

export interface Redirect {
  web: boolean;
  dns: boolean;
}

/** Where Cove's egress services listen on the bridge's gateway address (REDIRECT's target ports). */
export interface EgressPorts {
  http: number;
  tls: number;
  dns: number;
}

export const OPEN: EgressPolicy = { kind: 'open' };

/** Daytona's limit on `networkAllowList`. */
const MAX_ALLOW_LIST = 5;

/** Destinations no sandbox reaches, whatever its policy and the operator's settings. */
const ALWAYS_BLOCKED = [
  '0.0.0.0/8', // "this network"
  '127.0.0.0/8', // loopback of someone else
  '169.254.0.0/16', // link-local: cloud metadata (169.254.169.254) and friends
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and the limited broadcast address
];

/** Private ranges (RFC 1918 and carrier-grade NAT): refused unless the operator allows private egress. */
const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];

/** Tag on every egress rule, so people (and `iptables -S | grep`) can tell Cove's rules apart. */
export const EGRESS_COMMENT = 'cove: sandbox egress policy';

/** An IPv4 address as a 32-bit number, or undefined when `text` is not a dotted quad. */
function ipv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) return undefined;
    value = value * 256 + Number(part);
  }
  return value;
}

const dotted = (n: number): string => [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join('.');

interface Cidr {
  base: number;
  bits: number;
}

function parseCidr(text: string): Cidr | undefined {
  const [address, prefix, extra] = text.split('/');
  if (extra !== undefined) return undefined;
  const base = ipv4(address);
  if (base === undefined) return undefined;
  if (prefix === undefined) return { base, bits: 32 };
  if (!/^(0|[1-9][0-9]?)$/.test(prefix) || Number(prefix) > 32) return undefined;
  const bits = Number(prefix);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (base & mask) >>> 0, bits };
}

const size = (c: Cidr): number => 2 ** (32 - c.bits);
const overlaps = (a: Cidr, b: Cidr): boolean => a.base < b.base + size(b) && b.base < a.base + size(a);
const format = (c: Cidr): string => `${dotted(c.base)}/${c.bits}`;

/** Thrown for an allow-list Cove refuses; the message names the entry and why. */
export class EgressPolicyError extends Error {
  override name = 'EgressPolicyError';
}

/**
 * Parses `networkAllowList` (comma-separated IPv4 networks, `a.b.c.d/n`, or an address alone for `/32`): at most
 * five, each normalised to its network address. Refuses what the firewall could not honour as asked: networks inside
 * the always-blocked ranges, and private networks unless `allowPrivate`.
 */
export function parseAllowList(text: string, opts: { allowPrivate: boolean }): string[] {
  const entries = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length > MAX_ALLOW_LIST) {
    throw new EgressPolicyError(`networkAllowList holds ${entries.length} networks; at most ${MAX_ALLOW_LIST} are allowed`);
  }
  const cidrs: string[] = [];
  for (const entry of entries) {
    const cidr = parseCidr(entry);
    if (!cidr) throw new EgressPolicyError(`networkAllowList: ${JSON.stringify(entry.slice(0, 64))} is not an IPv4 network such as 203.0.113.0/24`);
    const blocked = ALWAYS_BLOCKED.map((r) => parseCidr(r)!).find((r) => overlaps(r, cidr));
    if (blocked) throw new EgressPolicyError(`networkAllowList: ${entry} reaches ${format(blocked)}, which no sandbox may reach`);
    if (!opts.allowPrivate) {
      const range = PRIVATE_RANGES.map((r) => parseCidr(r)!).find((r) => overlaps(r, cidr));
      if (range) {
        throw new EgressPolicyError(
          `networkAllowList: ${entry} reaches the private range ${format(range)}, which this server keeps sandboxes out of ` +
            '(its operator can allow it with --allow-private-egress)',
        );
      }
    }
    const normal = format(cidr);
    if (!cidrs.includes(normal)) cidrs.push(normal);
  }
  return cidrs;
}

/**
 * The policy that `networkBlockAll`, `networkAllowList` (already parsed), a domain allow-list and mounted secrets ask
 * for. Block-all wins; a domain allow-list is an allow-list (of its networks, maybe none) whose web traffic and DNS go
 * to the egress services; secrets send web traffic through the egress proxy whatever else the policy says.
 */
export function policyOf(blockAll: boolean, allowList: string[], opts: { domains?: boolean; secrets?: boolean } = {}): EgressPolicy {
  if (blockAll) return { kind: 'block-all' };
  if (opts.domains) return { kind: 'allow-list', cidrs: allowList, redirect: { web: true, dns: true } };
  const redirect = opts.secrets ? { redirect: { web: true, dns: false } } : {};
  if (allowList.length) return { kind: 'allow-list', cidrs: allowList, ...redirect };
  return opts.secrets ? { kind: 'open', ...redirect } : OPEN;
}

/** Whether `ip` (a dotted quad) is inside one of `cidrs` (normalised networks). */
export function inNetworks(ip: string, cidrs: readonly string[]): boolean {
  const n = ipv4(ip);
  if (n === undefined) return false;
  return cidrs.some((text) => {
    const c = parseCidr(text);
    return !!c && n >= c.base && n < c.base + size(c);
  });
}

/**
 * Why no sandbox traffic may go to `ip`, or undefined when it may: the always-blocked ranges, and the private ones
 * unless the operator allows them. For connections the egress proxy makes from the host on a sandbox's behalf, which
 * the forwarding chains never see (the host's own addresses are loopback or private, or refused by the caller).
 */
export function refusedDestination(ip: string, opts: { allowPrivate: boolean }): string | undefined {
  if (ipv4(ip) === undefined) return 'not an IPv4 address';
  if (inNetworks(ip, ALWAYS_BLOCKED)) return 'a loopback, link-local, multicast or reserved address';
  if (!opts.allowPrivate && inNetworks(ip, PRIVATE_RANGES)) return 'a private address';
  return undefined;
}

/** The chain of one sandbox address (28 characters at most, as iptables wants). */
const addressChain = (ip: string): string => `COVE-IP-${ip}`;
/** The nat chain of one sandbox address: its redirects to the egress services. */
const addressNatChain = (ip: string): string => `COVE-NA-${ip}`;

/** The nat chain every packet from the bridge passes first (from PREROUTING). */
export const bridgeNatChain = (bridge: string): string => `COVE-NAT-${bridge}`.slice(0, 28);

/** The chain every packet from the bridge passes first. */
export const bridgeEgressChain = (bridge: string): string => `COVE-EG-${bridge}`.slice(0, 28);

const REJECT = ['-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited'];
const comment = ['-m', 'comment', '--comment', `"${EGRESS_COMMENT}"`];

/** The rules of the bridge's egress chain: the destinations no sandbox reaches. */
export function bridgeGuardRules(bridge: string): string[] {
  const chain = bridgeEgressChain(bridge);
  return ALWAYS_BLOCKED.map((range) => ['-A', chain, '-d', range, ...comment, ...REJECT].join(' '));
}

/**
 * The rules that let DNS through to the host's resolvers, whatever the policy, ahead of every other rule of the
 * bridge's chain: Docker's embedded DNS server (127.0.0.11 in each sandbox) forwards queries to them from the
 * sandbox's own network namespace, so they pass this chain, and they are often private or link-local addresses
 * (a cloud's VPC resolver). Names keep resolving for blocked and allow-listed sandboxes.
 */
export function bridgeDnsRules(bridge: string, resolvers: string[]): string[] {
  const chain = bridgeEgressChain(bridge);
  return resolvers.flatMap((ip) => ['udp', 'tcp'].map((proto) => ['-A', chain, '-d', `${ip}/32`, '-p', proto, '--dport', '53', ...comment, '-j', 'RETURN'].join(' ')));
}

/**
 * The IPv4 name servers of a resolv.conf text, loopback ones left out (Docker does not forward to those: it reads the
 * upstream file of a local stub resolver instead).
 */
export function resolversOf(resolvConf: string): string[] {
  const servers: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m || ipv4(m[1]) === undefined || m[1].startsWith('127.') || servers.includes(m[1])) continue;
    servers.push(m[1]);
  }
  return servers;
}

/**
 * `iptables-restore --noflush` input that gives `ip` exactly `policy`: the address's chains (filter and nat) are
 * declared (which creates them, or empties them), the jumps to them added when `addJump` (the caller knows whether
 * they exist), then their rules. One transaction per table: the kernel never sees a chain half-filled. A policy that
 * redirects needs `ports`, where the egress services listen.
 */
export function addressRestoreScript(opts: {
  bridge: string;
  ip: string;
  policy: EgressPolicy | undefined;
  allowPrivate: boolean;
  addJump: boolean;
  /** The nat table's jump, likewise (servers before the egress proxy made filter jumps only); default `addJump`. */
  addNatJump?: boolean;
  ports?: EgressPorts;
}): string {
  const { ip, policy } = opts;
  if (ipv4(ip) === undefined) throw new EgressPolicyError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  const redirect = policy && policy.kind !== 'block-all' ? policy.redirect : undefined;
  if (redirect && !opts.ports) throw new EgressPolicyError('the egress proxy is not running, so traffic cannot be sent through it');
  const nat = addressNatChain(ip);
  const lines = ['*nat', `:${nat} - [0:0]`];
  if (opts.addNatJump ?? opts.addJump) lines.push(['-A', bridgeNatChain(opts.bridge), '-s', `${ip}/32`, ...comment, '-j', nat].join(' '));
  if (redirect && opts.ports) {
    const to = (proto: string, dport: number, port: number) =>
      lines.push(['-A', nat, '-p', proto, '--dport', String(dport), ...comment, '-j', 'REDIRECT', '--to-ports', String(port)].join(' '));
    // The networks of its allow-list are reached directly, on every port, as without a redirect.
    if (policy?.kind === 'allow-list') for (const cidr of policy.cidrs) lines.push(['-A', nat, '-d', cidr, ...comment, '-j', 'RETURN'].join(' '));
    if (redirect.web) {
      to('tcp', 80, opts.ports.http);
      to('tcp', 443, opts.ports.tls);
    }
    if (redirect.dns) {
      to('udp', 53, opts.ports.dns);
      to('tcp', 53, opts.ports.dns);
    }
  }
  lines.push('COMMIT');
  const chain = addressChain(ip);
  lines.push('*filter', `:${chain} - [0:0]`);
  if (opts.addJump) lines.push(['-A', bridgeEgressChain(opts.bridge), '-s', `${ip}/32`, ...comment, '-j', chain].join(' '));
  // No policy: the address belongs to no sandbox of ours (stopped, removed); its chain stays empty.
  if (policy) {
    const rule = (match: string[], target: string[]) => lines.push(['-A', chain, ...match, ...comment, ...target].join(' '));
    if (!opts.allowPrivate) for (const range of PRIVATE_RANGES) rule(['-d', range], REJECT);
    if (policy.kind === 'block-all') rule([], REJECT);
    if (policy.kind === 'allow-list') {
      for (const cidr of policy.cidrs) rule(['-d', cidr], ['-j', 'RETURN']);
      rule([], REJECT);
    }
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}
