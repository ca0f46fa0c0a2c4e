import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDockerRuntime } from '../../proxy/src/runtime/docker-runtime';
import { FIREWALL_COMMENT } from '../../proxy/src/runtime/network';
import { SANDBOX_CAPABILITIES } from '../../proxy/src/runtime/sandbox-config';
import { AgentNotReadyError, ImageNotFoundError, type DockerRuntime, type SandboxSpec } from '../../proxy/src/runtime/types';
import { waitFor } from '../helpers/agent';
import { agentClient, agentToken, buildTestImage, prepareSandboxAssets, removeImage, requireDocker, uniqueName } from '../helpers/docker';

const run = promisify(execFile);

let docker: Dockerode;
let runtime: DockerRuntime;
let baseImage: string;
/** Containers the current test created; removed after each test. */
const created: string[] = [];
/** Images built by the suite; removed at the end. */
const images: string[] = [];

beforeAll(async () => {
  docker = await requireDocker();
  const assets = await prepareSandboxAssets();
  baseImage = assets.baseImage;
  runtime = createDockerRuntime({ bundleDir: assets.bundleDir, docker });
  await runtime.ensureNetwork();
});

afterEach(async () => {
  await Promise.all(created.splice(0).map((id) => runtime.remove(id)));
});

afterAll(async () => {
  await Promise.all(images.splice(0).map(removeImage));
});

/** Creates a sandbox (tracked for cleanup), waits for its agent, and returns a client of it. */
async function sandbox(spec: Partial<SandboxSpec> = {}) {
  const token = agentToken();
  const started = Date.now();
  const { containerId, ip } = await runtime.createSandbox({ name: uniqueName('cove-rt'), image: baseImage, agentToken: token, ...spec });
  created.push(containerId);
  await runtime.waitForAgent(ip, token, 20_000);
  return { containerId, ip, token, readyMs: Date.now() - started, agent: agentClient(ip, token) };
}

