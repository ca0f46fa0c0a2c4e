/**
 * gVisor: the core of the SDK suite through a real `cove serve --runtime runsc` and the published Daytona SDK 0.218 —
 * files, exec, sessions, PTY, git, preview, SSH (the real OpenSSH client), stop/start — plus what isolation promises
 * under runsc: the egress firewall still holds (its rules are keyed on the sandbox's bridge address, and gVisor's `--network=host`
 * sends from the container's own namespace), and a memory limit holds. Packets go only to a test host in a network
 * namespace this file makes, to loopback and to the sandboxes. Needs runsc (`scripts/test-setup.mjs` installs it).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { seedRepositoryCommand } from '../helpers/git-server';
import { createTestHost, type TestHost } from '../helpers/netns';
import { previewFetch, toolbox } from '../helpers/preview';
import { runProgram, SSH_CLIENT_OPTS, sshCommand, sshPortOf } from '../helpers/ssh-client';

/** Stand-in for an internet host (TEST-NET-2), owned by the test host. */
const PUBLIC = '198.51.100.9';
/** curl's "could not connect" at once (exit 7): the firewall rejects, it does not leave callers hanging. */
const REFUSED = /^failed: curl: \(7\) Failed to connect/;
const HOME = '/home/cove';

let cove: TestCove;
let host: TestHost;
let sshPort: number;
let work: string;
/** The sandbox most tests share (from the warm pool). */
let box: Sandbox;

