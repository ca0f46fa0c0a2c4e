import { readFileSync } from 'node:fs';
import { runCommand } from '../../../lib/run-command';
import { RuntimeError } from './types';
import {
  addressRestoreScript,
  bridgeDnsRules,
  bridgeEgressChain,
  bridgeGuardRules,
  bridgeNatChain,
  resolversOf,
  EGRESS_COMMENT,
  type EgressPolicy,
  type EgressPorts,
} from './egress-policy';

/**
 * The name servers Docker's embedded DNS forwards to: the host's resolv.conf, or, when that names only a local stub
 * (systemd-resolved), the stub's upstream file, as Docker itself does.
 */
export function hostResolvers(): string[] {
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  const servers = resolversOf(read('/etc/resolv.conf'));
  return servers.length ? servers : resolversOf(read('/run/systemd/resolve/resolv.conf'));
}

/**
 * The host firewall that enforces sandboxes' egress policies (rules in egress-policy.ts). Lives in the host's
 * network namespace, where nothing in a container, root included, can change it; the rules outlive the proxy, so a
 * restarted server finds them in force. Every change is one `iptables-restore --noflush` transaction, applied in
 * order.
 */
export function createEgressFirewall(opts: { bridge: string; allowPrivate: boolean; resolvers: string[] }) {
  const { bridge, allowPrivate } = opts;
  const chain = bridgeEgressChain(bridge);
  const natChain = bridgeNatChain(bridge);
  /** Addresses whose chains the bridge's chains already jump to, in the filter and the nat table. */
  const jumps = new Set<string>();
  const natJumps = new Set<string>();
  /** Where the egress services listen, once they do (redirecting policies need it). */
  let ports: EgressPorts | undefined;
  let ready: Promise<void> | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  async function setUp(): Promise<void> {
    // The bridge's chain, with its guard rules first (added once; other servers on this host share it).
    if (!(await succeeds('iptables', ['-n', '-L', chain]))) await tolerateExists(['-N', chain]);
    const listed = await iptables(['-S', chain]);
    // Guard rules, then the DNS exceptions ahead of them (each inserted first when missing).
    for (const rule of [...bridgeGuardRules(bridge), ...bridgeDnsRules(bridge, opts.resolvers)]) {
      const args = splitRule(rule).slice(2);
      if (!(await succeeds('iptables', ['-C', chain, ...args]))) await iptables(['-I', chain, '1', ...args]);
    }
    // The bridge's nat chain, from the top of PREROUTING: redirects of sandboxes' traffic to the egress services.
    if (!(await succeeds('iptables', ['-t', 'nat', '-n', '-L', natChain]))) await tolerateExists(['-t', 'nat', '-N', natChain]);
    const listedNat = await iptables(['-t', 'nat', '-S', natChain]);
    for (const match of listedNat.matchAll(/-s (\d+\.\d+\.\d+\.\d+)\/32 .*-j COVE-NA-/g)) natJumps.add(match[1]);
    for (const match of listed.matchAll(/-s (\d+\.\d+\.\d+\.\d+)\/32 .*-j COVE-IP-/g)) jumps.add(match[1]);
    const natJump = ['PREROUTING', '-i', bridge, '-m', 'comment', '--comment', EGRESS_COMMENT, '-j', natChain];
    if (!(await succeeds('iptables', ['-t', 'nat', '-C', ...natJump]))) await iptables(['-t', 'nat', '-I', 'PREROUTING', '1', ...natJump.slice(1)]);
    // Every packet a sandbox sends beyond the bridge passes the chain before Docker's own forwarding rules.
    const jump = ['FORWARD', '-i', bridge, '-m', 'comment', '--comment', EGRESS_COMMENT, '-j', chain];
    if (!(await succeeds('iptables', ['-C', ...jump]))) await iptables(['-I', 'FORWARD', '1', ...jump.slice(1)]);
    // IPv6: the sandbox network has no IPv6 addresses or routes, but the bridge has a link-local one, through
    // which a sandbox could reach host services listening on ::. Nothing IPv6 from the bridge is let in or through.
    for (const base of ['INPUT', 'FORWARD']) {
      const drop = [base, '-i', bridge, '-m', 'comment', '--comment', EGRESS_COMMENT, '-j', 'DROP'];
      if (!(await succeeds('ip6tables', ['-C', ...drop]))) await ip6tables(['-I', base, '1', ...drop.slice(1)]);
    }
  }

  return {
    /** Installs the bridge's chain and jumps (idempotent; once per process, retried after a failure). */
    ensure(): Promise<void> {
      ready ??= setUp().catch((err) => {
        ready = undefined;
        throw firewallError(err);
      });
      return ready;
    },

    /** Says where the egress services listen; policies applied from now on redirect there. */
    setPorts(next: EgressPorts): void {
      ports = next;
    },

    /**
     * Gives `ip` exactly `policy` (undefined: the address is no sandbox's any more, and its chain is emptied).
     * Resolves once the kernel enforces it. `unless`, asked in turn right before the rules are written: leave them.
     */
    apply(ip: string, policy: EgressPolicy | undefined, unless?: () => Promise<boolean>): Promise<void> {
      const next = queue.then(async () => {
        await this.ensure();
        if (await unless?.()) return;
        const script = addressRestoreScript({ bridge, ip, policy, allowPrivate, addJump: !jumps.has(ip), addNatJump: !natJumps.has(ip), ports });
        try {
          await restore(script);
        } catch (err) {
          throw firewallError(err);
        }
        jumps.add(ip);
        natJumps.add(ip);
      });
      queue = next.catch(() => {});
      return next;
    },
  };
}

/** A rule line as arguments (the comment is the only quoted argument). */
function splitRule(rule: string): string[] {
  return (rule.match(/"[^"]*"|\S+/g) ?? []).map((a) => a.replace(/^"(.*)"$/, '$1'));
}

async function iptables(args: string[]): Promise<string> {
  return (await runCommand('iptables', ['-w', '5', ...args], { timeout: 15_000 })).stdout;
}

async function ip6tables(args: string[]): Promise<string> {
  return (await runCommand('ip6tables', ['-w', '5', ...args], { timeout: 15_000 })).stdout;
}

async function succeeds(command: 'iptables' | 'ip6tables', args: string[]): Promise<boolean> {
  try {
    await runCommand(command, ['-w', '5', ...args], { timeout: 15_000 });
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') throw err;
    return false;
  }
}

async function tolerateExists(args: string[]): Promise<void> {
  try {
    await iptables(args);
  } catch (err) {
    // A concurrent server created it first.
    if (!/exists/i.test(String((err as { stderr?: string }).stderr ?? err))) throw err;
  }
}

async function restore(script: string): Promise<void> {
  await runCommand('iptables-restore', ['-w', '5', '--noflush'], { input: script, timeout: 15_000 });
}

function firewallError(err: unknown): RuntimeError {
  if (err instanceof RuntimeError) return err;
  const e = err as { code?: unknown; stderr?: string; message?: string };
  const hint =
    e.code === 'ENOENT'
      ? 'iptables is not installed (`apt-get install iptables`)'
      : 'the proxy must run as root (or with CAP_NET_ADMIN) to install them';
  return new RuntimeError('NETWORK_SETUP', `Could not install the firewall rules of sandbox egress policies: ${hint}`, (e.stderr || e.message || String(err)).trim(), {
    cause: err,
  });
}
