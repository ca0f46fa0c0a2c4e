/**
 * Sandbox death is noticed, through a real `cove serve`, real containers and the published Daytona SDK: a container
 * killed, stopped or removed outside Cove, or dead of OOM, moves its sandbox to `stopped` or `error` with a reason
 * within a second or two, its address is forgotten (toolbox, preview and SSH refuse), live connections end; memory hogs
 * and fork bombs in user code cost user processes, not the sandbox; warm-pool members that die are replaced; and when
 * the engine's event stream breaks, or the server was down, what happened meanwhile is reconciled.
 *
 * The server reaches Docker through a relay on a socket of this test's own (DOCKER_HOST), which the test can cut to
 * end the event stream the way an engine restart does, without restarting the engine other suites share.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { CreateSandboxFromSnapshotParams, Daytona, Sandbox } from '@daytonaio/sdk';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USER_OOM_SCORE_ADJ } from '../../agent/src/system/oom';
import { waitFor } from '../helpers/agent';
import { sshCommand, sshPortOf } from '../helpers/ssh-client';
import { startCove, type TestCove } from '../helpers/cove';

/** A byte relay from a socket of ours to the engine's, whose connections the test can cut (an engine restart, as seen by a client). */
function dockerRelay(socketPath: string) {
  const live = new Set<net.Socket>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) return client.destroy();
    const engine = net.connect('/var/run/docker.sock');
    for (const s of [client, engine]) {
      live.add(s);
      s.on('close', () => live.delete(s));
      s.on('error', () => {});
    }
    client.pipe(engine).pipe(client);
    client.on('close', () => engine.destroy());
    engine.on('close', () => client.destroy());
  });
  return {
    listen: () => new Promise<void>((resolve) => server.listen(socketPath, resolve)),
    /** Drops every connection (the event stream included) and refuses new ones until resume(). */
    cut() {
      refusing = true;
      for (const s of live) s.destroy();
    },
    resume() {
      refusing = false;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let cove: TestCove;
let daytona: Daytona;
let relayDir: string;
let relay: ReturnType<typeof dockerRelay>;
const created: Sandbox[] = [];

beforeAll(async () => {
  relayDir = mkdtempSync(path.join(os.tmpdir(), 'cove-death-'));
  relay = dockerRelay(path.join(relayDir, 'docker.sock'));
  await relay.listen();
  cove = await startCove({ pool: 1, env: { DOCKER_HOST: `unix://${path.join(relayDir, 'docker.sock')}` } });
  daytona = cove.daytona();
}, 20 * 60_000);
afterAll(async () => {
  for (const sb of created) await cove?.api(`/sandbox/${sb.id}`, { method: 'DELETE' }).catch(() => {});
  await cove?.destroy();
  await relay?.close();
  if (relayDir) rmSync(relayDir, { recursive: true, force: true });
});

async function create(params: CreateSandboxFromSnapshotParams = {}): Promise<Sandbox> {
  const sb = await daytona.create(params);
  created.push(sb);
  return sb;
}

/** The sandbox's container (Docker names a container's host after the start of its id). */
async function containerOf(sb: Sandbox): Promise<string> {
  return (await sb.process.executeCommand('cat /etc/hostname')).result.trim();
}

const dto = async (id: string): Promise<any> => (await cove.api(`/sandbox/${id}`)).json();

/** Waits until the sandbox leaves `started`; returns its DTO and how long that took from `since`. */
async function leftStarted(id: string, since: number, timeoutMs = 10_000): Promise<{ after: any; ms: number }> {
  const after = await waitFor(async () => {
    const d = await dto(id);
    return d.state !== 'started' ? d : undefined;
  }, timeoutMs, `sandbox ${id} to leave started`);
  return { after, ms: Date.now() - since };
}

/** The address Cove keeps for a sandbox, read from its database. */
function storedIp(id: string): string | null {
  const db = new Database(path.join(cove.dataDir, 'cove.db'), { readonly: true });
  try {
    return (db.prepare('SELECT ip FROM sandboxes WHERE id = ?').get(id) as { ip: string | null }).ip;
  } finally {
    db.close();
  }
}

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();

/** A preview request for a port of the sandbox, with an API key (admitted; what it reaches depends on the sandbox). */
function preview(id: string, port: number): Promise<{ status: number; body: string }> {
  const { port: proxyPort } = new URL(cove.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: proxyPort, path: '/', headers: { host: `${port}-${id}.localhost`, authorization: `Bearer ${cove.apiKey}` } },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('a container that ends outside Cove', () => {
  it('killed (docker kill): error with the reason as it happens, address forgotten, toolbox/preview/SSH refused, live terminals end; start brings it back', async () => {
    const sb = await create();
    const container = await containerOf(sb);
    const access = await sb.createSshAccess(30);
    const reached = await sshCommand(sshPortOf(cove), access.token, 'echo reachable', { quiet: false });
    expect(reached.stdout, reached.out).toContain('reachable');
    // A preview server inside, reachable before.
    await sb.process.executeCommand('nohup python3 -m http.server 3000 >/dev/null 2>&1 &');
    await waitFor(async () => (await preview(sb.id, 3000)).status === 200, 10_000, 'the preview server');
    // A live terminal (a toolbox WebSocket through the proxy) must end with the container, not hang.
    const pty = await sb.process.createPty({ id: `death-${Date.now()}`, cols: 80, rows: 24, onData: () => {} });
    await pty.waitForConnection();
    expect(storedIp(sb.id)).toMatch(/^\d+\.\d+\.\d+\.\d+$/);

    const killedAt = Date.now();
    docker('kill', container);
    const { after, ms } = await leftStarted(sb.id, killedAt);
    console.log(`docker kill noticed after ${ms} ms`);
    expect(after).toMatchObject({ state: 'error', errorReason: expect.stringMatching(/killed outside Cove \(SIGKILL/) });
    expect(storedIp(sb.id)).toBeNull();
    await waitFor(() => !pty.isConnected(), 2000, 'the terminal to be disconnected');

    // Nothing routes to the old address any more.
    await expect(sb.process.executeCommand('echo hi')).rejects.toThrow(/is error \(.*\); start it first/);
    const toolbox = await fetch(`${cove.url}/toolbox/${sb.id}/process/execute`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ command: 'echo hi' }),
    });
    expect(toolbox.status).toBe(409);
    expect(await toolbox.json()).toMatchObject({ code: 'SANDBOX_NOT_STARTED' });
    const refusedPreview = await preview(sb.id, 3000);
    expect(refusedPreview.status).toBe(409);
    const refusedSsh = await sshCommand(sshPortOf(cove), access.token, 'echo reachable', { quiet: false });
    expect(refusedSsh.stdout).not.toContain('reachable');
    expect(refusedSsh.stderr).toMatch(/is error/);

    // The SDK sees it as such, and starting it again works (the container is still there).
    await sb.refreshData();
    expect(sb.state).toBe('error');
    expect(sb.errorReason).toMatch(/SIGKILL/);
    await sb.start(60);
    expect((await sb.process.executeCommand('echo back')).result).toContain('back');
    expect(storedIp(sb.id)).not.toBeNull();
  }, 120_000);

  it('removed (docker rm -f): error "removed outside Cove", and delete still works', async () => {
    const sb = await create();
    const container = await containerOf(sb);
    const removedAt = Date.now();
    docker('rm', '-f', container);
    const { after, ms } = await leftStarted(sb.id, removedAt);
    console.log(`docker rm -f noticed after ${ms} ms`);
    // The die comes first (killed outside Cove), then the destroy: the reason ends as the removal.
    await waitFor(async () => /removed outside Cove/.test((await dto(sb.id)).errorReason ?? ''), 2000, 'the removal reason');
    expect(after.state).toBe('error');
    expect(storedIp(sb.id)).toBeNull();
    await sb.delete();
    expect((await dto(sb.id)).state).toBe('destroyed');
  }, 60_000);

  it('stopped (docker stop): stopped without an error, and it starts again', async () => {
    const sb = await create();
    const container = await containerOf(sb);
    const stoppedAt = Date.now();
    docker('stop', '-t', '5', container);
    const { after } = await leftStarted(sb.id, stoppedAt);
    // docker stop returns once the container stopped; the state follows as it happens (leftStarted waits 10 s at most),
    // not at the next restart.
    console.log(`docker stop noticed ${Date.now() - stoppedAt} ms after it was asked`);
    expect(after.state).toBe('stopped');
    expect(after.errorReason).toBeUndefined();
    expect(storedIp(sb.id)).toBeNull();
    await sb.start(60);
    expect((await sb.process.executeCommand('echo again')).result).toContain('again');
  }, 60_000);

  it("Cove's own stop, start and delete are not read as deaths", async () => {
    const sb = await create();
    await sb.stop();
    await new Promise((r) => setTimeout(r, 500));
    expect(await dto(sb.id)).toMatchObject({ state: 'stopped' });
    expect((await dto(sb.id)).errorReason).toBeUndefined();
    await sb.start(60);
    await new Promise((r) => setTimeout(r, 500));
    expect(await dto(sb.id)).toMatchObject({ state: 'started' });
    expect((await sb.process.executeCommand('echo fine')).result).toContain('fine');
    await sb.delete();
    expect((await dto(sb.id)).state).toBe('destroyed');
    expect(cove.output()).not.toMatch(new RegExp(`"sandboxId":"${sb.id}"[^\\n]*ended without Cove`));
  }, 60_000);
});

describe('memory and processes', () => {
  it('a parallel job that overflows memory loses its workers, not the agent: user code is what the OOM killer takes first', async () => {
    const sb = await create();
    // Every process the agent starts gets oom_score_adj 500; the agent keeps its own 0 (read from the host: the agent
    // holds 500 itself while a spawn runs, which a child as quick as cat can see).
    expect((await sb.process.executeCommand('cat /proc/self/oom_score_adj')).result.trim()).toBe(String(USER_OOM_SCORE_ADJ));
    const agentPid = docker('inspect', '-f', '{{.State.Pid}}', await containerOf(sb));
    expect(readFileSync(`/proc/${agentPid}/oom_score_adj`, 'utf8').trim()).toBe('0');
    // 24 workers of 50 MB each overflow the 1 GiB limit. Each is smaller than the agent (~70 MB), so by size alone
    // the kernel would pick the agent, and the whole sandbox would die with it.
    const job = await sb.process.executeCommand(
      'for i in $(seq 1 24); do python3 -c "import time; b = b\\"x\\" * (50 * 1024**2); time.sleep(5)" & done; wait; echo job-done',
      undefined,
      undefined,
      120,
    );
    expect(job.result).toContain('job-done');
    expect((await sb.process.executeCommand('echo still-here')).result).toContain('still-here');
    expect(await dto(sb.id)).toMatchObject({ state: 'started' });
    // The kernel's kills are reported in the server's log, naming the sandbox.
    await waitFor(() => new RegExp(`"sandboxId":"${sb.id}"[^\\n]*OOM killer ended processes`).test(cove.output()), 5000, 'the OOM report');
  }, 120_000);

  it('a sandbox whose container dies of OOM becomes an error with an OOM reason, its address forgotten', async () => {
    const sb = await create();
    // Memory that killing processes cannot give back: a System V shared-memory segment that its program never
    // removes (a crashed database, a leaking IPC library) keeps its pages charged to the sandbox after the program is
    // killed. Once it fills the 1 GiB, the kernel first kills user processes (they rank first), which frees nothing;
    // when the agent itself then needs memory — here to hold a command's 12 MB of output — it is all that is left to
    // kill, and with PID 1 gone the container dies of OOM (under runc, as under gVisor with its limit).
    const leak = [
      'import ctypes, ctypes.util',
      "libc = ctypes.CDLL(ctypes.util.find_library('c'))",
      'libc.shmat.restype = ctypes.c_void_p',
      'size = 2 * 1024**3',
      'seg = libc.shmget(0, ctypes.c_size_t(size), 0o1600)',
      'ctypes.memset(libc.shmat(seg, None, 0), 1, size)',
    ].join('\n');
    await sb.fs.uploadFile(Buffer.from(leak), '/tmp/leak.py');
    const leaked = await sb.process.executeCommand('python3 /tmp/leak.py; echo "exit=$?"', undefined, undefined, 120);
    expect(leaked.result).toContain('exit=137');
    const startedAt = Date.now();
    await sb.process.executeCommand('head -c 12M /dev/zero | tr "\\0" x', undefined, undefined, 60).catch(() => undefined);
    const { after } = await leftStarted(sb.id, startedAt, 20_000);
    expect(after).toMatchObject({ state: 'error', errorReason: expect.stringMatching(/out of memory.*OOM-killed.*1 GiB/i) });
    expect(storedIp(sb.id)).toBeNull();
    const refused = await fetch(`${cove.url}/toolbox/${sb.id}/version`, { headers: { Authorization: `Bearer ${cove.apiKey}` } });
    expect(refused.status).toBe(409);
  }, 180_000);

  it('a fork bomb leaves the agent answering (pids limit), and the sandbox usable once it is killed', async () => {
    const sb = await create();
    // Read before the bomb: while it runs, nothing new can start in the sandbox.
    const id = docker('inspect', '-f', '{{.Id}}', await containerOf(sb));
    await sb.process.createSession('bomb');
    await sb.process.executeSessionCommand('bomb', { command: 'bomb() { bomb | bomb & }; bomb', runAsync: true });
    // The bomb fills the sandbox's process table (PidsLimit 1024), then keeps it full: the container's pids cgroup
    // (cgroups v1, cgroupfs driver, as on these hosts) shows it from the host.
    const pidsNow = () => Number(readFileSync(`/sys/fs/cgroup/pids/docker/${id}/pids.current`, 'utf8'));
    await waitFor(() => pidsNow() >= 1000, 30_000, 'the fork bomb to reach the pids limit');
    // The agent answers what needs no new process: file listing, its version.
    const files = await sb.fs.listFiles('/home/cove');
    expect(Array.isArray(files)).toBe(true);
    expect((await fetch(`${cove.url}/toolbox/${sb.id}/version`, { headers: { Authorization: `Bearer ${cove.apiKey}` } })).status).toBe(200);
    // Deleting the session kills its whole process group, the bomb included; then commands run again.
    await sb.process.deleteSession('bomb');
    await waitFor(() => pidsNow() < 50, 30_000, 'the bomb to be gone');
    expect((await sb.process.executeCommand('echo usable')).result).toContain('usable');
    expect(await dto(sb.id)).toMatchObject({ state: 'started' });
  }, 120_000);
});

describe('the warm pool', () => {
  it('drops a member whose container dies and starts a replacement', async () => {
    await waitFor(async () => (await (await cove.api('/pool')).json()).ready === 1, 60_000, 'a ready pool member');
    const owned = new Set<string>();
    for (const sb of created) {
      const d = await dto(sb.id);
      if (d.state === 'started') owned.add(await containerOf(sb));
    }
    const members = cove.containers('dev.cove.pool').filter((id) => ![...owned].some((o) => id.startsWith(o)));
    const running = members.filter((id) => docker('inspect', '-f', '{{.State.Running}}', id) === 'true');
    expect(running).toHaveLength(1);
    docker('kill', running[0]);
    await waitFor(() => !cove.containers().some((id) => id === running[0]), 5000, 'the dead member to be removed');
    await waitFor(async () => (await (await cove.api('/pool')).json()).ready === 1, 60_000, 'a replacement member');
    const sb = await create();
    expect((await sb.process.executeCommand('echo from-the-pool')).result).toContain('from-the-pool');
  }, 120_000);
});

describe('missed events', () => {
  it('the event stream ends (as when the engine restarts): Cove follows it again and reconciles what it missed', async () => {
    const sb = await create();
    const container = await containerOf(sb);
    relay.cut();
    // Killed while Cove cannot hear it (this test's own docker CLI talks to the engine directly).
    docker('kill', container);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await dto(sb.id)).state).toBe('started');
    const resumedAt = Date.now();
    relay.resume();
    const { after, ms } = await leftStarted(sb.id, resumedAt, 30_000);
    expect(after).toMatchObject({ state: 'error', errorReason: expect.stringMatching(/exited with code 137/) });
    expect(storedIp(sb.id)).toBeNull();
    // Reconnection backs off from 250 ms: seen again once the engine is back (leftStarted waits 30 s at most).
    console.log(`a death missed while the stream was cut noticed ${ms} ms after it came back`);
    expect(cove.output()).toMatch(/event stream ended; following it again/);
    // And it follows events again: the next death is noticed as it happens.
    await sb.start(60);
    const again = await containerOf(sb);
    const killedAt = Date.now();
    docker('kill', again);
    console.log(`the next kill noticed after ${(await leftStarted(sb.id, killedAt)).ms} ms`);
  }, 120_000);

  it('a server restart clears the addresses of sandboxes whose containers died meanwhile', async () => {
    const sb = await create();
    const container = await containerOf(sb);
    expect(await cove.stop()).toBe(0);
    expect(storedIp(sb.id)).not.toBeNull();
    docker('kill', container);
    cove = await startCove({ pool: 1, dataDir: cove.dataDir, apiKey: cove.apiKey, env: { DOCKER_HOST: `unix://${path.join(relayDir, 'docker.sock')}` } });
    daytona = cove.daytona();
    expect(await dto(sb.id)).toMatchObject({ state: 'error', errorReason: expect.stringMatching(/exited with code 137/) });
    expect(storedIp(sb.id)).toBeNull();
  }, 120_000);
});
