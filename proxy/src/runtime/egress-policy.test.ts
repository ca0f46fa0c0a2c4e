import { describe, expect, it } from 'vitest';
import {
  addressRestoreScript,
  bridgeDnsRules,
  bridgeGuardRules,
  EgressPolicyError,
  inNetworks,
  OPEN,
  parseAllowList,
  policyOf,
  refusedDestination,
  resolversOf,
} from './egress-policy';

const strict = { allowPrivate: false };

describe('parseAllowList', () => {
  it('normalises networks to their base address, takes a bare address as /32, and drops repeats and blanks', () => {
    expect(parseAllowList(' 198.51.100.77/24, 8.8.8.8 ,,198.51.100.0/24', strict)).toEqual(['198.51.100.0/24', '8.8.8.8/32']);
    expect(parseAllowList('', strict)).toEqual([]);
  });

  it('refuses more than five networks', () => {
    expect(() => parseAllowList('1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6', strict)).toThrow(/6 networks; at most 5/);
    expect(parseAllowList('1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5', strict)).toHaveLength(5);
  });

  it('refuses what is not an IPv4 network, naming the entry', () => {
    for (const bad of ['example.com', '1.2.3', '1.2.3.4/33', '1.2.3.256', '01.2.3.4', '1.2.3.4/8/8', '::1', '1.2.3.4/', '1.2.3.4/-1']) {
      expect(() => parseAllowList(bad, strict), bad).toThrow(EgressPolicyError);
      expect(() => parseAllowList(bad, strict), bad).toThrow(/not an IPv4 network/);
    }
  });

  it('refuses link-local (cloud metadata), loopback and multicast whatever the operator allows', () => {
    for (const bad of ['169.254.169.254', '169.0.0.0/8', '127.0.0.1', '224.0.0.1', '0.0.0.0/0']) {
      expect(() => parseAllowList(bad, { allowPrivate: true }), bad).toThrow(/which no sandbox may reach/);
    }
  });

  it('refuses private ranges unless the operator allows private egress', () => {
    for (const range of ['10.1.2.3', '172.20.0.0/16', '192.168.1.0/24', '100.64.0.1', '172.0.0.0/8']) {
      expect(() => parseAllowList(range, strict), range).toThrow(/private range .*--allow-private-egress/);
      expect(parseAllowList(range, { allowPrivate: true }), range).toHaveLength(1);
    }
    // Next to the ranges, not in them.
    expect(parseAllowList('172.32.0.0/16,11.0.0.0/8,100.128.0.0/10', strict)).toHaveLength(3);
  });
});

describe('policyOf', () => {
  it('block-all wins, then an allow-list, else open', () => {
    expect(policyOf(true, ['1.1.1.1/32'])).toEqual({ kind: 'block-all' });
    expect(policyOf(false, ['1.1.1.1/32'])).toEqual({ kind: 'allow-list', cidrs: ['1.1.1.1/32'] });
    expect(policyOf(false, [])).toBe(OPEN);
  });

  it('send web traffic and DNS to the egress services for a domain list, web traffic only for secrets', () => {
    expect(policyOf(false, [], { domains: true })).toEqual({ kind: 'allow-list', cidrs: [], redirect: { web: true, dns: true } });
    expect(policyOf(false, ['1.1.1.1/32'], { domains: true, secrets: true })).toEqual({
      kind: 'allow-list',
      cidrs: ['1.1.1.1/32'],
      redirect: { web: true, dns: true },
    });
    expect(policyOf(false, [], { secrets: true })).toEqual({ kind: 'open', redirect: { web: true, dns: false } });
    expect(policyOf(true, [], { domains: true, secrets: true })).toEqual({ kind: 'block-all' });
  });
});

describe('inNetworks and refusedDestination', () => {
  it('place an address inside or outside networks', () => {
    expect(inNetworks('10.1.2.3', ['10.0.0.0/8'])).toBe(true);
    expect(inNetworks('11.1.2.3', ['10.0.0.0/8', '192.168.0.0/16'])).toBe(false);
    expect(inNetworks('not-an-ip', ['0.0.0.0/0'])).toBe(false);
  });

  it('refuse loopback, link-local and metadata always, private ranges unless allowed', () => {
    expect(refusedDestination('127.0.0.1', { allowPrivate: true })).toMatch(/loopback/);
    expect(refusedDestination('169.254.169.254', { allowPrivate: true })).toMatch(/link-local/);
    expect(refusedDestination('10.0.0.5', { allowPrivate: false })).toMatch(/private/);
    expect(refusedDestination('10.0.0.5', { allowPrivate: true })).toBeUndefined();
    expect(refusedDestination('93.184.215.14', { allowPrivate: false })).toBeUndefined();
    expect(refusedDestination('::1', { allowPrivate: true })).toMatch(/IPv4/);
  });
});

