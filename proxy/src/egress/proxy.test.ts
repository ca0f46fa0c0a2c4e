import { describe, expect, it } from 'vitest';
import { decide } from './proxy';
import type { NameResolver } from './resolver';
import type { EgressSandbox } from './types';

const names: Record<string, string[]> = { 'api.example.com': ['93.184.215.14'], 'intranet.example.com': ['10.1.2.3'], 'meta.example.com': ['169.254.169.254'] };
const asked: string[] = [];
const resolver: NameResolver = {
  resolve4: (name) => {
    asked.push(name);
    return Promise.resolve({ addresses: names[name] ?? [], ttl: 60 });
  },
};
const env = { resolver, allowPrivate: false, refusedNetworks: ['172.18.0.0/16'], isHostAddress: (ip: string) => ip === '203.0.113.9' };
const sandbox = (domains: string[] | null, cidrs: string[] | null): EgressSandbox => ({ id: 's', domains, cidrs, secrets: [] });

describe('decide', () => {
  it('allows a listed name at the address Cove resolves, and refuses others without looking them up', async () => {
    const s = sandbox(['*.example.com'], []);
    expect(await decide(s, 'api.example.com', env)).toEqual({ allowed: true, address: '93.184.215.14' });
    asked.length = 0;
    expect(await decide(s, 'evil.test', env)).toEqual({ allowed: false, reason: 'not in the domain allow-list' });
    expect(await decide(s, 'example.com', env)).toMatchObject({ allowed: false });
    expect(asked).toEqual([]);
  });

  it('allows an address literal or a name only inside the allowed networks when it is not a listed name', async () => {
    const s = sandbox(['other.test'], ['93.184.215.0/24']);
    expect(await decide(s, '93.184.215.14', env)).toEqual({ allowed: true, address: '93.184.215.14' });
    expect(await decide(s, 'api.example.com', env)).toEqual({ allowed: true, address: '93.184.215.14' });
    expect(await decide(s, '8.8.8.8', env)).toEqual({ allowed: false, reason: 'not in the domain allow-list' });
  });

  it('lets anything through when there is no list at all (secrets alone bring the traffic), but never to forbidden places', async () => {
    const open = sandbox(null, null);
    expect(await decide(open, 'api.example.com', env)).toMatchObject({ allowed: true });
    expect(await decide(open, 'meta.example.com', env)).toEqual({ allowed: false, reason: '169.254.169.254 is a loopback, link-local, multicast or reserved address' });
    expect(await decide(open, 'intranet.example.com', env)).toEqual({ allowed: false, reason: '10.1.2.3 is a private address' });
    expect(await decide(open, '172.18.0.5', env)).toMatchObject({ allowed: false });
    expect(await decide(open, '203.0.113.9', env)).toEqual({ allowed: false, reason: "203.0.113.9 is Cove's own network" });
    expect(await decide(open, 'nowhere.example.com', env)).toEqual({ allowed: false, reason: 'the name does not resolve' });
    expect(await decide(open, 'not a name', env)).toEqual({ allowed: false, reason: 'not a host name' });
  });

  it('keeps a listed name that resolves to a forbidden address out too', async () => {
    expect(await decide(sandbox(['meta.example.com'], []), 'meta.example.com', env)).toMatchObject({ allowed: false });
  });
});
