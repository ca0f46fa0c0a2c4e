/**
 * Egress policy and the default egress guard, enforced by the host firewall, through `cove serve`, the default image
 * and the published SDK. Packets go only to test hosts in a network namespace this file makes (routed addresses that
 * stand for the internet, cloud metadata and a private network), to the host itself, and to the Debian mirror this
 * machine is allowed to reach.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import type { Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';
import { buildTestImage, prepareSandboxAssets, removeImage } from '../helpers/docker';
import { createTestHost, linkLocalOf, type TestHost } from '../helpers/netns';

/** Stand-ins for two internet hosts (TEST-NET-2), and the cloud metadata address. */
const PUBLIC = '198.51.100.7';
const OTHER = '198.51.100.8';
const METADATA = '169.254.169.254';
/** curl's "could not connect" at once (exit 7), not a timeout: the firewall rejects, it does not leave callers hanging. */
const REFUSED = /^failed: curl: \(7\) Failed to connect/;

let cove: TestCove;
let host: TestHost;
const images: string[] = [];

beforeAll(async () => {
  host = await createTestHost({ addresses: [PUBLIC, OTHER, METADATA] });
  cove = await startCove({ pool: 1 });
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  await host?.remove();
  for (const image of images) await removeImage(image);
});

/** What the sandbox gets from the test host at `address`: the address itself when it answered, else curl's error. */
async function reach(sandbox: Sandbox, address: string): Promise<string> {
  const res = await sandbox.process.executeCommand(`curl -sS -m 3 http://${address}:${host.port}/ 2>&1`);
  return res.exitCode === 0 ? res.result.trim() : `failed: ${res.result.trim()}`;
}

/** The rules of one sandbox address, as the host firewall holds them. */
const chainOf = (ip: string): string => {
  try {
    return execFileSync('iptables', ['-w', '5', '-S', `COVE-IP-${ip}`], { encoding: 'utf8' });
  } catch {
    return '';
  }
};

const ipOf = async (sandbox: Sandbox): Promise<string> => {
  const res = await sandbox.process.executeCommand("hostname -I | cut -d' ' -f1");
  return res.result.trim();
};