describe('firewall rules', () => {
  const rules = (policy: Parameters<typeof addressRestoreScript>[0]['policy'], allowPrivate = false, addJump = false) =>
    addressRestoreScript({ bridge: 'cove0', ip: '172.18.0.5', policy, allowPrivate, addJump }).split('\n');

  it('give each address one chain, declared (created or emptied) in one transaction', () => {
    const script = rules(OPEN, false, true);
    expect(script.slice(0, 2)).toEqual(['*nat', ':COVE-NA-172.18.0.5 - [0:0]']);
    expect(script[2]).toMatch(/^-A COVE-NAT-cove0 -s 172\.18\.0\.5\/32 .*-j COVE-NA-172\.18\.0\.5$/);
    expect(script[3]).toBe('COMMIT');
    expect(script[4]).toBe('*filter');
    expect(script[5]).toBe(':COVE-IP-172.18.0.5 - [0:0]');
    expect(script[6]).toMatch(/^-A COVE-EG-cove0 -s 172\.18\.0\.5\/32 .*-j COVE-IP-172\.18\.0\.5$/);
    expect(script.at(-2)).toBe('COMMIT');
    expect(rules(OPEN).some((l) => l.startsWith('-A COVE-EG-'))).toBe(false);
  });

  it('refuse private ranges for an open sandbox unless allowed, and nothing else', () => {
    const open = rules(OPEN).filter((l) => l.startsWith('-A '));
    expect(open.map((l) => /-d (\S+)/.exec(l)?.[1])).toEqual(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10']);
    expect(open.every((l) => l.endsWith('-j REJECT --reject-with icmp-admin-prohibited'))).toBe(true);
    expect(rules(OPEN, true).filter((l) => l.startsWith('-A '))).toEqual([]);
  });

  it('refuse everything under block-all, and all but the listed networks under an allow-list', () => {
    const block = rules({ kind: 'block-all' }, true).filter((l) => l.startsWith('-A '));
    expect(block).toEqual(['-A COVE-IP-172.18.0.5 -m comment --comment "cove: sandbox egress policy" -j REJECT --reject-with icmp-admin-prohibited']);
    const allow = rules({ kind: 'allow-list', cidrs: ['198.51.100.0/24', '8.8.8.8/32'] }, true).filter((l) => l.startsWith('-A '));
    expect(allow.map((l) => l.replace(/ -m comment --comment "[^"]*"/, ''))).toEqual([
      '-A COVE-IP-172.18.0.5 -d 198.51.100.0/24 -j RETURN',
      '-A COVE-IP-172.18.0.5 -d 8.8.8.8/32 -j RETURN',
      '-A COVE-IP-172.18.0.5 -j REJECT --reject-with icmp-admin-prohibited',
    ]);
  });

  it('redirect web ports and DNS to the egress services, except to the allowed networks', () => {
    const ports = { http: 4001, tls: 4002, dns: 4003 };
    const policy = { kind: 'allow-list' as const, cidrs: ['198.51.100.0/24'], redirect: { web: true, dns: true } };
    const script = addressRestoreScript({ bridge: 'cove0', ip: '172.18.0.5', policy, allowPrivate: false, addJump: false, ports }).split('\n');
    const nat = script.slice(0, script.indexOf('COMMIT')).filter((l) => l.startsWith('-A ')).map((l) => l.replace(/ -m comment --comment "[^"]*"/, ''));
    expect(nat).toEqual([
      '-A COVE-NA-172.18.0.5 -d 198.51.100.0/24 -j RETURN',
      '-A COVE-NA-172.18.0.5 -p tcp --dport 80 -j REDIRECT --to-ports 4001',
      '-A COVE-NA-172.18.0.5 -p tcp --dport 443 -j REDIRECT --to-ports 4002',
      '-A COVE-NA-172.18.0.5 -p udp --dport 53 -j REDIRECT --to-ports 4003',
      '-A COVE-NA-172.18.0.5 -p tcp --dport 53 -j REDIRECT --to-ports 4003',
    ]);
    // Block-all redirects nothing (nothing passes at all), and no ports means no redirect can be written.
    const blocked = addressRestoreScript({ bridge: 'cove0', ip: '172.18.0.5', policy: { kind: 'block-all' }, allowPrivate: false, addJump: false, ports });
    expect(blocked).not.toMatch(/REDIRECT/);
    expect(() => addressRestoreScript({ bridge: 'cove0', ip: '172.18.0.5', policy, allowPrivate: false, addJump: false })).toThrow(EgressPolicyError);
  });

  it('leave the chain of an address that is no sandbox empty', () => {
    expect(rules(undefined).filter((l) => l.startsWith('-A '))).toEqual([]);
  });

  it('refuse an address that is not IPv4 (nothing else reaches the script)', () => {
    expect(() => addressRestoreScript({ bridge: 'cove0', ip: '172.18.0.5\n-F', policy: OPEN, allowPrivate: false, addJump: false })).toThrow(EgressPolicyError);
  });

  it('keep link-local, loopback, multicast and reserved destinations from every sandbox in the bridge chain', () => {
    expect(bridgeGuardRules('cove0').map((l) => /-d (\S+)/.exec(l)?.[1])).toEqual(['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4']);
  });
});

describe('DNS', () => {
  it("reads the host's IPv4 name servers, not loopback stubs or IPv6 ones", () => {
    const conf = '# generated\nsearch example.internal\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver fd00::53\n nameserver 169.254.169.253\nnameserver 10.255.255.53\noptions edns0\n';
    expect(resolversOf(conf)).toEqual(['10.255.255.53', '169.254.169.253']);
    expect(resolversOf('')).toEqual([]);
  });

  it('lets DNS through to them over UDP and TCP, and nothing else to them', () => {
    expect(bridgeDnsRules('cove0', ['10.255.255.53']).map((l) => l.replace(/ -m comment --comment "[^"]*"/, ''))).toEqual([
      '-A COVE-EG-cove0 -d 10.255.255.53/32 -p udp --dport 53 -j RETURN',
      '-A COVE-EG-cove0 -d 10.255.255.53/32 -p tcp --dport 53 -j RETURN',
    ]);
  });
});
