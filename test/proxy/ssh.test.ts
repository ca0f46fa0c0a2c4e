/**
 * The SSH gateway with the real OpenSSH client (ssh, scp, sftp) against a real `cove serve` and real sandboxes:
 * tokens from the control API, exec, terminals, env, SFTP/scp, -L and -R forwarding, refusals, revocation, the
 * persistent host key and stopped sandboxes.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { SSH_CLIENT_OPTS, sshPortOf } from '../helpers/ssh-client';

let cove: TestCove;
let sshPort: number;
let work: string;
const sandboxes: string[] = [];

/** The SSH port `cove serve` printed in its ready line. */

beforeAll(async () => {
  // Port 0 for the gateway: other Cove servers on this machine may hold the default port.
  process.env.COVE_SSH_PORT = '0';
  cove = await startCove({ pool: 1 });
  sshPort = sshPortOf(cove);
  work = mkdtempSync(path.join(os.tmpdir(), 'cove-ssh-test-'));
}, 20 * 60_000);
afterAll(async () => {
  for (const id of sandboxes) await cove?.api(`/sandbox/${id}`, { method: 'DELETE' }).catch(() => {});
  await cove?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function createSandbox(): Promise<string> {
  const res = await cove.api('/sandbox', { method: 'POST', body: '{}' });
  const body = await res.json();
  if (!res.ok) throw new Error(body.message);
  sandboxes.push(body.id);
  return body.id;
}

async function sshAccess(sandboxId: string, minutes?: number): Promise<any> {
  const res = await cove.api(`/sandbox/${sandboxId}/ssh-access${minutes ? `?expiresInMinutes=${minutes}` : ''}`, { method: 'POST' });
  expect(res.status).toBe(200);
  return res.json();
}

/** ssh arguments up to the destination; `quiet` hides the banner (LogLevel=ERROR), refusal tests want to see it. */
const sshArgs = (token: string, extra: string[] = [], quiet = true, port = sshPort) => [
  '-p',
  String(port),
  ...SSH_CLIENT_OPTS,
  '-o',
  `LogLevel=${quiet ? 'ERROR' : 'INFO'}`,
  ...extra,
  `${token}@127.0.0.1`,
];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: string[], opts: { input?: string | Buffer; timeoutMs?: number; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}
const ssh = (token: string, command: string, extra: string[] = [], quiet = true) => run('ssh', [...sshArgs(token, extra, quiet), command]);

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('SSH access API', () => {
  it('creates tokens with Daytona shapes, validates and revokes them', async () => {
    const id = await createSandbox();
    const a = await sshAccess(id);
    expect(a).toMatchObject({ id: expect.any(String), sandboxId: id, token: expect.stringMatching(/^[a-z0-9]{40}$/) });
    expect(a.sshCommand).toBe(`ssh -p ${sshPort} ${a.token}@localhost`);
    const minutes = (Date.parse(a.expiresAt) - Date.parse(a.createdAt)) / 60_000;
    expect(Math.round(minutes)).toBe(60);
    expect(a.updatedAt).toBe(a.createdAt);
    const b = await sshAccess(id, 5);
    expect(Math.round((Date.parse(b.expiresAt) - Date.parse(b.createdAt)) / 60_000)).toBe(5);

    const validate = async (token: string, key?: string) =>
      (await cove.api(`/sandbox/ssh-access/validate?token=${token}`, { key })).json();
    expect(await validate(a.token)).toEqual({ valid: true, sandboxId: id });
    expect(await validate('nonsense')).toEqual({ valid: false, sandboxId: '' });

    // Two tokens live at once; revoking one leaves the other.
    expect((await cove.api(`/sandbox/${id}/ssh-access?token=${a.token}`, { method: 'DELETE' })).status).toBe(200);
    expect(await validate(a.token)).toEqual({ valid: false, sandboxId: '' });
    expect(await validate(b.token)).toEqual({ valid: true, sandboxId: id });
    // Without a token every token of the sandbox goes.
    expect((await cove.api(`/sandbox/${id}/ssh-access`, { method: 'DELETE' })).status).toBe(200);
    expect(await validate(b.token)).toEqual({ valid: false, sandboxId: '' });
  });

  it('answers 404 and 400 where it should, and needs an API key', async () => {
    const id = await createSandbox();
    expect((await cove.api('/sandbox/no-such-sandbox/ssh-access', { method: 'POST' })).status).toBe(404);
    const unknown = await cove.api(`/sandbox/${id}/ssh-access?token=${'a'.repeat(40)}`, { method: 'DELETE' });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).code).toBe('NOT_FOUND');
    const bad = await cove.api(`/sandbox/${id}/ssh-access?expiresInMinutes=0`, { method: 'POST' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).message).toMatch(/expiresInMinutes/);
    expect((await cove.api(`/sandbox/${id}/ssh-access`, { method: 'POST', key: null })).status).toBe(401);
    expect((await cove.api('/sandbox/ssh-access/validate', {})).status).toBe(400);
  });

  it('works through the Daytona SDK', async () => {
    const sandbox = await cove.daytona().get(await createSandbox());
    const access = await sandbox.createSshAccess(10);
    expect(access.sandboxId).toBe(sandbox.id);
    expect(await sandbox.validateSshAccess(access.token)).toMatchObject({ valid: true, sandboxId: sandbox.id });
    await sandbox.revokeSshAccess(access.token);
    expect(await sandbox.validateSshAccess(access.token)).toMatchObject({ valid: false });
  });
});

