/**
 * Egress by name: `domainAllowList` through Cove's egress proxy and DNS, and `outboundProxyUrl`, through `cove serve`,
 * the default image and the published SDK. The only hosts packets go to are test hosts in a network namespace this
 * file makes (HTTP on 80, HTTPS on 443 with a certificate of a CA made here) and a DNS server on loopback that maps
 * the test names to them; Cove resolves with it (COVE_DNS_SERVER).
 */
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Sandbox } from '@daytonaio/sdk';
import * as dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EgressLogResponse } from '../../wire/egress';
import { startCove, type TestCove } from '../helpers/cove';
import { createTestHost, type TestHost } from '../helpers/netns';

/** Stand-ins for internet hosts (TEST-NET-2). */
const ALLOWED_IP = '198.51.100.21';
const OTHER_IP = '198.51.100.22';
/** The test host's HTTP proxy (port 3128), an outbound proxy for the chain. */
const PROXY_IP = '198.51.100.23';
const NAMES: Record<string, string> = {
  'allowed.test': ALLOWED_IP,
  'api.allowed.test': ALLOWED_IP,
  'other.test': OTHER_IP,
};

let cove: TestCove;
let host: TestHost;
let dir: string;
let ca: string;
let dns: { port: number; close(): void };

/** A CA and a certificate of it for every test name (openssl, as on any Debian machine). */
function makeCertificates(): { ca: string; cert: string; key: string } {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Cove test CA');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=allowed.test');
  writeFileSync(path.join(dir, 'san.ext'), `subjectAltName=${Object.keys(NAMES).map((n) => `DNS:${n}`).join(',')}\n`);
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  const read = (f: string) => readFileSync(path.join(dir, f), 'utf8');
  return { ca: read('ca.pem'), cert: read('server.pem'), key: read('server.key') };
}

/** A DNS server on loopback that knows the test names (A records) and nothing else. */
async function startTestDns(): Promise<{ port: number; close(): void }> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    const query = dnsPacket.decode(msg);
    const question = query.questions?.[0];
    const address = question && question.type === 'A' ? NAMES[question.name.toLowerCase()] : undefined;
    const known = question && NAMES[question.name.toLowerCase()] !== undefined;
    const answer = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3),
      questions: query.questions,
      answers: address ? [{ type: 'A', class: 'IN', name: question!.name, ttl: 60, data: address }] : [],
    });
    socket.send(answer, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, close: () => socket.close() };
}

