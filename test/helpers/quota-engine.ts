import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

/** The second engine's own default bridge (an interface made for it, never the host's docker0). */
const DEFAULT_BRIDGE = 'cove-qe0';

/**
 * A Docker engine of a test's own whose data root is a file system that limits container sizes, so `--storage-opt
 * size=` works: xfs mounted with project quotas (overlay2), or — on a kernel built without XFS quota support, like
 * the one these machines run — btrfs (its own storage driver, quota groups). The file system lives in a file on a
 * loop device; the engine has its own socket, exec root and pid file, no default bridge and no iptables rules, so it
 * never touches the main engine. `remove()` takes it all down again.
 */
export interface QuotaEngine {
  /** DOCKER_HOST of the engine. */
  dockerHost: string;
  fs: 'xfs' | 'btrfs';
  /** Why xfs was not used, when it was not. */
  notXfs?: string;
  /** `docker` against this engine. */
  docker(args: string[], input?: Buffer | string): string;
  /** Copies images (by id or name) from the main engine, and tags them here. */
  load(images: { id: string; tag: string }[]): Promise<void>;
  /** Stops the engine and removes its containers, network rules of `bridge`, mount, loop device and files. */
  remove(bridge?: string): Promise<void>;
}

const run = (cmd: string, args: string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: opts.input, env: opts.env, maxBuffer: 64 * 1024 * 1024 }).trim();