describe('ssh into a sandbox', () => {
  let sandboxId: string;
  let token: string;
  beforeAll(async () => {
    sandboxId = await createSandbox();
    token = (await sshAccess(sandboxId)).token;
  }, 120_000);

  it('runs a command with its output, stderr and exit status, as the sandbox user', async () => {
    const r = await ssh(token, 'echo hi; echo oops >&2; id -un; exit 3');
    expect(r).toMatchObject({ code: 3, stdout: 'hi\ncove\n', stderr: 'oops\n' });
    const stdin = await run('ssh', [...sshArgs(token), 'wc -c'], { input: 'x'.repeat(100_000) });
    expect(stdin.stdout.trim()).toBe('100000');
  });

  it('passes environment variables (SetEnv) and answers keep-alives', async () => {
    const r = await ssh(token, 'echo "$FOO/$BAR"; sleep 2', ['-o', 'SetEnv=FOO=bar BAR=baz', '-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=1']);
    expect(r).toMatchObject({ code: 0, stdout: 'bar/baz\n' });
  });

  it('refuses variables the session sets itself, and never puts the token in the sandbox', async () => {
    const sent = 'FOO=bar PATH=/nowhere LD_PRELOAD=/tmp/x.so USER=root HOME=/root SSH_ORIGINAL_COMMAND=forged COVE_AGENT_TOKEN=x NODE_OPTIONS=--inspect LC_ALL=C';
    const names = ['FOO', 'PATH', 'LD_PRELOAD', 'USER', 'HOME', 'SSH_ORIGINAL_COMMAND', 'COVE_AGENT_TOKEN', 'NODE_OPTIONS', 'LC_ALL'];
    const command = `${names.map((n) => `echo "\${${n}}"`).join('; ')}; env; cat /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\\0' '\\n'`;
    const r = await ssh(token, command, ['-o', `SetEnv=${sent}`]);
    const lines = r.stdout.split('\n');
    const got = Object.fromEntries(names.map((n, i) => [n, lines[i]]));
    expect(got).toMatchObject({ FOO: 'bar', LD_PRELOAD: '', USER: 'cove', HOME: '/home/cove', COVE_AGENT_TOKEN: '', NODE_OPTIONS: '', LC_ALL: 'C' });
    expect(got.PATH).not.toBe('/nowhere');
    // Set by the session itself: the command as the client sent it.
    expect(got.SSH_ORIGINAL_COMMAND).toBe(command);
    expect(r.stdout).not.toContain(token);
  });

  it('reports a process ended by a signal SSH has no name for as 128 + its number, as a shell would', async () => {
    expect((await ssh(token, 'kill -BUS $$')).code).toBe(128 + os.constants.signals.SIGBUS);
  });

  it('runs an interactive shell in a terminal that follows window resizes', async () => {
    const sock = `cove-ssh-${process.pid}`;
    const tmux = (...args: string[]) => execFileSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
    const screen = () => tmux('capture-pane', '-p', '-t', 'ssh');
    const cmd = ['ssh', '-tt', ...sshArgs(token)].map((a) => `'${a}'`).join(' ');
    tmux('new-session', '-d', '-s', 'ssh', '-x', '100', '-y', '30', cmd);
    try {
      tmux('send-keys', '-t', 'ssh', 'echo "tty=$(tty) term=$TERM"; stty size', 'Enter');
      await waitFor(() => /30 100/.test(screen()), 20_000, 'stty size 30 100');
      expect(screen()).toMatch(/tty=\/dev\/pts\/\d+ term=\S+/);
      tmux('resize-window', '-t', 'ssh', '-x', '120', '-y', '40');
      tmux('send-keys', '-t', 'ssh', 'clear; stty size', 'Enter');
      await waitFor(() => /40 120/.test(screen()), 20_000, 'stty size 40 120 after the resize');
      tmux('send-keys', '-t', 'ssh', 'exit', 'Enter');
    } finally {
      try {
        tmux('kill-server');
      } catch {
        /* ended with the session */
      }
    }
  });

  it('delivers signals and reports exit signals (ssh2 client)', async () => {
    const { Client } = await import('ssh2');
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve()).once('error', reject);
      client.connect({ host: '127.0.0.1', port: sshPort, username: token });
    });
    try {
      const exit = await new Promise<{ code: unknown; signal: unknown }>((resolve, reject) => {
        client.exec('echo started; sleep 30', (err, ch) => {
          if (err) return reject(err);
          ch.on('data', (d: Buffer) => d.toString().includes('started') && ch.signal('TERM'));
          ch.on('exit', (code: unknown, signal: unknown) => resolve({ code, signal }));
          ch.stderr.resume();
        });
      });
      // ssh2's client names signals with their SIG prefix; on the wire it is TERM.
      expect(exit.signal).toBe('SIGTERM');
    } finally {
      client.end();
    }
  });
});

