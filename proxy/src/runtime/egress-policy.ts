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

/** What a sandbox may reach beyond the default guard. */
export type EgressPolicy = { kind: 'open' } | { kind: 'block-all' } | { kind: 'allow-list'; cidrs: string[] };

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

/** The policy that `networkBlockAll` and `networkAllowList` (already parsed) ask for. */
export function policyOf(blockAll: boolean, allowList: string[]): EgressPolicy {
  if (blockAll) return { kind: 'block-all' };
  if (allowList.length) return { kind: 'allow-list', cidrs: allowList };
  return OPEN;
}

/** The chain of one sandbox address (28 characters at most, as iptables wants). */
const addressChain = (ip: string): string => `COVE-IP-${ip}`;

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
 * `iptables-restore --noflush` input that gives `ip` exactly `policy`: the address's chain is declared (which creates
 * it, or empties it), the jump to it added when `addJump` (the caller knows whether it exists), then its rules.
 * One transaction: the kernel never sees the chain half-filled.
 */
export function addressRestoreScript(opts: { bridge: string; ip: string; policy: EgressPolicy | undefined; allowPrivate: boolean; addJump: boolean }): string {
  const { ip, policy } = opts;
  if (ipv4(ip) === undefined) throw new EgressPolicyError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  const chain = addressChain(ip);
  const lines = ['*filter', `:${chain} - [0:0]`];
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
