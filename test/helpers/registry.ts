import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Debian's CNCF distribution registry (package docker-registry) and apache2-utils' htpasswd, which this helper drives. */
const REGISTRY_BIN = 'docker-registry';
const HTPASSWD_BIN = 'htpasswd';

export interface TestRegistry {
  /** `127.0.0.1:PORT`: where images are pushed and pulled (the engine allows plain HTTP for 127.0.0.0/8). */
  host: string;
  /** The credentials it demands, when it has any. */
  auth?: { username: string; password: string };
  /**
   * Pushes a local image as `host/name:tag` (logged in, for a registry with credentials, through a DOCKER_CONFIG of its
   * own so the host's is untouched), then removes the local tag so that a later pull must fetch it. Returns the ref.
   */
  push(localImage: string, name: string, tag?: string): string;
  /** Stops the registry, removes its storage and every local tag of an image pushed to it. */
  close(): Promise<void>;
}

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Throws, saying what to install, when the registry (or htpasswd, for credentials) is missing: never a silent skip. */
function requireRegistry(withAuth: boolean): void {
  const missing = [!has(REGISTRY_BIN) && 'docker-registry', withAuth && !has(HTPASSWD_BIN) && 'apache2-utils'].filter(Boolean);
  if (missing.length) throw new Error(`These tests need a container registry on loopback: apt-get install -y ${missing.join(' ')} (scripts/test-setup.mjs does)`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Waits until the registry answers `/v2/` (200 open, 401 with credentials), or its process ends. */
async function ready(host: string, child: ChildProcess, output: () => string): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    const status = await fetch(`http://${host}/v2/`)
      .then((r) => r.status)
      .catch(() => 0);
    if (status === 200 || status === 401) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the registry on ${host} did not answer in 30 s:\n${output().slice(-2000)}`);
}

/**
 * A real registry (distribution 2.8) on 127.0.0.1 at a free port with its storage in a temp dir; with `auth`, every
 * request needs those credentials (an htpasswd file with a bcrypt hash, made by `htpasswd -B`).
 */
export async function startRegistry(opts: { auth?: { username: string; password: string } } = {}): Promise<TestRegistry> {
  requireRegistry(!!opts.auth);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-registry-'));
  const dockerConfig = path.join(dir, 'docker-config');
  const pushed: string[] = [];
  let auth = '';
  if (opts.auth) {
    const line = execFileSync(HTPASSWD_BIN, ['-Bbn', opts.auth.username, opts.auth.password], { encoding: 'utf8' }).trim();
    writeFileSync(path.join(dir, 'htpasswd'), `${line}\n`);
    auth = `auth:\n  htpasswd:\n    realm: cove-test\n    path: ${path.join(dir, 'htpasswd')}\n`;
  }
  let child: ChildProcess | undefined;
  let host = '';
  let out = '';
  // The port is free when asked for, and may be taken before the registry binds it: another one then.
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    host = `127.0.0.1:${await freePort()}`;
    const config = path.join(dir, 'config.yml');
    writeFileSync(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, 'data')}\nhttp:\n  addr: ${host}\n  secret: cove-test-${path.basename(dir)}\n${auth}`);
    out = '';
    const started = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.stdout.on('data', (d) => (out += d));
    started.stderr.on('data', (d) => (out += d));
    if (await ready(host, started, () => out)) child = started;
    else if (!/address already in use/.test(out)) throw new Error(`the registry exited:\n${out.slice(-2000)}`);
  }
  if (!child) throw new Error(`the registry found no free port:\n${out.slice(-2000)}`);
  const running = child;

  const docker = (args: string[], input?: string) =>
    execFileSync('docker', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, DOCKER_CONFIG: dockerConfig } });
  if (opts.auth) docker(['login', '--username', opts.auth.username, '--password-stdin', host], opts.auth.password);

  return {
    host,
    auth: opts.auth,
    push(localImage, name, tag = '1') {
      const ref = `${host}/${name}:${tag}`;
      pushed.push(ref);
      docker(['tag', localImage, ref]);
      docker(['push', ref]);
      docker(['rmi', ref]);
      return ref;
    },
    async close() {
      if (running.exitCode === null) {
        const exited = new Promise((resolve) => running.once('exit', resolve));
        running.kill();
        await exited;
      }
      // Tags of pushed images that a test pulled back (the engine keeps them under the same names).
      for (const ref of pushed) spawnSync('docker', ['rmi', ref], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