describe('files and forwarding over ssh', () => {
  let token: string;
  beforeAll(async () => {
    token = (await sshAccess(await createSandbox())).token;
  }, 120_000);

  it('copies a 100 MB file up and down with scp (SFTP underneath), intact', async () => {
    const up = path.join(work, 'up.bin');
    writeFileSync(up, randomBytes(100 * 1024 * 1024));
    const scpArgs = ['-P', String(sshPort), ...SSH_CLIENT_OPTS, '-o', 'LogLevel=ERROR'];
    const put = await run('scp', [...scpArgs, up, `${token}@127.0.0.1:big.bin`], { timeoutMs: 180_000 });
    expect(put).toMatchObject({ code: 0, stderr: '' });
    const remote = await ssh(token, 'sha256sum big.bin; stat -c %U big.bin');
    expect(remote.stdout).toBe(`${sha256(up)}  big.bin\ncove\n`);
    const down = path.join(work, 'down.bin');
    const get = await run('scp', [...scpArgs, `${token}@127.0.0.1:big.bin`, down], { timeoutMs: 180_000 });
    expect(get).toMatchObject({ code: 0, stderr: '' });
    expect(sha256(down)).toBe(sha256(up));
    rmSync(up);
    rmSync(down);
  }, 400_000);

  it('runs an sftp batch: mkdir, put, ls, rm, with the sandbox user permissions', async () => {
    const local = path.join(work, 'note.txt');
    writeFileSync(local, 'hello sftp\n');
    const batch = path.join(work, 'batch');
    writeFileSync(batch, [`mkdir sub`, `put ${local} sub/note.txt`, `ls -l sub`, `rm sub/note.txt`, `rmdir sub`, `ls /root`].join('\n'));
    const r = await run('sftp', ['-P', String(sshPort), ...SSH_CLIENT_OPTS, '-o', 'LogLevel=ERROR', '-b', batch, `${token}@127.0.0.1`]);
    expect(r.stdout).toMatch(/-rw-r--r--\s+\S+ cove\s+cove\s+11 .*note\.txt/);
    // The last command fails: /root is not readable by the sandbox user, so the batch stops there.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ermission denied/);
    expect((await ssh(token, 'ls sub 2>&1; echo done')).stdout).toMatch(/No such file or directory\ndone\n$/);
  });

  it('forwards a local port to a server bound to 127.0.0.1 inside the sandbox (ssh -L)', async () => {
    const started = await ssh(token, 'mkdir -p www && echo inside > www/index.html && cd www && (nohup python3 -m http.server 8123 --bind 127.0.0.1 >/dev/null 2>&1 &) ; echo ok');
    expect(started.stdout).toBe('ok\n');
    const local = await freePort();
    const tunnel = spawn('ssh', [...sshArgs(token, ['-N', '-o', 'ExitOnForwardFailure=yes', '-L', `${local}:127.0.0.1:8123`])], { stdio: 'ignore' });
    children.push(tunnel);
    try {
      const body = await waitFor(
        () => fetch(`http://127.0.0.1:${local}/index.html`).then((r) => r.text(), () => ''),
        20_000,
        'the forwarded server',
      );
      expect(body).toBe('inside\n');
    } finally {
      tunnel.kill();
    }
  });

  it('exposes a host server inside the sandbox (ssh -R)', async () => {
    const server = http.createServer((req, res) => res.end(`host says hi to ${req.url}`));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const hostPort = (server.address() as net.AddressInfo).port;
    const remotePort = 20_000 + Math.floor(Math.random() * 20_000);
    const tunnel = spawn('ssh', [...sshArgs(token, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${remotePort}:127.0.0.1:${hostPort}`])], { stdio: 'ignore' });
    children.push(tunnel);
    try {
      const out = await waitFor(
        async () => {
          const r = await ssh(token, `curl -s -m 5 http://127.0.0.1:${remotePort}/from-sandbox`);
          return r.stdout.includes('host says hi') && r.stdout;
        },
        30_000,
        'the reverse-forwarded server',
      );
      expect(out).toBe('host says hi to /from-sandbox');
    } finally {
      tunnel.kill();
      server.close();
    }
    // Once the client is gone the sandbox port closes.
    await waitFor(async () => (await ssh(token, `curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:${remotePort}/`)).stdout === '000', 20_000, 'the port to close');
  });
});

