import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import { engineStatus, toRuntimeError } from './docker-errors';
import { runCommand } from '../../../lib/run-command';
import { LABEL_MANAGED, RuntimeError, type NetworkInfo } from './types';

/** Bridge option that makes Docker drop traffic between containers of the network (FORWARD -i br -o br DROP). */
const ICC_OPTION = 'com.docker.network.bridge.enable_icc';
const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';
/** Tag on every firewall rule Cove installs, so people (and `iptables -S | grep`) can tell them apart. */
export const FIREWALL_COMMENT = 'cove: sandboxes may not open connections to the host';

/**
 * The host interface name of the network's bridge: `<network>0` when it fits Linux's 15 characters, else a short hash.
 * Fixed (not Docker's random `br-<id>`) so that the firewall rules keep matching across network re-creation.
 */
export function defaultBridgeName(network: string): string {
  const name = `${network}0`;
  if (name.length <= 15 && /^[A-Za-z0-9_.-]+$/.test(name)) return name;
  return `cove-${createHash('sha256').update(network).digest('hex').slice(0, 8)}`;
}

/**
 * Creates the bridge network (inter-container traffic disabled, fixed bridge name, labelled as Cove's) unless it
 * exists; an existing network of that name must have ICC disabled, or this throws rather than run sandboxes that could
 * reach each other. Safe against concurrent callers in other processes (the engine refuses the duplicate; we re-read).
 */
export async function ensureBridgeNetwork(docker: Dockerode, name: string, bridge: string): Promise<NetworkInfo> {
  let info = await inspectNetwork(docker, name);
  if (!info) {
    try {
      await docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Internal: false,
        Attachable: false,
        Labels: { [LABEL_MANAGED]: '1' },
        Options: { [ICC_OPTION]: 'false', [BRIDGE_NAME_OPTION]: bridge },
      });
    } catch (err) {
      // Another process created it between our inspect and create: use theirs.
      if (engineStatus(err) !== 409) throw toRuntimeError(err, `create the network ${name}`);
    }
    info = await inspectNetwork(docker, name);
    if (!info) throw new RuntimeError('NETWORK_SETUP', `The network ${name} vanished right after it was created`);
  }
  const options = info.Options ?? {};
  if (info.Driver !== 'bridge' || options[ICC_OPTION] !== 'false') {
    throw new RuntimeError(
      'NETWORK_SETUP',
      `The Docker network ${name} exists but is not a bridge with inter-container traffic disabled; ` +
        `remove it (\`docker network rm ${name}\`) and Cove will re-create it`,
    );
  }
  const ipam = info.IPAM?.Config?.find((c) => c.Subnet && !c.Subnet.includes(':'));
  return {
    id: info.Id,
    name,
    bridge: options[BRIDGE_NAME_OPTION] ?? `br-${info.Id.slice(0, 12)}`,
    subnet: ipam?.Subnet ?? '',
    gateway: ipam?.Gateway ?? '',
  };
}

async function inspectNetwork(docker: Dockerode, name: string): Promise<Dockerode.NetworkInspectInfo | undefined> {
  try {
    return await docker.getNetwork(name).inspect();
  } catch (err) {
    if (engineStatus(err) === 404) return undefined;
    throw toRuntimeError(err, `inspect the network ${name}`);
  }
}

/**
 * Installs (idempotently) the rules that keep sandboxes away from the host's own services: packets that arrive from
 * the bridge and are addressed to the host (the INPUT chain; any of its addresses, not only the gateway) are dropped
 * unless they belong to a connection the host opened, or the nat table redirected them to Cove's egress services (a
 * domain allow-list's web ports and DNS; see egress-policy.ts). The host still reaches containers (its SYNs leave through
 * OUTPUT; the replies are ESTABLISHED). Traffic the host forwards (sandbox → internet) is not INPUT and is untouched;
 * sandbox → sandbox is dropped by Docker itself because ICC is disabled.
 *
 * The rules live in a chain of their own (COVE-IN-<bridge>), jumped to from the top of INPUT, so their order is ours
 * whatever else edits INPUT. `-w` waits for the xtables lock that dockerd and other processes also take.
 */
export async function ensureHostIsolation(bridge: string): Promise<void> {
  const chain = `COVE-IN-${bridge}`.slice(0, 28);
  const comment = ['-m', 'comment', '--comment', FIREWALL_COMMENT];
  // Accepted ahead of the drop: replies, and connections the nat table redirected to the host (the egress policies'
  // REDIRECT of web ports and DNS to Cove's egress services; nothing else DNATs bridge traffic to the host).
  const accepts: string[][] = [
    [chain, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', ...comment, '-j', 'ACCEPT'],
    [chain, '-m', 'conntrack', '--ctstate', 'DNAT', ...comment, '-j', 'ACCEPT'],
  ];
  const drop = [chain, ...comment, '-j', 'DROP'];
  const jump = ['INPUT', '-i', bridge, ...comment, '-j', chain];

  try {
    await iptables(['-n', '-L', chain]);
  } catch {
    try {
      await iptables(['-N', chain]);
    } catch (err) {
      // A concurrent process may have created it; anything else is real.
      if (!/exists/i.test(String((err as { stderr?: string }).stderr ?? err))) throw firewallError(err);
    }
  }
  for (const rule of accepts) if (!(await ruleExists(rule))) await iptablesOrThrow(['-I', chain, '1', ...rule.slice(1)]);
  if (!(await ruleExists(drop))) await iptablesOrThrow(['-A', ...drop]);
  if (!(await ruleExists(jump))) await iptablesOrThrow(['-I', 'INPUT', '1', ...jump.slice(1)]);
}

async function iptables(args: string[]): Promise<void> {
  await runCommand('iptables', ['-w', '5', ...args], { timeout: 15_000 });
}

async function iptablesOrThrow(args: string[]): Promise<void> {
  try {
    await iptables(args);
  } catch (err) {
    throw firewallError(err);
  }
}

async function ruleExists(rule: string[]): Promise<boolean> {
  try {
    await iptables(['-C', ...rule]);
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') throw firewallError(err);
    return false;
  }
}

function firewallError(err: unknown): RuntimeError {
  const e = err as { code?: unknown; stderr?: string; message?: string };
  const hint =
    e.code === 'ENOENT'
      ? 'iptables is not installed (`apt-get install iptables`)'
      : 'the proxy must run as root (or with CAP_NET_ADMIN) to install them';
  return new RuntimeError(
    'NETWORK_SETUP',
    `Could not install the firewall rules that keep sandboxes away from host services: ${hint}`,
    (e.stderr || e.message || String(err)).trim(),
    { cause: err },
  );
}
