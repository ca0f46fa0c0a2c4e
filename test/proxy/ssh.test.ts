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

let cove: TestCove;
let sshPort: number;
let work: string;
const sandboxes: string[] = [];

/** The SSH port `cove serve` printed in its ready line. */
const sshPortOf = (c: TestCove) => Number(/SSH port (\d+)/.exec(c.output())?.[1]);

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

const OPTS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes'];
/** ssh arguments up to the destination; `quiet` hides the banner (LogLevel=ERROR), refusal tests want to see it. */
const sshArgs = (token: string, extra: string[] = [], quiet = true, port = sshPort) => [
  '-p',
  String(port),
  ...OPTS,
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