describe('who gets in', () => {
  it('refuses wrong, expired and revoked tokens with a message', async () => {
    const id = await createSandbox();
    const wrong = await ssh('a'.repeat(40), 'true', [], false);
    expect(wrong.code).toBe(255);
    expect(wrong.stderr).toMatch(/SSH access token is not valid/);
    expect(wrong.stderr).toMatch(/Permission denied/);

    const revoked = await sshAccess(id);
    await cove.api(`/sandbox/${id}/ssh-access?token=${revoked.token}`, { method: 'DELETE' });
    expect((await ssh(revoked.token, 'true', [], false)).stderr).toMatch(/token was revoked/);

    const expired = await sshAccess(id);
    // Age the token in the database: the shortest lifetime the API allows is a minute.
    const db = new Database(path.join(cove.dataDir, 'cove.db'));
    db.prepare('UPDATE ssh_access SET expires_at = ? WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), expired.id);
    db.close();
    const r = await ssh(expired.token, 'true', [], false);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/token has expired/);
  });

  it('closes open sessions when their token is revoked', async () => {
    const id = await createSandbox();
    const access = await sshAccess(id);
    const other = await sshAccess(id);
    const session = spawn('ssh', [...sshArgs(access.token), 'echo up; sleep 60']);
    children.push(session);
    let out = '';
    let err = '';
    session.stdout.on('data', (d) => (out += d));
    session.stderr.on('data', (d) => (err += d));
    const code = new Promise((resolve) => session.once('close', resolve));
    const survivor = run('ssh', [...sshArgs(other.token), 'sleep 4; echo still here']);
    await waitFor(() => out === 'up\n', 20_000, 'the session to start');
    await cove.api(`/sandbox/${id}/ssh-access?token=${access.token}`, { method: 'DELETE' });
    expect(await code).toBe(255);
    expect(err).toMatch(/revoked/);
    expect(await survivor).toMatchObject({ code: 0, stdout: 'still here\n' });
  });

  it('opens only the sandbox the token was made for', async () => {
    const [a, b] = await Promise.all([createSandbox(), createSandbox()]);
    const [ta, tb] = await Promise.all([sshAccess(a), sshAccess(b)]);
    await ssh(ta.token, 'echo A > marker');
    expect((await ssh(ta.token, 'cat marker')).stdout).toBe('A\n');
    expect((await ssh(tb.token, 'cat marker 2>&1 || echo none')).stdout).toMatch(/none\n$/);
    // A's token is not B's to revoke.
    expect((await cove.api(`/sandbox/${b}/ssh-access?token=${ta.token}`, { method: 'DELETE' })).status).toBe(404);
    expect((await ssh(ta.token, 'cat marker')).stdout).toBe('A\n');
  });

  it('tells the client when the sandbox is stopped', async () => {
    const id = await createSandbox();
    const { token } = await sshAccess(id);
    expect((await cove.api(`/sandbox/${id}/stop`, { method: 'POST' })).status).toBe(200);
    const r = await ssh(token, 'true', [], false);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(new RegExp(`Sandbox ${id} is stopped.*start`));
  }, 120_000);

  it('keeps its host key and tokens across a restart of cove serve', async () => {
    const id = await createSandbox();
    const { token } = await sshAccess(id);
    const keyscan = async (port: number) => {
      const r = await run('ssh-keyscan', ['-t', 'ed25519', '-p', String(port), '127.0.0.1']);
      return r.stdout.split('\n').find((l) => l.includes('ssh-ed25519'))!.split(' ').slice(1).join(' ');
    };
    const before = await keyscan(sshPort);
    expect(before).toMatch(/^ssh-ed25519 /);
    await cove.stop();
    const again = await startCove({ dataDir: cove.dataDir, apiKey: cove.apiKey, pool: 0 });
    try {
      const port = sshPortOf(again);
      expect(await keyscan(port)).toBe(before);
      const r = await run('ssh', [...sshArgs(token, [], true, port), 'echo back']);
      expect(r).toMatchObject({ code: 0, stdout: 'back\n' });
    } finally {
      await again.stop();
    }
  }, 300_000);
});
