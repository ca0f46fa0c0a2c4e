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

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cove-egress-names-'));
  const certs = makeCertificates();
  ca = certs.ca;
  host = await createTestHost({ addresses: [ALLOWED_IP, OTHER_IP], web: { cert: certs.cert, key: certs.key } });
  dns = await startTestDns();
  cove = await startCove({ pool: 1, env: { COVE_DNS_SERVER: `127.0.0.1:${dns.port}` } });
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
      expect(await get(sandbox, 'http://allowed.test/a?b=1')).toMatchObject({ address: ALLOWED_IP, host: 'allowed.test', path: '/a?b=1' });
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
      expect(seen((e) => e.protocol === 'tls' && e.host === '' && /no server name/.test(e.reason ?? ''))).toBe(true);
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
      cove = await startCove({ pool: 1, dataDir, apiKey, env: { COVE_DNS_SERVER: `127.0.0.1:${dns.port}` } });
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
    await bad({ outboundProxyUrl: 'http://proxy.example.com:3128', domainAllowList: 'example.com' }, /outboundProxyUrl with domainAllowList is not supported/);
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

describe('outboundProxyUrl', () => {
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
