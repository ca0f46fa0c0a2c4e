/**
 * The SSH gateway through a real `cove serve` and a real sandbox, beside OpenSSH's own sshd on loopback in the same
 * run (started here with a temporary host key and authorized key, as root):
 * - connection set-up: `ssh … true`, p50 over 20 runs;
 * - throughput: `ssh … 'head -c 1G /dev/zero' > /dev/null`, MB/s (median of 3).
 * Run with `npx tsx bench/ssh.ts`. Installs openssh-server when sshd is missing (root only).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startCove } from '../test/helpers/cove';
import { printTable, stats, timeRuns } from './lib';

const SETUP_RUNS = 20;
const THROUGHPUT_RUNS = 3;
const BYTES = 1024 ** 3;
const SSHD = '/usr/sbin/sshd';
/**
 * The account the direct sshd logs into: created for the run with /bin/sh and a temporary home, so that no dotfiles of
 * a real account (root's shell start-up here runs pyenv, seconds per login) weigh on the baseline.
 */
const BENCH_USER = 'cove-bench-ssh';
const COMMON = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes'];

function ensureSshd(): void {
  if (existsSync(SSHD)) return;
  if (process.getuid?.() !== 0) throw new Error('sshd is missing: sudo apt-get install -y openssh-server');
  execFileSync('apt-get', ['install', '-y', '-qq', 'openssh-server'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

/** Runs ssh with its stdout to /dev/null; resolves with the exit code. */
function ssh(args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('close', resolve);
  });
}

async function throughput(args: string[]): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < THROUGHPUT_RUNS; i++) {
    const t = process.hrtime.bigint();
    const code = await ssh([...args, `head -c ${BYTES} /dev/zero`]);
    if (code !== 0) throw new Error(`ssh exited with ${code}`);
    samples.push(BYTES / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9));
  }
  return stats(samples).p50;
}

async function startSshd(dir: string): Promise<{ port: number; key: string; child: ChildProcess }> {
  ensureSshd();
  // A previous run that was killed may have left its account behind.
  try {
    execFileSync('userdel', [BENCH_USER], { stdio: 'ignore' });
  } catch {
    /* none */
  }
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client')]);
  execFileSync('cp', [path.join(dir, 'client.pub'), path.join(dir, 'authorized_keys')]);
  const home = path.join(dir, 'home');
  mkdirSync(home);
  execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', home, '--shell', '/bin/sh', BENCH_USER]);
  execFileSync('chown', [BENCH_USER, home]);
  // A new system account is locked ('!'), which sshd refuses without PAM; '*' allows key logins only.
  execFileSync('usermod', ['-p', '*', BENCH_USER]);
  // sshd reads the authorized keys as that user.
  execFileSync('chmod', ['755', dir]);
  execFileSync('chmod', ['644', path.join(dir, 'authorized_keys')]);
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PermitRootLogin no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'UseDNS no',
      'Subsystem sftp internal-sftp',
    ].join('\n') + '\n',
  );
  // sshd's privilege separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`sshd did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, key: path.join(dir, 'client'), child };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-bench-ssh-'));
  // Port 0 for the gateway: other Cove servers on this machine may hold the default port.
  process.env.COVE_SSH_PORT = '0';
  const cove = await startCove({ pool: 1 });
  let sshd: ChildProcess | undefined;
  try {
    const gatewayPort = Number(/SSH port (\d+)/.exec(cove.output())?.[1]);
    const created = await (await cove.api('/sandbox', { method: 'POST', body: '{}' })).json();
    const { token } = await (await cove.api(`/sandbox/${created.id}/ssh-access`, { method: 'POST' })).json();
    const gateway = ['-p', String(gatewayPort), ...COMMON, `${token}@127.0.0.1`];

    const direct = await startSshd(dir);
    sshd = direct.child;
    const openssh = ['-p', String(direct.port), ...COMMON, '-i', direct.key, '-o', 'IdentitiesOnly=yes', `${BENCH_USER}@127.0.0.1`];

    const setupGateway = await timeRuns(() => ssh([...gateway, 'true']), SETUP_RUNS, 3);
    const setupDirect = await timeRuns(() => ssh([...openssh, 'true']), SETUP_RUNS, 3);
    const mbGateway = await throughput(gateway);
    const mbDirect = await throughput(openssh);

    printTable('SSH gateway (OpenSSH client → cove gateway → sandbox agent) vs OpenSSH sshd on loopback', [
      { name: 'connection set-up `ssh … true` (p50)', value: setupGateway.p50, unit: 'ms', baseline: setupDirect.p50, baselineName: 'sshd', target: '≤ 300 ms', ok: setupGateway.p50 <= 300 },
      {
        name: "throughput `ssh … 'head -c 1G /dev/zero'`",
        value: mbGateway,
        unit: 'MB/s',
        baseline: mbDirect,
        baselineName: 'sshd',
        target: '≥ 50% of sshd',
        ok: mbGateway >= 0.5 * mbDirect,
      },
    ]);
    await cove.api(`/sandbox/${created.id}`, { method: 'DELETE' });
  } finally {
    sshd?.kill();
    try {
      execFileSync('userdel', [BENCH_USER], { stdio: 'ignore' });
    } catch {
      /* never created */
    }
    await cove.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