/** The server resolves with the test DNS, and trusts the test CA for the HTTPS it makes itself (intercepted requests). */
const coveEnv = () => ({ COVE_DNS_SERVER: `127.0.0.1:${dns.port}`, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') });

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cove-egress-names-'));
  const certs = makeCertificates();
  ca = certs.ca;
  host = await createTestHost({ addresses: [ALLOWED_IP, OTHER_IP, PROXY_IP], web: { cert: certs.cert, key: certs.key, names: NAMES } });
  dns = await startTestDns();
  cove = await startCove({ pool: 1, env: coveEnv() });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  await host?.remove();
  dns?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs `command` in the sandbox: its output, with "exit N: " in front when it failed. */
async function sh(sandbox: Sandbox, command: string): Promise<string> {
  const res = await sandbox.process.executeCommand(`${command} 2>&1`);
  return res.exitCode === 0 ? res.result.trim() : `exit ${res.exitCode}: ${res.result.trim()}`;
}

/** The test host's answer to `url` from inside the sandbox (JSON), or curl's failure. */
async function get(sandbox: Sandbox, url: string, curlArgs = ''): Promise<{ address?: string; host?: string; servername?: string | null } | string> {
  const out = await sh(sandbox, `curl -sS -m 5 --cacert /tmp/test-ca.pem ${curlArgs} ${url}`);
  try {
    return JSON.parse(out) as { address: string };
  } catch {
    return out;
  }
}

async function egressLog(sandbox: Sandbox): Promise<EgressLogResponse> {
  const res = await cove.api(`/sandbox/${sandbox.id}/egress-log`);
  expect(res.status).toBe(200);
  return (await res.json()) as EgressLogResponse;
}

async function withCa(sandbox: Sandbox): Promise<Sandbox> {
  await sandbox.fs.uploadFile(Buffer.from(ca), '/tmp/test-ca.pem');
  return sandbox;
}

describe('domainAllowList', () => {
  it('the test hosts answer the host itself on their web ports', async () => {
    const res = await fetch(`http://${ALLOWED_IP}/x`, { signal: AbortSignal.timeout(5000) });
    expect(JSON.parse(await res.text())).toMatchObject({ address: ALLOWED_IP, path: '/x' });
  });

  it('lets a sandbox resolve and reach only the listed names, by HTTP and HTTPS, however it tries otherwise', async () => {
    const sandbox = await withCa(await cove.daytona().create({ user: 'root', domainAllowList: 'allowed.test, *.Allowed.test' }));
    try {
      expect(sandbox.domainAllowList).toBe('allowed.test,*.allowed.test');
      expect((await cove.daytona().get(sandbox.id)).domainAllowList).toBe('allowed.test,*.allowed.test');

      // Names: only the listed ones resolve, from Cove's DNS.
      expect(await sh(sandbox, 'getent hosts api.allowed.test')).toMatch(new RegExp(`^${ALLOWED_IP.replace(/\./g, '\\.')}\\s+api\\.allowed\\.test`));
      expect(await sh(sandbox, 'getent hosts other.test')).toMatch(/^exit 2/);

      // Allowed: plain HTTP by Host, HTTPS by SNI (the sandbox's own TLS, end to end: the test CA's certificate).
      // Cove's own connection, from the host (never from the sandbox's address).
      expect(await get(sandbox, 'http://allowed.test/a?b=1')).toMatchObject({ address: ALLOWED_IP, remote: host.hostAddress, host: 'allowed.test', path: '/a?b=1', via: null });
      expect(await get(sandbox, 'https://api.allowed.test/tls')).toMatchObject({ address: ALLOWED_IP, host: 'api.allowed.test', servername: 'api.allowed.test' });

      // Another name, at its real address: a 403 from Cove for HTTP, a TLS alert for HTTPS — never a hang.
      const denied = await sh(sandbox, `curl -sS -m 5 -w ' %{http_code}' --resolve other.test:80:${OTHER_IP} http://other.test/`);
      expect(denied).toMatch(/other\.test is refused for this sandbox: not in the domain allow-list\s+403$/);
      expect(await get(sandbox, 'https://other.test/', `--resolve other.test:443:${OTHER_IP}`)).toMatch(/^exit 35: .*(alert access denied|access denied)/i);
      // An allowed name sent to another address still reaches the allowed host: Cove connects where it resolves.
      expect(await get(sandbox, 'https://api.allowed.test/', `--resolve api.allowed.test:443:${OTHER_IP}`)).toMatchObject({ address: ALLOWED_IP });
      // By raw address: port 80 asks by Host (an address is not a listed name); other ports are not let out at all.
      expect(await sh(sandbox, `curl -sS -m 5 -o /dev/null -w '%{http_code}' http://${OTHER_IP}/`)).toBe('403');
      expect(await sh(sandbox, `curl -sS -m 5 http://${OTHER_IP}:${host.port}/`)).toMatch(/^exit 7:/);
      // No SNI: refused.
      expect(await sh(sandbox, `curl -sS -m 5 -k https://${OTHER_IP}/`)).toMatch(/^exit 35:/);
      // Proxy variables change nothing: the proxy is not reachable, and web ports go through Cove whatever they say.
      expect(await sh(sandbox, `HTTPS_PROXY=http://${OTHER_IP}:${host.port} curl -sS -m 5 --cacert /tmp/test-ca.pem https://api.allowed.test/`)).toMatch(/^exit (7|56):/);
      // Root cannot lift it: no CAP_NET_ADMIN, and the rules are the host's.
      expect(await sh(sandbox, 'id -u')).toBe('0');
      const capEff = "python3 -c \"print(int(open('/proc/self/status').read().split('CapEff:')[1].split()[0], 16) >> 12 & 1)\"";
      expect(await sh(sandbox, capEff)).toBe('0'); // CAP_NET_ADMIN (bit 12) not held
      expect(await get(sandbox, 'https://other.test/', `--resolve other.test:443:${OTHER_IP}`)).toMatch(/^exit 35:/);

      // The egress log has each attempt, allowed or refused, with what was asked.
      const { entries } = await egressLog(sandbox);
      const seen = (pred: (e: (typeof entries)[number]) => boolean) => entries.some(pred);
      expect(seen((e) => e.protocol === 'dns' && e.host === 'other.test' && e.decision === 'refused')).toBe(true);
      expect(seen((e) => e.protocol === 'http' && e.host === 'allowed.test' && e.path === '/a?b=1' && e.method === 'GET' && e.status === 200 && e.decision === 'allowed' && (e.bytesReceived ?? 0) > 0)).toBe(true);
      expect(seen((e) => e.protocol === 'tls' && e.host === 'api.allowed.test' && e.address === ALLOWED_IP && e.decision === 'allowed' && (e.bytesSent ?? 0) > 0)).toBe(true);
      expect(seen((e) => e.protocol === 'http' && e.host === 'other.test' && e.decision === 'refused')).toBe(true);
      expect(seen((e) => e.protocol === 'tls' && e.host === 'other.test' && e.decision === 'refused')).toBe(true);
      // Without a server name, the address dialled stands for the host (and is no listed name).
      expect(seen((e) => e.protocol === 'tls' && e.host === OTHER_IP && e.decision === 'refused' && /no server name/.test(e.reason ?? ''))).toBe(true);
    } finally {
      await sandbox.delete();
    }
    // Gone with the sandbox.
    expect((await cove.api(`/sandbox/${sandbox.id}/egress-log`)).status).toBe(404);
  }, 120_000);

  it('changes on a running sandbox, combines with networkAllowList, and is lifted by networkBlockAll false', async () => {
    let sandbox = await withCa(await cove.daytona().create({ domainAllowList: 'allowed.test' }));
    try {
      expect(await get(sandbox, 'http://allowed.test/')).toMatchObject({ address: ALLOWED_IP });
      await sandbox.updateNetworkSettings({ domainAllowList: 'other.test' });
      expect(sandbox.domainAllowList).toBe('other.test');
      expect(await get(sandbox, 'https://other.test/')).toMatchObject({ address: OTHER_IP, servername: 'other.test' });
      expect(await sh(sandbox, 'getent hosts allowed.test')).toMatch(/^exit 2/);
      expect(await sh(sandbox, `curl -sS -m 5 -o /dev/null -w '%{http_code}' --resolve allowed.test:80:${ALLOWED_IP} http://allowed.test/`)).toBe('403');

      // Networks and names together: the listed network on any port, the listed name on the web ports.
      await sandbox.updateNetworkSettings({ networkAllowList: `${ALLOWED_IP}/32` });
      expect(sandbox.domainAllowList).toBe('other.test');
      expect(sandbox.networkAllowList).toBe(`${ALLOWED_IP}/32`);
      expect(await sh(sandbox, `curl -sS -m 5 http://${ALLOWED_IP}:${host.port}/`)).toBe(ALLOWED_IP);
      expect(await get(sandbox, 'https://other.test/')).toMatchObject({ address: OTHER_IP });
      expect(await sh(sandbox, `curl -sS -m 5 http://${OTHER_IP}:${host.port}/`)).toMatch(/^exit 7:/);

      // Survives stop and start, and a server restart (its egress services listen on new ports then).
      await sandbox.stop();
      await sandbox.start();
      expect(await get(sandbox, 'https://other.test/')).toMatchObject({ address: OTHER_IP });
      expect(await sh(sandbox, `curl -sS -m 5 http://${OTHER_IP}:${host.port}/`)).toMatch(/^exit 7:/);
      const { dataDir, apiKey } = cove;
      await cove.stop();
      cove = await startCove({ pool: 1, dataDir, apiKey, env: coveEnv() });
      sandbox = await withCa(await cove.daytona().get(sandbox.id));
      expect(sandbox.domainAllowList).toBe('other.test');
      expect(await get(sandbox, 'https://other.test/')).toMatchObject({ address: OTHER_IP });
      expect(await sh(sandbox, 'getent hosts allowed.test')).toMatch(/^exit 2/);

      // An empty list removes it; networkBlockAll false opens everything.
      await sandbox.updateNetworkSettings({ networkBlockAll: false });
      expect(sandbox.domainAllowList).toBeUndefined();
      expect(await sh(sandbox, `curl -sS -m 5 --cacert /tmp/test-ca.pem --resolve allowed.test:443:${ALLOWED_IP} https://allowed.test/`)).toMatch(/"servername":"allowed.test"/);
      expect(await sh(sandbox, `curl -sS -m 5 http://${OTHER_IP}:${host.port}/`)).toBe(OTHER_IP);
    } finally {
      await sandbox.delete();
    }
  }, 180_000);

  it('refuses, by name, a list it cannot enforce, and keeps what was', async () => {
    const bad = async (body: object, pattern: RegExp, p = '/sandbox') => {
      const res = await cove.api(p, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
      const text = await res.text();
      expect(res.status, text).toBe(400);
      expect(JSON.parse(text).message).toMatch(pattern);
    };
    await bad({ domainAllowList: 'https://example.com/path' }, /domainAllowList: "https:\/\/example.com\/path": give a host name alone/);
    await bad({ domainAllowList: '198.51.100.7' }, /IP addresses are not host names/);
    await bad({ domainAllowList: '*.com' }, /whole top-level domain/);
    await bad({ domainAllowList: Array.from({ length: 101 }, (_, i) => `h${i}.example.com`).join(',') }, /at most 100/);
    await bad({ networkBlockAll: true, domainAllowList: 'example.com' }, /not both/);
    await bad({ outboundProxyUrl: 'socks5://proxy:1080' }, /scheme must be http or https/);

    const sandbox = await cove.daytona().create({ domainAllowList: 'allowed.test' });
    try {
      const at = `/sandbox/${sandbox.id}/network-settings`;
      await bad({}, /Give networkBlockAll, networkAllowList or domainAllowList/, at);
      await bad({ domainAllowList: 'a..b' }, /not a host name/, at);
      expect((await cove.daytona().get(sandbox.id)).domainAllowList).toBe('allowed.test');
      expect(await get(sandbox, 'http://allowed.test/')).toMatchObject({ address: ALLOWED_IP });
    } finally {
      await sandbox.delete();
    }
  });
});

describe('secrets', () => {
  const VALUE = `value-${Math.random().toString(36).slice(2)}-never-in-the-sandbox`;
  const OTHER_VALUE = `other-${Math.random().toString(36).slice(2)}`;

  /** Nothing in the sandbox holds the value: its environment, its processes' environments and command lines, its files. */
  async function expectValueAbsent(sandbox: Sandbox): Promise<void> {
    // The value as a regular expression with one bracketed letter: the command line that looks for it does not hold it.
    const pattern = `'${VALUE.slice(0, 8)}[${VALUE[8]}]${VALUE.slice(9)}'`;
    const look = await sh(
      sandbox,
      `{ env; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'; ps auxe 2>/dev/null; grep -rsa -- ${pattern} /etc /run /tmp /home /root /usr/local /var 2>/dev/null; } | grep -c -- ${pattern} || true`,
    );
    expect(look).toBe('0');
  }

  it('mounts a placeholder that Cove replaces only on the way to the secret\'s hosts, over HTTPS and HTTP', async () => {
    const daytona = cove.daytona();
    const secret = await daytona.secret.create({ name: 'api-token', value: VALUE, hosts: ['api.allowed.test', 'allowed.test'] } as never);
    await daytona.secret.create({ name: 'other-token', value: OTHER_VALUE, hosts: ['nowhere.test'] } as never);
    const placeholder = (secret as { placeholder: string }).placeholder;
    expect(placeholder).toMatch(/^dtn_secret_/);
    const sandbox = await withCa(await daytona.create({ user: 'root', domainAllowList: 'allowed.test,*.allowed.test,other.test', secrets: { API_TOKEN: 'api-token', OTHER: 'other-token' } } as never));
    try {
      expect(await sh(sandbox, 'echo $API_TOKEN')).toBe(placeholder);
      // HTTPS to the secret's host: intercepted with Cove's CA, which the sandbox trusts (no --cacert: the system store).
      const https = JSON.parse(await sh(sandbox, 'curl -sS -m 5 -H "Authorization: Bearer $API_TOKEN" "https://api.allowed.test/v1?key=$API_TOKEN&other=$OTHER"'));
      expect(https).toMatchObject({ address: ALLOWED_IP, host: 'api.allowed.test', authorization: `Bearer ${VALUE}`, servername: 'api.allowed.test' });
      // The other secret's placeholder is not for this host: left as it was.
      expect(https.path).toBe(`/v1?key=${VALUE}&other=${(await sh(sandbox, 'echo $OTHER'))}`);
      // Plain HTTP to a secret's host, and Node and Python (which read the variables the agent set) over HTTPS.
      expect(JSON.parse(await sh(sandbox, 'curl -sS -m 5 "http://allowed.test/p?t=$API_TOKEN"')).path).toBe(`/p?t=${VALUE}`);
      const node = await sh(sandbox, `node -e "fetch('https://api.allowed.test/n', { headers: { authorization: process.env.API_TOKEN } }).then((r) => r.json()).then((j) => console.log(j.authorization))"`);
      expect(node).toBe(VALUE);
      const python = await sh(sandbox, `python3 -c "import json, os, urllib.request as u; print(json.load(u.urlopen(u.Request('https://api.allowed.test/py', headers={'X-Token': os.environ['API_TOKEN']})))['address'])"`);
      expect(python).toBe(ALLOWED_IP);
      // Another host gets the placeholder (its TLS is the test host's own: relayed, not intercepted).
      const other = JSON.parse(await sh(sandbox, 'curl -sS -m 5 --cacert /tmp/test-ca.pem -H "Authorization: Bearer $API_TOKEN" https://other.test/'));
      expect(other).toMatchObject({ address: OTHER_IP, authorization: `Bearer ${placeholder}` });
      // A Host that is not the TLS name is refused rather than sent elsewhere with the secret.
      expect(await sh(sandbox, `curl -sS -m 5 -o /dev/null -w '%{http_code}' -H 'Host: other.test' https://api.allowed.test/`)).toBe('421');

      await expectValueAbsent(sandbox);
      const log = await egressLog(sandbox);
      expect(JSON.stringify(log)).not.toContain(VALUE);
      expect(log.entries.some((e) => e.protocol === 'https' && e.host === 'api.allowed.test' && e.secrets?.includes('api-token') && e.path?.includes(placeholder))).toBe(true);
      expect(log.entries.some((e) => e.protocol === 'tls' && e.host === 'other.test' && !e.secrets)).toBe(true);

      // Detached: new processes lose the variable, and the placeholder is no longer replaced.
      await sandbox.updateSecrets({});
      expect(await sh(sandbox, 'echo "[$API_TOKEN]"')).toBe('[]');
      // Relayed untouched now: the test host's own certificate, and the placeholder as it was sent.
      const after = JSON.parse(await sh(sandbox, `curl -sS -m 5 --cacert /tmp/test-ca.pem -H "Authorization: Bearer ${placeholder}" https://api.allowed.test/`));
      expect(after).toMatchObject({ address: ALLOWED_IP, authorization: `Bearer ${placeholder}` });
    } finally {
      await sandbox.delete();
    }
    expect(cove.output()).not.toContain(VALUE);
  }, 120_000);

  it('attaches to a running sandbox that had none, and rotating the value takes effect at once', async () => {
    const daytona = cove.daytona();
    const sandbox = await daytona.create({ user: 'root' });
    try {
      await daytona.secret.create({ name: 'rotated', value: 'first-value', hosts: ['api.allowed.test'] } as never);
      await sandbox.updateSecrets({ TOKEN: 'rotated' });
      expect(await sh(sandbox, 'echo $TOKEN')).toMatch(/^dtn_secret_/);
      // An open sandbox: its DNS is the host's, so the test name is pinned (Cove connects where its own DNS says).
      const ask = () => sh(sandbox, `curl -sS -m 5 --resolve api.allowed.test:443:${OTHER_IP} -H "X: $TOKEN" -H "Authorization: $TOKEN" https://api.allowed.test/`);
      expect(JSON.parse(await ask())).toMatchObject({ address: ALLOWED_IP, authorization: 'first-value' });
      // Traffic that names no host (TLS to an address) still goes where it was dialled, untouched.
      expect(JSON.parse(await sh(sandbox, `curl -sS -m 5 -k -H "Authorization: $TOKEN" https://${OTHER_IP}/`))).toMatchObject({ address: OTHER_IP, authorization: expect.stringMatching(/^dtn_secret_/) });
      const { items } = (await (daytona.secret as unknown as { list(q?: object): Promise<{ items: { id: string; name: string }[] }> }).list()) ?? { items: [] };
      const id = items.find((i) => i.name === 'rotated')!.id;
      await (daytona.secret as unknown as { update(id: string, body: object): Promise<unknown> }).update(id, { value: 'second-value' });
      expect(JSON.parse(await ask())).toMatchObject({ authorization: 'second-value' });
    } finally {
      await sandbox.delete();
    }
  }, 120_000);

  it('refuses an unknown secret, a variable given twice, and another key\'s secret, by name', async () => {
    const bad = async (body: object, pattern: RegExp, key?: string) => {
      const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' }, ...(key ? { key } : {}) });
      const text = await res.text();
      expect(res.status, text).toBeGreaterThanOrEqual(400);
      expect(res.status, text).toBeLessThan(500);
      expect(JSON.parse(text).message).toMatch(pattern);
    };
    await bad({ secrets: [{ A: 'no-such-secret' }] }, /no-such-secret/);
    await bad({ secrets: [{ A: 'api-token' }, { A: 'api-token' }] }, /given twice/);
    await bad({ env: { A: 'x' }, secrets: [{ A: 'api-token' }] }, /also given in env/);
    const { key } = cove.newKey('secret-stranger');
    await bad({ secrets: [{ A: 'api-token' }] }, /api-token/, key);
  });
});

describe('outboundProxyUrl', () => {
  it('with a domainAllowList, chains what the egress proxy lets out through the outbound proxy, at the network layer', async () => {
    const url = `http://user:pw@${PROXY_IP}:3128`;
    const sandbox = await withCa(await cove.daytona().create({ domainAllowList: 'allowed.test,*.allowed.test', outboundProxyUrl: url }));
    try {
      expect(sandbox.outboundProxyUrl).toBe(url);
      // No variables: they would send clients to an address the firewall refuses; the chain needs none.
      expect(await sh(sandbox, 'echo "[$HTTP_PROXY$https_proxy]"')).toBe('[]');
      // Plain HTTP in absolute form with the URL's credentials; HTTPS through CONNECT (the test proxy connects from inside its namespace).
      expect(await get(sandbox, 'http://allowed.test/chained')).toMatchObject({ address: ALLOWED_IP, path: '/chained', via: `Basic ${Buffer.from('user:pw').toString('base64')}` });
      const tls = await get(sandbox, 'https://api.allowed.test/chained');
      expect(tls).toMatchObject({ address: ALLOWED_IP, servername: 'api.allowed.test' });
      expect((tls as { remote: string }).remote).not.toBe(host.hostAddress);
      // The allow-list still decides first.
      expect(await sh(sandbox, `curl -sS -m 5 -o /dev/null -w '%{http_code}' --resolve other.test:80:${OTHER_IP} http://other.test/`)).toBe('403');
      // Without the list, the variables come back for processes started from then on.
      await sandbox.updateNetworkSettings({ networkBlockAll: false });
      expect(await sh(sandbox, 'echo $HTTP_PROXY')).toBe(url);
    } finally {
      await sandbox.delete();
    }
  });

  it("sets the proxy variables in the sandbox's environment, and shows the URL", async () => {
    const sandbox = await cove.daytona().create({ outboundProxyUrl: `http://${OTHER_IP}:${8080}` });
    try {
      expect(sandbox.outboundProxyUrl).toBe(`http://${OTHER_IP}:8080`);
      expect(await sh(sandbox, 'echo $HTTP_PROXY $https_proxy')).toBe(`http://${OTHER_IP}:8080 http://${OTHER_IP}:8080`);
      // curl follows them: the test host on that port answers with its own address, whatever URL was asked.
      expect(await sh(sandbox, `curl -sS -m 5 http://${ALLOWED_IP}/`)).toBe(OTHER_IP);
    } finally {
      await sandbox.delete();
    }
  });
});