function requireRunsc(): void {
  try {
    execFileSync('runsc', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error("These tests need gVisor's runsc: install it with `sudo apt-get install -y runsc` (scripts/test-setup.mjs does under CI)");
  }
}

beforeAll(async () => {
  requireRunsc();
  work = mkdtempSync(path.join(os.tmpdir(), 'cove-runsc-test-'));
  host = await createTestHost({ addresses: [PUBLIC] });
  cove = await startCove({ pool: 2, args: ['--runtime', 'runsc'] });
  sshPort = sshPortOf(cove);
  box = await cove.daytona().create();
}, 20 * 60_000);
afterAll(async () => {
  await box?.delete().catch(() => {});
  await cove?.destroy();
  await host?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

const inspect = (container: string, format: string) => execFileSync('docker', ['inspect', '-f', format, container], { encoding: 'utf8' }).trim();
/** The sandbox's container: Docker names the container's host after its id (a pool member carries no sandbox label). */
const containerOf = async (sandbox: Sandbox) => (await sandbox.process.executeCommand('hostname')).result.trim();
const ipOf = async (sandbox: Sandbox) => (await sandbox.process.executeCommand("hostname -I | cut -d' ' -f1")).result.trim();

/** What the sandbox gets from the test host: the address that answered, else curl's error. */
async function reach(sandbox: Sandbox, address: string): Promise<string> {
  const res = await sandbox.process.executeCommand(`curl -sS -m 3 http://${address}:${host.port}/ 2>&1`);
  return res.exitCode === 0 ? res.result.trim() : `failed: ${res.result.trim()}`;
}

/** Packets counted by the host firewall's rules for a sandbox address: its jump from the bridge chain, its REJECTs. */
function counters(ip: string): { jumped: number; rejected: number } {
  const count = (chain: string, match: (line: string) => boolean) =>
    execFileSync('iptables', ['-w', '5', '-L', chain, '-v', '-n', '-x'], { encoding: 'utf8' })
      .split('\n')
      .filter(match)
      .reduce((sum, line) => sum + Number(line.trim().split(/\s+/)[0]), 0);
  return {
    jumped: count('COVE-EG-cove0', (l) => l.includes(`COVE-IP-${ip} `) || l.trimEnd().endsWith(`COVE-IP-${ip}`)),
    rejected: count(`COVE-IP-${ip}`, (l) => /REJECT .* 0\.0\.0\.0\/0\s+0\.0\.0\.0\/0/.test(l)),
  };
}

describe('cove serve --runtime runsc', () => {
  it('registers runsc with the engine, says so, and runs every sandbox (pool members too) under gVisor', async () => {
    expect(cove.output()).toMatch(/cove listening on \S+ \(API [^,]+, runtime runsc \(gVisor\), SSH port \d+\)/);
    const runtimes = JSON.parse(execFileSync('docker', ['info', '--format', '{{json .Runtimes}}'], { encoding: 'utf8' }));
    expect(runtimes.runsc.runtimeArgs).toContain('--network=host');
    await waitFor(() => cove.containers('dev.cove.pool').length >= 1, 60_000, 'a pool member');
    for (const container of cove.containers()) {
      expect(inspect(container, '{{.HostConfig.Runtime}} {{index .Config.Labels "dev.cove.runtime"}}')).toBe('runsc runsc');
    }
    // gVisor's own kernel answers uname, and /proc/1 is the agent from the bind-mounted bundle (its own loader).
    const res = await box.process.executeCommand('uname -r; cat /proc/1/cmdline | tr "\\0" " "; echo; id -un; free -m | awk "/Mem:/ {print \\$2}"');
    const [release, pid1, user, memory] = res.result.trim().split('\n');
    expect(release).not.toBe(os.release());
    expect(pid1).toMatch(/^\/sbin\/docker-init -- \/opt\/cove\/bin\/node \/opt\/cove\/agent\/cli\.mjs agent /);
    expect(user).toBe('cove');
    expect(Number(memory)).toBe(1024); // gVisor reports the container's memory limit as its memory
  });

  it('files: upload, list, find, replace, permissions, download, delete', async () => {
    await box.fs.createFolder(`${HOME}/f`, '755');
    await box.fs.uploadFiles([
      { source: Buffer.from('alpha\nneedle one\n'), destination: `${HOME}/f/a.txt` },
      { source: Buffer.alloc(2 * 1024 * 1024, 7), destination: `${HOME}/f/big.bin` },
    ]);
    expect((await box.fs.listFiles(`${HOME}/f`)).map((f) => f.name).sort()).toEqual(['a.txt', 'big.bin']);
    expect((await box.fs.findFiles(`${HOME}/f`, 'needle')).map((m) => m.content)).toEqual(['needle one']);
    expect((await box.fs.replaceInFiles([`${HOME}/f/a.txt`], 'alpha', 'omega'))[0].success).toBe(true);
    await box.fs.setFilePermissions(`${HOME}/f/a.txt`, { mode: '600' });
    expect((await box.fs.getFileDetails(`${HOME}/f/a.txt`)).permissions).toBe('0600');
    expect((await box.fs.downloadFile(`${HOME}/f/a.txt`)).toString()).toBe('omega\nneedle one\n');
    expect((await box.fs.downloadFile(`${HOME}/f/big.bin`)).equals(Buffer.alloc(2 * 1024 * 1024, 7))).toBe(true);
    // The agent (root) hands uploaded files to the sandbox user.
    expect((await box.process.executeCommand(`find ${HOME}/f/a.txt -printf %u`)).result).toBe('cove');
    await box.fs.deleteFile(`${HOME}/f`, true);
  });

  it('exec and code-run: cwd, env, exit code and timeout, as the sandbox user', async () => {
    expect(await box.process.executeCommand('pwd; echo "$X"; id -un; exit 4', '/tmp', { X: 'y' })).toMatchObject({ exitCode: 4, result: '/tmp\ny\ncove\n' });
    expect((await box.process.codeRun('import sys\nprint(sum(range(10)), sys.argv[1:])', { argv: ['a'] })).result).toBe("45 ['a']\n");
    const slow = await box.process.executeCommand('sleep 30', undefined, undefined, 1).catch((e: Error) => e);
    expect((slow as Error).message).toMatch(/did not finish within 1 s/);
    // The timeout ended the command: nothing of it runs on.
    await waitFor(async () => (await box.process.executeCommand('grep -lx sleep /proc/[0-9]*/comm 2>/dev/null | wc -l')).result.trim() === '0', 10_000, 'the timed-out command to be gone');
  });

  it('sessions: state between commands, split output, streamed logs', async () => {
    await box.process.createSession('s');
    await box.process.executeSessionCommand('s', { command: 'cd /tmp && export K=v' });
    expect(await box.process.executeSessionCommand('s', { command: 'echo "$K $(pwd)"; echo err >&2' })).toMatchObject({ exitCode: 0, stdout: 'v /tmp\n', stderr: 'err\n' });
    const cmd = await box.process.executeSessionCommand('s', { command: 'for i in 1 2; do echo o$i; echo e$i >&2; done', runAsync: true });
    let out = '';
    let err = '';
    await box.process.getSessionCommandLogs('s', cmd.cmdId!, (s) => (out += s), (s) => (err += s));
    expect([out, err]).toEqual(['o1\no2\n', 'e1\ne2\n']);
    await box.process.deleteSession('s');
  });

  it('PTY: create-connect, size, input, resize, exit code', async () => {
    let out = '';
    const pty = await box.process.createPty({ id: 'g', cols: 100, rows: 30, onData: (d) => void (out += new TextDecoder().decode(d)) });
    await pty.waitForConnection();
    await pty.sendInput('stty size; id -un; echo "sum $((20+1))"\n');
    await waitFor(() => out.includes('30 100') && out.includes('sum 21') && out.includes('cove'), 15_000, 'PTY output');
    await pty.resize(120, 40);
    await pty.sendInput('stty size; exit 5\n');
    expect((await pty.wait()).exitCode).toBe(5);
    expect(out).toContain('40 120');
    await pty.disconnect();
  });

  it('git: clone, branch, add, commit and status against a repository in the sandbox', async () => {
    const seed = seedRepositoryCommand(HOME);
    expect((await box.process.executeCommand(seed)).exitCode).toBe(0);
    await box.git.clone(`file://${HOME}/origin.git`, `${HOME}/repo`);
    await box.git.createBranch(`${HOME}/repo`, 'feature');
    await box.git.checkoutBranch(`${HOME}/repo`, 'feature');
    await box.fs.uploadFile(Buffer.from('two\n'), `${HOME}/repo/b.txt`);
    await box.git.add(`${HOME}/repo`, ['b.txt']);
    expect((await box.git.status(`${HOME}/repo`)).fileStatus.map((f) => f.name)).toEqual(['b.txt']);
    const { sha } = await box.git.commit(`${HOME}/repo`, 'add b', 'Ada', 'ada@example.com');
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    await box.git.push(`${HOME}/repo`);
    expect((await box.process.executeCommand(`git --git-dir=${HOME}/origin.git log --format=%s feature`)).result).toBe('add b\nseed\n');
    expect((await box.git.status(`${HOME}/repo`)).currentBranch).toBe('feature');
  });

  it('preview: servers on the container address and on 127.0.0.1 (through the agent tunnel) answer their preview URLs', async () => {
    const tb = toolbox(cove, box.id);
    await tb.upload(`${HOME}/srv.js`, 'require("http").createServer((q, r) => r.end("hi " + q.url)).listen(8123);\n');
    const direct = await tb.serve(`node ${HOME}/srv.js`, 8123);
    const loopback = await tb.serve(`mkdir -p ${HOME}/www && echo inside > ${HOME}/www/i.txt && cd ${HOME}/www && python3 -m http.server 8124 --bind 127.0.0.1`, 8124);
    try {
      const link = await box.getPreviewLink(8123);
      const res = await previewFetch(`${link.url}/x?y=1`, { headers: { 'X-Daytona-Preview-Token': link.token } });
      expect([res.status, res.text()]).toEqual([200, 'hi /x?y=1']);
      expect((await previewFetch(`${link.url}/`)).status).toBe(401);
      const inner = await box.getPreviewLink(8124);
      const res2 = await previewFetch(`${inner.url}/i.txt`, { headers: { 'X-Daytona-Preview-Token': inner.token } });
      expect([res2.status, res2.text()]).toEqual([200, 'inside\n']);
    } finally {
      await tb.stop(direct);
      await tb.stop(loopback);
    }
  });

  it('SSH: the OpenSSH client runs a command and an sftp batch (the bundle\'s sftp-server) with an access token', async () => {
    const access = await box.createSshAccess(5);
    const ran = await sshCommand(sshPort, access.token, 'id -un; echo $((6*7))');
    expect([ran.code, ran.out]).toEqual([0, 'cove\n42\n']);
    const local = path.join(work, 'note.txt');
    writeFileSync(local, 'hello sftp\n');
    const batch = path.join(work, 'batch');
    writeFileSync(batch, [`put ${local} note.txt`, 'ls -l note.txt'].join('\n'));
    const sftp = await runProgram('sftp', ['-P', String(sshPort), ...SSH_CLIENT_OPTS, '-o', 'LogLevel=ERROR', '-b', batch, `${access.token}@127.0.0.1`]);
    expect(sftp.code, sftp.out).toBe(0);
    expect(sftp.out).toMatch(/-rw-r--r--\s+\S+ cove\s+cove\s+11 .*note\.txt/);
    expect((await box.fs.downloadFile(`${HOME}/note.txt`)).toString()).toBe('hello sftp\n');
    await box.revokeSshAccess(access.token);
  });

  it('egress: the host firewall applies to gVisor sandboxes by their bridge address; networkBlockAll refuses, root cannot lift it', async () => {
    // The open sandbox reaches the test host, and its packets pass the host's chain for its own bridge address.
    const openIp = await ipOf(box);
    expect(openIp).toBe(inspect(await containerOf(box), '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'));
    const before = counters(openIp);
    expect(await reach(box, PUBLIC)).toBe(PUBLIC);
    expect(counters(openIp).jumped).toBeGreaterThan(before.jumped);

    const blocked = await cove.daytona().create({ user: 'root', networkBlockAll: true });
    try {
      expect(blocked.networkBlockAll).toBe(true);
      const ip = await ipOf(blocked);
      const start = counters(ip);
      expect(await reach(blocked, PUBLIC)).toMatch(REFUSED);
      expect(counters(ip).rejected).toBeGreaterThan(start.rejected);
      // Names still resolve (DNS to the host's resolvers passes).
      expect((await blocked.process.executeCommand('getent hosts deb.debian.org')).exitCode).toBe(0);
      // Root in gVisor has no raw sockets and cannot change its address (gVisor refuses both), and the rules are the host's.
      const tries = await blocked.process.executeCommand(
        'id -u; python3 -c "import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW); print(\'raw ok\')\nexcept OSError: print(\'no raw\')"; ' +
          'ip addr add 198.51.100.200/32 dev eth0 2>/dev/null && echo "address added" || echo "no address change"; iptables -F 2>/dev/null && echo flushed || echo "no iptables"',
      );
      expect(tries.result).toBe('0\nno raw\nno address change\nno iptables\n');
      expect(await reach(blocked, PUBLIC)).toMatch(REFUSED);

      await blocked.updateNetworkSettings({ networkBlockAll: false });
      expect(await reach(blocked, PUBLIC)).toBe(PUBLIC);
    } finally {
      await blocked.delete();
    }
  });

  it('processes: forks beyond the per-user process limit fail with EAGAIN, and the sandbox lives on', async () => {
    // Cove sets RLIMIT_NPROC (the sandbox's 1024 processes, per user) and gVisor enforces it; the host's pids cgroup
    // (16x) is only a backstop, since reaching it would kill the whole sandbox. A lower soft limit shows it fast.
    const script = [
      'import os, resource',
      'print(resource.getrlimit(resource.RLIMIT_NPROC)[0])',
      'resource.setrlimit(resource.RLIMIT_NPROC, (64, 1024))',
      'n = 0',
      'try:',
      '    while n < 200:',
      '        if os.fork() == 0:',
      '            fd = os.open("/dev/null", os.O_RDWR); os.dup2(fd, 1); os.dup2(fd, 2)',
      '            os.execv("/bin/sleep", ["sleep", "60"])',
      '        n += 1',
      'except OSError as e:',
      '    print(e.strerror)',
      'print(n)',
    ].join('\n');
    await box.fs.uploadFile(Buffer.from(script), '/tmp/forks.py');
    const res = await box.process.executeCommand('python3 /tmp/forks.py', undefined, undefined, 120);
    const [limit, error, count] = res.result.trim().split('\n');
    expect([limit, error]).toEqual(['1024', 'Resource temporarily unavailable']);
    expect(Number(count)).toBeGreaterThan(50);
    expect(Number(count)).toBeLessThan(64);
    // Only that program's forks failed: the sandbox runs on, and the agent starts the user's next commands.
    await box.process.executeCommand('pkill -u cove -x sleep');
    expect((await box.process.executeCommand('echo alive')).result).toBe('alive\n');
    expect(inspect(await containerOf(box), '{{.State.Status}}')).toBe('running');
  });

  it('stop and start: the agent stops on SIGTERM, the same container starts again under gVisor with its files', async () => {
    await box.fs.uploadFile(Buffer.from('survives'), `${HOME}/keep.txt`);
    const container = await containerOf(box);
    await box.stop();
    expect(inspect(container, '{{.State.Status}} {{.State.ExitCode}}')).toBe('exited 0');
    await box.start();
    expect(await containerOf(box)).toBe(container);
    expect(inspect(container, '{{.HostConfig.Runtime}}')).toBe('runsc');
    expect((await box.fs.downloadFile(`${HOME}/keep.txt`)).toString()).toBe('survives');
  });

  it('memory: a process over the limit gets the sandbox OOM-killed (gVisor holds its memory in one host process)', async () => {
    const hog = await cove.daytona().create();
    try {
      const container = await containerOf(hog);
      expect(inspect(container, '{{.HostConfig.Memory}}')).toBe(String(1024 ** 3));
      const res = await hog.process.executeCommand('python3 -c "b = b\'x\' * (3 * 1024**3); print(len(b))"', undefined, undefined, 60).catch((e: Error) => e);
      // It never gets its 3 GiB: the host's memory cgroup kills gVisor's Sentry, and the sandbox with it (under runc
      // the kernel kills the hog alone). The call in flight fails with the proxy's 502.
      expect(res).toBeInstanceOf(Error);
      expect((res as Error).message).toMatch(/The sandbox agent did not answer/);
      await waitFor(() => inspect(container, '{{.State.Status}}') === 'exited', 30_000, 'the sandbox container to exit');
      expect(inspect(container, '{{.State.ExitCode}}')).toBe('137');
    } finally {
      await hog.delete();
    }
  }, 120_000);
});