async function testImage(dockerfile: string): Promise<string> {
  const tag = await buildTestImage(dockerfile);
  images.push(tag);
  return tag;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('docker runtime', () => {
  it('creates a sandbox whose agent runs commands, labelled and listed as Cove’s', async () => {
    const s = await sandbox({ labels: { 'dev.cove.sandbox': 'sbx-1' }, env: { GREETING: 'hello there' } });
    const out = await s.agent.exec('echo "$GREETING"; id -un; pwd; echo "token:${COVE_AGENT_TOKEN:-none}"');
    expect(out).toEqual({ exitCode: 0, result: 'hello there\ncove\n/home/cove\ntoken:none\n' });

    const info = await runtime.inspect(s.containerId);
    expect(info).toMatchObject({ state: 'running', ip: s.ip, labels: { 'dev.cove.managed': '1', 'dev.cove.sandbox': 'sbx-1' } });
    const listed = (await runtime.listManaged()).find((c) => c.id === s.containerId);
    expect(listed).toMatchObject({ state: 'running', ip: s.ip, labels: { 'dev.cove.sandbox': 'sbx-1' } });
    expect(await runtime.memoryUsage(s.containerId)).toBeGreaterThan(1024 * 1024);
    console.log(`create → agent ready: ${s.readyMs} ms`);
  });

  it('applies the limits and the security settings, visible inside and in inspect', async () => {
    const s = await sandbox({ cpu: 0.5, memoryGiB: 0.5, pids: 200 });
    const read = async (cmd: string) => {
      const r = await s.agent.exec(cmd);
      expect(r.exitCode, r.result).toBe(0);
      return r.result.trim();
    };
    expect(await read('cat /sys/fs/cgroup/memory/memory.limit_in_bytes')).toBe(String(512 * 1024 ** 2));
    expect(await read('cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null || echo no-swap-accounting')).toMatch(
      new RegExp(`^(${512 * 1024 ** 2}|no-swap-accounting)$`),
    );
    expect(await read('cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us')).toBe('50000\n100000');
    expect(await read('cat /sys/fs/cgroup/pids/pids.max')).toBe('200');
    expect(await read('grep NoNewPrivs /proc/self/status')).toMatch(/NoNewPrivs:\s+1/);
    // The agent's effective capabilities are exactly the ones added back.
    const capEff = BigInt(`0x${(await read('grep CapEff /proc/1/status')).split(/\s+/)[1]}`);
    const bits: Record<string, number> = { CHOWN: 0, DAC_OVERRIDE: 1, FOWNER: 3, FSETID: 4, KILL: 5, SETGID: 6, SETUID: 7, NET_BIND_SERVICE: 10 };
    expect(capEff).toBe(SANDBOX_CAPABILITIES.reduce((mask, cap) => mask | (1n << BigInt(bits[cap])), 0n));
    // The bundle is mounted read-only: a sandbox cannot replace the agent.
    expect((await s.agent.exec('touch /opt/cove/bin/node')).exitCode).not.toBe(0);

    const hc = (await docker.getContainer(s.containerId).inspect()).HostConfig;
    expect(hc.Privileged).toBe(false);
    expect(hc.CapDrop).toEqual(['ALL']);
    expect([...(hc.CapAdd ?? [])].sort()).toEqual([...SANDBOX_CAPABILITIES].sort());
    expect(hc.SecurityOpt).toContain('no-new-privileges');
    expect(hc.Memory).toBe(512 * 1024 ** 2);
    expect(hc.MemorySwap).toBe(hc.Memory);
    expect(hc.NanoCpus).toBe(0.5e9);
    expect(hc.PidsLimit).toBe(200);
    expect(hc.RestartPolicy?.Name || 'no').toBe('no');
  });

  it("runs the image's own ENTRYPOINT/CMD as the entrypoint session, but not for images with the agent baked in", async () => {
    const cmd = 'CMD ["sh", "-c", "echo ran > /tmp/entrypoint-ran; echo entrypoint-output; exec sleep infinity"]';
    const plain = await testImage(`FROM ${baseImage}\n${cmd}\n`);
    const s = await sandbox({ image: plain });
    const session = await s.agent.get<{ sessionId: string; commands: { command: string }[] }>('/process/session/entrypoint');
    expect(session.commands).toHaveLength(1);
    expect(session.commands[0].command).toContain('/tmp/entrypoint-ran');
    await waitFor(async () => (await s.agent.exec('cat /tmp/entrypoint-ran')).result === 'ran\n', 10_000, 'the CMD to write its file');
    const logs = await s.agent.get<{ output: string }>('/process/session/entrypoint/logs');
    expect(logs.output).toContain('entrypoint-output');

    // dev.cove.agent=baked: the image's ENTRYPOINT is the agent itself, so nothing runs as a session.
    const baked = await testImage(`FROM ${baseImage}\nLABEL dev.cove.agent=baked\n${cmd}\n`);
    const b = await sandbox({ image: baked });
    expect((await b.agent.fetch('/process/session/entrypoint')).status).toBe(404);
    expect((await b.agent.exec('test -e /tmp/entrypoint-ran')).exitCode).not.toBe(0);
    // The image's dev.cove.* labels are not inherited by the container.
    expect((await runtime.inspect(b.containerId))?.labels['dev.cove.agent']).toBeUndefined();
  });

  it('runs user code as the spec user, else the image label dev.cove.user, else the image USER, else a non-root account cove', async () => {
    const labelled = await testImage(
      `FROM ${baseImage}\nRUN useradd -m -s /bin/bash alice && useradd -m -s /bin/bash bob\nLABEL dev.cove.user=alice\n`,
    );
    const a = await sandbox({ image: labelled });
    expect(await a.agent.exec('id -un; pwd')).toEqual({ exitCode: 0, result: 'alice\n/home/alice\n' });
    const b = await sandbox({ image: labelled, user: 'bob' });
    expect((await b.agent.exec('id -un')).result).toBe('bob\n');

    // A bare uid as USER is looked up in the image's /etc/passwd.
    const numeric = await testImage(`FROM ${baseImage}\nRUN useradd -m -u 1234 -s /bin/bash carol\nUSER 1234\n`);
    const c = await sandbox({ image: numeric });
    expect(await c.agent.exec('id -un; pwd')).toEqual({ exitCode: 0, result: 'carol\n/home/carol\n' });

    // A user the image does not have: the agent refuses to start and the error carries its log lines.
    // (createSandbox itself fails when the agent has already exited by the time the container is inspected.)
    const token = agentToken();
    const err = await runtime
      .createSandbox({ name: uniqueName('cove-rt'), image: baseImage, agentToken: token, user: 'nobody-here' })
      .then((bad) => {
        created.push(bad.containerId);
        return runtime.waitForAgent(bad.ip, token, 10_000);
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentNotReadyError);
    expect((err as Error).message).toMatch(/exited with code \d+/);
    expect((err as AgentNotReadyError).detail).toContain('nobody-here');
    expect((err as Error).message).toContain('nobody-here');
  });

  it("reaps the orphans user code leaves behind (Docker's init is PID 1; the agent runs under it)", async () => {
    const s = await sandbox();
    const pid1 = await s.agent.exec('tr "\\0" " " < /proc/1/cmdline');
    expect(pid1.result).toMatch(/^\/sbin\/docker-init -- \/opt\/cove\/bin\/node /);
    // Five background jobs whose parent exits at once: they are re-parented to PID 1 and must not stay zombies.
    await s.agent.exec('for i in 1 2 3 4 5; do (sleep 0.2 >/dev/null 2>&1 &); done');
    const zombies = async () => (await s.agent.exec("cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l")).result.trim();
    await waitFor(async () => (await zombies()) === '0' && (await s.agent.exec("grep -lx sleep /proc/[0-9]*/comm 2>/dev/null | wc -l")).result.trim() === '0', 5000, 'orphans to exit and be reaped');
    expect(await zombies()).toBe('0');
  });

  it('keeps files across stop and start', async () => {
    const s = await sandbox();
    expect((await s.agent.exec('echo kept > /home/cove/note.txt')).exitCode).toBe(0);
    await runtime.stop(s.containerId, 5);
    expect((await runtime.inspect(s.containerId))?.state).toBe('exited');
    await runtime.stop(s.containerId, 5); // stopping a stopped sandbox is not an error

    const { ip } = await runtime.start(s.containerId, s.token);
    expect((await runtime.inspect(s.containerId))?.state).toBe('running');
    await runtime.waitForAgent(ip, s.token, 20_000);
    expect(await agentClient(ip, s.token).exec('cat /home/cove/note.txt')).toEqual({ exitCode: 0, result: 'kept\n' });
  });

  it('removes a sandbox completely, and removing it again is not an error', async () => {
    const s = await sandbox();
    await runtime.remove(s.containerId);
    expect(await runtime.inspect(s.containerId)).toBeUndefined();
    expect((await runtime.listManaged()).some((c) => c.id === s.containerId)).toBe(false);
    const { stdout } = await run('docker', ['ps', '-aq', '--no-trunc', '--filter', `id=${s.containerId}`]);
    expect(stdout.trim()).toBe('');
    await runtime.remove(s.containerId);
  });

  it('keeps sandboxes away from each other and from host services, while the host reaches every agent', async () => {
    const { gateway } = await runtime.ensureNetwork();
    let hostConnections = 0;
    const server = net.createServer((socket) => {
      hostConnections++;
      socket.on('error', () => {}); // the probe resets its connection
      socket.end('hello\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    const hostPort = (server.address() as net.AddressInfo).port;
    try {
      const a = await sandbox();
      const b = await sandbox();
      const canConnect = async (ip: string, port: number) =>
        (await a.agent.exec(`timeout 2 bash -c '</dev/tcp/${ip}/${port}' 2>/dev/null && echo open || echo closed`)).result.trim();

      // Control: the probe works (A reaches its own agent), and the host's server answers on the gateway address.
      expect(await canConnect(a.ip, 2280)).toBe('open');
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect(hostPort, gateway, () => {
          socket.destroy();
          resolve();
        });
        socket.on('error', reject);
      });
      expect(hostConnections).toBe(1);

      expect(await canConnect(b.ip, 2280)).toBe('closed');
      expect(await canConnect(gateway, hostPort)).toBe('closed');
      expect(hostConnections).toBe(1);

      for (const s of [a, b]) expect((await s.agent.fetch('/version')).status).toBe(200);
    } finally {
      server.close();
    }
    // The firewall rules are installed once, however often ensureNetwork runs.
    await Promise.all([runtime.ensureNetwork(), createDockerRuntime({ bundleDir: '/nonexistent', docker }).ensureNetwork()]);
    // Of this bridge: the jump from INPUT, and its chain's accepts (replies, redirects to the egress services) and drop.
    const { bridge } = await runtime.ensureNetwork();
    const { stdout } = await run('iptables', ['-w', '5', '-S']);
    const ours = stdout.split('\n').filter((l) => l.includes(FIREWALL_COMMENT) && (l.includes(`-i ${bridge} `) || l.includes(`COVE-IN-${bridge}`.slice(0, 28))));
    expect(ours).toHaveLength(4);
  });

  it('creates 10 sandboxes at once, all ready, then removes them', async () => {
    // allSettled: every create must have finished (and been tracked for cleanup) before the test may end.
    const settled = await Promise.allSettled(Array.from({ length: 10 }, () => sandbox({ labels: { 'dev.cove.pool': 'test' } })));
    const failed = settled.filter((r) => r.status === 'rejected');
    expect(failed.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    const all = settled.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof sandbox>>>).value);
    const versions = await Promise.all(all.map((s) => s.agent.fetch('/version').then((r) => r.status)));
    expect(versions).toEqual(Array(10).fill(200));
    expect(new Set(all.map((s) => s.ip)).size).toBe(10);
    console.log(`10 concurrent creates → agent ready: median ${median(all.map((s) => s.readyMs))} ms, max ${Math.max(...all.map((s) => s.readyMs))} ms`);

    await Promise.all(all.map((s) => runtime.remove(s.containerId)));
    const ids = new Set(all.map((s) => s.containerId));
    expect((await runtime.listManaged()).filter((c) => ids.has(c.id))).toEqual([]);
  });

  it('names the fix when the image is missing', async () => {
    const err = await runtime
      .createSandbox({ name: uniqueName('cove-rt'), image: 'cove-no-such-image:latest', agentToken: agentToken() })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    expect((err as Error).message).toContain('cove images build');
  });
});