const has = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Why this kernel cannot mount xfs with project quotas, if its configuration says (else the mount's own error). */
function xfsQuotaMissing(mountError: string): string {
  try {
    const config = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    if (/^# CONFIG_XFS_QUOTA is not set$/m.test(config)) return 'this kernel is built without XFS quota support (CONFIG_XFS_QUOTA is not set)';
  } catch {
    // no configuration to read
  }
  return `mount -o pquota failed: ${mountError}`;
}

export async function startQuotaEngine(opts: { sizeGiB?: number } = {}): Promise<QuotaEngine> {
  const missing = [
    ['mkfs.xfs', 'xfsprogs'],
    ['mkfs.btrfs', 'btrfs-progs'],
    ['btrfs', 'btrfs-progs'],
    ['losetup', 'mount'],
    ['dockerd', 'docker.io'],
  ].filter(([cmd]) => !has(cmd));
  if (missing.length || process.getuid?.() !== 0) {
    throw new Error(
      `The storage-opt disk test makes a file system on a loop device and runs a second Docker engine: it needs root and ${missing.map(([, p]) => p).join(' ') || 'nothing more'} ` +
        `(\`node scripts/test-setup.mjs\` installs them, or \`sudo apt-get install -y ${missing.map(([, p]) => p).join(' ')}\`)`,
    );
  }
  const id = randomBytes(3).toString('hex');
  // Short: unix socket paths (the engine's containerd socket lives under the exec root) must stay under 108 bytes.
  const runDir = `/run/cove-disk-${id}`;
  const image = path.join(os.tmpdir(), `cove-disk-${id}.img`);
  const mountDir = path.join(runDir, 'fs');
  const dockerHost = `unix://${runDir}/docker.sock`;
  const env = { ...process.env, DOCKER_HOST: dockerHost };
  let loop: string | undefined;
  let mounted = false;
  let dockerdPid: number | undefined;

  const engine: QuotaEngine = {
    dockerHost,
    fs: 'xfs',
    docker: (args, input) => run('docker', args, { input, env }),
    async load(images) {
      // One stream from the main engine's save into this engine's load (the layers are shared by the images).
      await new Promise<void>((resolve, reject) => {
        const save = spawn('docker', ['save', ...images.map((i) => i.id)], { stdio: ['ignore', 'pipe', 'pipe'] });
        const load = spawn('docker', ['load', '-q'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
        let errors = '';
        save.stderr.on('data', (d) => (errors += d));
        load.stderr.on('data', (d) => (errors += d));
        save.stdout.pipe(load.stdin);
        save.on('exit', (code) => code && reject(new Error(`docker save exited with ${code}: ${errors}`)));
        load.on('exit', (code) => (code ? reject(new Error(`docker load exited with ${code}: ${errors}`)) : resolve()));
      });
      for (const i of images) engine.docker(['tag', i.id, i.tag]);
    },
    async remove(bridge) {
      const problems: string[] = [];
      const attempt = (what: string, fn: () => void) => {
        try {
          fn();
        } catch (err) {
          problems.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
        }
      };
      let subnet = '';
      if (dockerdPid) {
        attempt('remove the containers', () => {
          const ids = engine.docker(['ps', '-aq']).split('\n').filter(Boolean);
          if (ids.length) engine.docker(['rm', '-f', ...ids]);
        });
        attempt('remove the networks', () => {
          for (const name of engine.docker(['network', 'ls', '--filter', 'type=custom', '--format', '{{.Name}}']).split('\n').filter(Boolean)) {
            subnet ||= engine.docker(['network', 'inspect', name, '--format', '{{range .IPAM.Config}}{{.Subnet}} {{end}}']).split(' ')[0];
            engine.docker(['network', 'rm', name]);
          }
        });
        await stopProcess(dockerdPid, `${runDir}/docker.sock`).catch((err: Error) => problems.push(`stop dockerd: ${err.message}`));
      }
      if (bridge) attempt('remove the firewall rules', () => removeBridgeRules(bridge, subnet));
      attempt('remove its default bridge', () => existsSync(`/sys/class/net/${DEFAULT_BRIDGE}`) && run('ip', ['link', 'del', DEFAULT_BRIDGE]));
      // Whatever the engine left mounted under its folders (network namespaces, container roots), deepest first.
      const mounts = readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
        .filter((m): m is string => !!m && (m === runDir || m.startsWith(`${runDir}/`)))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts) {
        attempt(`unmount ${m}`, () => {
          try {
            run('umount', [m]);
          } catch {
            run('umount', ['-l', m]);
          }
        });
      }
      mounted = false;
      if (loop) attempt('detach the loop device', () => run('losetup', ['-d', loop!]));
      attempt('remove the files', () => {
        rmSync(image, { force: true });
        rmSync(runDir, { recursive: true, force: true });
      });
      if (problems.length) throw new Error(`The quota engine was not removed cleanly: ${problems.join('; ')}`);
    },
  };

  const makeFs = (kind: 'xfs' | 'btrfs'): string | undefined => {
    truncateSync(image, 0);
    truncateSync(image, (opts.sizeGiB ?? 6) * 1024 ** 3);
    run(kind === 'xfs' ? 'mkfs.xfs' : 'mkfs.btrfs', ['-q', '-f', image]);
    loop = run('losetup', ['-f', '--show', image]);
    try {
      run('mount', [...(kind === 'xfs' ? ['-o', 'pquota'] : []), loop, mountDir]);
      mounted = true;
      return undefined;
    } catch (err) {
      run('losetup', ['-d', loop]);
      loop = undefined;
      return ((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
    }
  };

  try {
    mkdirSync(mountDir, { recursive: true });
    closeSync(openSync(image, 'w'));
    const xfsError = makeFs('xfs');
    if (xfsError !== undefined) {
      engine.fs = 'btrfs';
      engine.notXfs = xfsQuotaMissing(xfsError);
      const btrfsError = makeFs('btrfs');
      if (btrfsError !== undefined) throw new Error(`Neither xfs with project quotas (${engine.notXfs}) nor btrfs could be mounted: ${btrfsError}`);
    }
    if (!mounted) throw new Error('no file system was mounted');
    // As on a host set up for it: quota groups on from the start, so every image layer is accounted as it is written.
    // (Enabled later — Docker does so at the first size-limited container — a rescan of what exists runs in the
    // background, and a container snapshotted before it ends is charged only for what it writes, not its image.)
    if (engine.fs === 'btrfs') run('btrfs', ['quota', 'enable', mountDir]);
    if (!existsSync(`/sys/class/net/${DEFAULT_BRIDGE}`)) run('ip', ['link', 'add', DEFAULT_BRIDGE, 'type', 'bridge']);
    const log = openSync(path.join(runDir, 'dockerd.log'), 'a');
    const child = spawn(
      'dockerd',
      [
        '--data-root', path.join(mountDir, 'docker'),
        '--exec-root', path.join(runDir, 'exec'),
        '--pidfile', path.join(runDir, 'docker.pid'),
        '-H', dockerHost,
        '--storage-driver', engine.fs === 'xfs' ? 'overlay2' : 'btrfs',
        // A default bridge of its own, and no iptables rules: nothing that could disturb the main engine's networks.
        // (Not --bridge=none: an engine started so deletes the host's docker0, the main engine's default bridge.)
        `--bridge=${DEFAULT_BRIDGE}`, '--iptables=false', '--ip-masq=false',
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    closeSync(log);
    child.unref();
    dockerdPid = child.pid;
    const until = Date.now() + 60_000;
    for (;;) {
      try {
        engine.docker(['info', '--format', '{{.Driver}}']);
        break;
      } catch (err) {
        if (child.exitCode !== null || Date.now() > until) {
          throw new Error(`The quota engine did not start: ${(err as Error).message}\n${readFileSync(path.join(runDir, 'dockerd.log'), 'utf8').slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    return engine;
  } catch (err) {
    await engine.remove().catch(() => {});
    throw err;
  }
}

/** SIGTERM to the process (only when it is the engine of `socket`), SIGKILL after 20 s. */
async function stopProcess(pid: number, socket: string): Promise<void> {
  const alive = () => existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(socket);
  if (!alive()) return;
  process.kill(pid, 'SIGTERM');
  const until = Date.now() + 20_000;
  while (alive() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, 'SIGKILL');
}

/**
 * Removes the firewall rules Cove installed for a bridge of the quota engine: the jumps to its chains from INPUT and
 * FORWARD (IPv4 and IPv6), its chains, and the chains of the addresses of its subnet.
 */
function removeBridgeRules(bridge: string, subnet: string): void {
  for (const tool of ['iptables', 'ip6tables']) {
    for (const base of ['INPUT', 'FORWARD']) {
      const rules = run(tool, ['-w', '5', '-S', base]).split('\n');
      for (const rule of rules) {
        if (!rule.includes(` -i ${bridge} `)) continue;
        const args = (rule.match(/"[^"]*"|\S+/g) ?? []).map((a) => a.replace(/^"(.*)"$/, '$1'));
        run(tool, ['-w', '5', '-D', ...args.slice(1)]);
      }
    }
  }
  const chains = run('iptables', ['-w', '5', '-S']).split('\n').filter((l) => l.startsWith('-N ')).map((l) => l.slice(3));
  const prefix = subnet ? subnet.split('.').slice(0, 2).join('.') + '.' : undefined;
  const ours = chains.filter((c) => c === `COVE-IN-${bridge}`.slice(0, 28) || c === `COVE-EG-${bridge}`.slice(0, 28) || (prefix && c.startsWith(`COVE-IP-${prefix}`) && inSubnet(c.slice(8), subnet)));
  for (const chain of ours) run('iptables', ['-w', '5', '-F', chain]);
  for (const chain of ours) run('iptables', ['-w', '5', '-X', chain]);
  // Docker removes the bridge with its network; a killed engine may not have.
  if (existsSync(`/sys/class/net/${bridge}`)) run('ip', ['link', 'del', bridge]);
}

function inSubnet(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const n = (a: string) => a.split('.').reduce((acc, x) => acc * 256 + Number(x), 0);
  const size = 2 ** (32 - Number(bits));
  return Math.floor(n(ip) / size) === Math.floor(n(base) / size);
}