describe('egress', () => {
  it('the test hosts answer the host itself (so a refusal below is the firewall, not a missing route)', async () => {
    for (const address of [PUBLIC, OTHER, METADATA, host.linkAddress]) expect(await host.hostGet(address)).toBe(address);
  });

  it('an open sandbox reaches the internet but never cloud metadata, private networks or the host over IPv6', async () => {
    const sandbox = await cove.daytona().create();
    try {
      expect(sandbox.networkBlockAll).toBe(false);
      expect(await reach(sandbox, PUBLIC)).toBe(PUBLIC);
      expect(await reach(sandbox, METADATA)).toMatch(REFUSED);
      expect(await reach(sandbox, host.linkAddress)).toMatch(REFUSED);

      // IPv6: the bridge has a link-local address, and a host service listening on :: would answer on it.
      const listener = net.createServer((s) => s.end('host service\n')).listen(0, '::');
      await new Promise((r) => listener.once('listening', r));
      try {
        const port = (listener.address() as net.AddressInfo).port;
        const gateway = linkLocalOf('cove0');
        expect(gateway).toMatch(/^fe80:/);
        // Whether or not the engine gives the sandbox IPv6 at all (Docker 20.10 turns it off on IPv4-only networks),
        // the host's IPv6 firewall drops everything from the bridge, and the host service is not reached.
        const v6 = await sandbox.process.executeCommand('cat /proc/net/if_inet6 2>/dev/null | wc -l');
        console.log(`IPv6 addresses in the sandbox: ${v6.result.trim()}`);
        const res = await sandbox.process.executeCommand(`curl -sS -m 3 -g 'http://[${gateway}%25eth0]:${port}/' 2>&1`);
        expect(res.result).not.toContain('host service');
        expect(res.exitCode).not.toBe(0);
        for (const chain of ['INPUT', 'FORWARD']) {
          expect(execFileSync('ip6tables', ['-w', '5', '-S', chain], { encoding: 'utf8' })).toContain('-i cove0 -m comment --comment "cove: sandbox egress policy" -j DROP');
        }
      } finally {
        listener.close();
      }
    } finally {
      await sandbox.delete();
    }
  });

  it('networkBlockAll refuses every destination (the Debian mirror too) while names still resolve, and can be lifted', async () => {
    const daytona = cove.daytona();
    const sandbox = await daytona.create({ networkBlockAll: true });
    try {
      expect(sandbox.networkBlockAll).toBe(true);
      expect((await daytona.get(sandbox.id)).networkBlockAll).toBe(true);
      expect(await reach(sandbox, PUBLIC)).toMatch(REFUSED);
      const mirror = await sandbox.process.executeCommand('curl -sS -m 5 -o /dev/null -w "%{http_code}" http://deb.debian.org/debian/dists/bookworm/Release 2>&1');
      expect(mirror.exitCode).not.toBe(0);
      expect((await sandbox.process.executeCommand('getent hosts deb.debian.org')).exitCode).toBe(0);
      // The rules are the host's, keyed on the sandbox's address.
      expect(chainOf(await ipOf(sandbox))).toMatch(/-j REJECT/);

      await sandbox.updateNetworkSettings({ networkBlockAll: false });
      expect(sandbox.networkBlockAll).toBe(false);
      expect(await reach(sandbox, PUBLIC)).toBe(PUBLIC);
      const open = await sandbox.process.executeCommand('curl -sS -m 10 -o /dev/null -w "%{http_code}" http://deb.debian.org/debian/dists/bookworm/Release');
      expect(open.result).toBe('200');
    } finally {
      await sandbox.delete();
    }
  });

  it('an allow-list admits only its networks, changes on a running sandbox, and survives stop/start and a server restart', async () => {
    const daytona = cove.daytona();
    let sandbox = await daytona.create({ networkAllowList: `${PUBLIC}/32` });
    try {
      expect(sandbox.networkAllowList).toBe(`${PUBLIC}/32`);
      expect(await reach(sandbox, PUBLIC)).toBe(PUBLIC);
      expect(await reach(sandbox, OTHER)).toMatch(REFUSED);
      expect(await reach(sandbox, METADATA)).toMatch(REFUSED);

      await sandbox.updateNetworkSettings({ networkAllowList: `${OTHER}, 198.51.100.0/32` });
      expect(sandbox.networkAllowList).toBe(`${OTHER}/32,198.51.100.0/32`);
      expect(await reach(sandbox, OTHER)).toBe(OTHER);
      expect(await reach(sandbox, PUBLIC)).toMatch(REFUSED);

      await sandbox.stop();
      await sandbox.start();
      expect(await reach(sandbox, OTHER)).toBe(OTHER);
      expect(await reach(sandbox, PUBLIC)).toMatch(REFUSED);

      // A restarted server keeps the policy in force and in the DTO.
      const { dataDir, apiKey } = cove;
      await cove.stop();
      cove = await startCove({ pool: 1, dataDir, apiKey });
      sandbox = await cove.daytona().get(sandbox.id);
      expect(sandbox.networkAllowList).toBe(`${OTHER}/32,198.51.100.0/32`);
      expect(await reach(sandbox, PUBLIC)).toMatch(REFUSED);
      expect(await reach(sandbox, OTHER)).toBe(OTHER);
    } finally {
      const ip = await ipOf(sandbox).catch(() => '');
      await sandbox.delete();
      // Deleting the sandbox empties its address's rules.
      if (ip) expect(chainOf(ip)).not.toMatch(/-A COVE-IP/);
    }
  }, 180_000);

  it('root in the sandbox cannot lift the rules: no CAP_NET_ADMIN or raw sockets, and the rules are not in its namespace', async () => {
    const sandbox = await cove.daytona().create({ user: 'root', networkBlockAll: true });
    try {
      expect((await sandbox.process.executeCommand('id -u')).result.trim()).toBe('0');
      const tries = await sandbox.process.executeCommand(
        'python3 -c "import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW); print(\'raw ok\')\nexcept PermissionError: print(\'no raw\')"; ' +
          'python3 -c "import fcntl, socket, struct\ns = socket.socket()\ntry:\n fcntl.ioctl(s, 0x8916, struct.pack(\'16sH2s4s8s\', b\'eth0\', socket.AF_INET, b\'\\0\\0\', socket.inet_aton(\'172.18.250.250\'), b\'\\0\' * 8)); print(\'address changed\')\nexcept PermissionError: print(\'no address change\')"',
      );
      expect(tries.result).toBe('no raw\nno address change\n');
      expect(await reach(sandbox, PUBLIC)).toMatch(REFUSED);
    } finally {
      await sandbox.delete();
    }
  });

  it("holds an image's own entrypoint until the policy is in force", async () => {
    const { baseImage } = await prepareSandboxAssets();
    const image = await buildTestImage(
      `FROM ${baseImage}\nCMD ["bash", "-c", "(exec 3<>/dev/tcp/${PUBLIC}/${8080} && echo reached || echo refused) > /tmp/first-try 2>&1; sleep infinity"]\n`,
    );
    images.push(image);
    const daytona = cove.daytona();
    for (const [blockAll, expected] of [
      [true, 'refused'],
      [false, 'reached'],
    ] as const) {
      const sandbox = await daytona.create({ snapshot: image, networkBlockAll: blockAll });
      try {
        let first = '';
        for (let i = 0; i < 50 && !first; i++) {
          first = (await sandbox.process.executeCommand('cat /tmp/first-try 2>/dev/null')).result.trim();
          if (!first) await new Promise((r) => setTimeout(r, 100));
        }
        expect(first.split('\n').at(-1)).toBe(expected);
      } finally {
        await sandbox.delete();
      }
    }
  });

  it('refuses, by name, what it cannot enforce', async () => {
    const bad = async (body: object, pattern: RegExp, path = '/sandbox') => {
      const res = await cove.api(path, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
      const text = await res.text();
      expect(res.status, text).toBe(400);
      expect(JSON.parse(text).message).toMatch(pattern);
    };
    await bad({ networkAllowList: '1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6' }, /at most 5/);
    await bad({ networkAllowList: 'example.com' }, /"example\.com" is not an IPv4 network/);
    await bad({ networkAllowList: '10.0.0.0/8' }, /private range 10\.0\.0\.0\/8.*--allow-private-egress/);
    await bad({ networkAllowList: METADATA }, /169\.254\.0\.0\/16, which no sandbox may reach/);
    await bad({ networkBlockAll: true, networkAllowList: PUBLIC }, /not both/);

    const sandbox = await cove.daytona().create();
    try {
      await bad({}, /Give networkBlockAll, networkAllowList or domainAllowList/, `/sandbox/${sandbox.id}/network-settings`);
      await bad({ domainAllowList: '*.example.com/x' }, /domainAllowList/, `/sandbox/${sandbox.id}/network-settings`);
      await bad({ networkAllowList: '192.168.0.1' }, /private range/, `/sandbox/${sandbox.id}/network-settings`);
      // Nothing changed.
      expect((await cove.daytona().get(sandbox.id)).networkAllowList).toBeUndefined();
      expect(await reach(sandbox, PUBLIC)).toBe(PUBLIC);
    } finally {
      await sandbox.delete();
    }
  });

  it('with --allow-private-egress, sandboxes reach private networks but still never cloud metadata', async () => {
    const own = await startCove({ pool: 0, args: ['--allow-private-egress'] });
    try {
      const sandbox = await own.daytona().create({ networkAllowList: `${host.linkAddress}/32` });
      expect(await reach(sandbox, host.linkAddress)).toBe(host.linkAddress);
      expect(await reach(sandbox, PUBLIC)).toMatch(REFUSED);
      await sandbox.updateNetworkSettings({ networkBlockAll: false });
      expect(await reach(sandbox, host.linkAddress)).toBe(host.linkAddress);
      expect(await reach(sandbox, METADATA)).toMatch(REFUSED);
      await sandbox.delete();
    } finally {
      await own.destroy();
    }
  }, 120_000);
});
