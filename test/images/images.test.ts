import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { BASE_IMAGE } from '../../images/src/base';
import { buildImages, CONTENT_HASH_LABEL, ensureImages, sandboxContentHash, SANDBOX_IMAGE, type BuildResult } from '../../images/src/build';
import { BUNDLE_MOUNT } from '../../images/src/bundle';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../../images/src/busybox';
import { docker, imageLabel } from '../../images/src/host';

// Real Docker, real images, real agents in containers on a bridge network this file creates. Addresses used are
// only those of these containers.

const TEST_LABEL = 'dev.cove.test=images';
const network = `cove-images-test-${randomBytes(4).toString('hex')}`;
const containers: string[] = [];
const log = (line: string) => process.stderr.write(`[images test] ${line}\n`);
let images: BuildResult;

beforeAll(async () => {
  images = await ensureImages(log);
  await buildBusyboxImage({ log });
  docker(['network', 'create', '--label', TEST_LABEL, network]);
}, 30 * 60_000);

afterAll(() => {
  for (const id of containers) {
    try {
      execFileSync('docker', ['rm', '-f', '-v', id], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
  try {
    execFileSync('docker', ['network', 'rm', network], { stdio: 'ignore' });
  } catch {
    /* never created */
  }
});

/** `docker run --rm IMAGE sh -c SCRIPT` on no network; returns stdout, throws with stderr. */
function runScript(image: string, script: string, opts: { user?: string; shell?: string } = {}): string {
  return docker(['run', '--rm', '--network', 'none', ...(opts.user ? ['--user', opts.user] : []), '--entrypoint', opts.shell ?? '/bin/sh', image, '-c', script]);
}

interface AgentContainer {
  id: string;
  url: string;
  token: string;
  json<T = any>(path: string, body?: unknown): Promise<T>;
  ws(path: string): WebSocket;
}

/**
 * Starts an agent container on the test network (docker run -d, removed after the file) and waits until it answers
 * GET /version with its token. `args` go between the image options and the image name.
 */
async function startAgentContainer(image: string, opts: { mountBundle: boolean; command?: string[] }): Promise<AgentContainer> {
  const token = randomBytes(24).toString('hex');
  const args = ['run', '-d', '--label', TEST_LABEL, '--network', network, '--security-opt', 'no-new-privileges', '-e', `COVE_AGENT_TOKEN=${token}`];
  if (opts.mountBundle) args.push('-v', `${images.bundleDir}:${BUNDLE_MOUNT}:ro`, '--entrypoint', `${BUNDLE_MOUNT}/bin/node`);
  const id = docker([...args, image, ...(opts.command ?? [])]);
  containers.push(id);
  const ip = docker(['inspect', '--format', `{{ (index .NetworkSettings.Networks ${JSON.stringify(network)}).IPAddress }}`, id]);
  expect(ip, `container ${id} has no address on ${network}`).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  const url = `http://${ip}:2280`;
  const auth = { Authorization: `Bearer ${token}` };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${url}/version`, { headers: auth, signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    const state = docker(['inspect', '--format', '{{.State.Status}}', id]);
    if (state !== 'running' || Date.now() > deadline) {
      throw new Error(`the agent in ${image} is not answering (container ${state}); its output:\n${logsOf(id)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    id,
    url,
    token,
    async json(path, body) {
      const res = await fetch(url + path, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${path} → ${res.status}: ${text}\nagent output:\n${logsOf(id)}`);
      return JSON.parse(text);
    },
    ws: (path) => new WebSocket(url.replace(/^http/, 'ws') + path, { headers: auth }),
  };
}

function logsOf(id: string): string {
  try {
    return execFileSync('docker', ['logs', '--tail', '50', id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
}

/** Opens a terminal over the PTY WebSocket, types `input`, and resolves with the output once it matches `until`. */
function ptyRoundTrip(agent: AgentContainer, input: string, until: RegExp): Promise<string> {
  const ws = agent.ws(`/process/pty/create-connect?id=images-${randomBytes(3).toString('hex')}&cols=100&rows=30`);
  const decoder = new StringDecoder('utf8');
  let out = '';
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${until} from the terminal; it printed:\n${JSON.stringify(out)}`)), 20_000);
    ws.on('open', () => ws.send(input));
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) return; // control messages
      out += decoder.write(data);
      if (until.test(out)) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  }).finally(() => ws.close());
}

/** What every agent must do wherever it runs: answer, run a command, run JavaScript and TypeScript, and a PTY. */
async function expectWorkingAgent(agent: AgentContainer): Promise<void> {
  expect(await agent.json('/version')).toMatchObject({ version: expect.any(String) });
  expect(await agent.json('/process/execute', { command: 'echo hi' })).toEqual({ exitCode: 0, result: 'hi\n' });
  // code-run starts process.execPath: the bundled node at /opt/cove/bin/node, through the bundle's loader.
  expect(await agent.json('/process/code-run', { language: 'javascript', code: 'console.log(6*7)' })).toEqual({ exitCode: 0, result: '42\n' });
  expect(
    await agent.json('/process/code-run', { language: 'typescript', code: 'const n: number = 6 * 7;\nconsole.log(`ts ${n} ${process.execPath}`);' }),
  ).toEqual({ exitCode: 0, result: `ts 42 ${BUNDLE_MOUNT}/bin/node\n` });
  // node-pty's native module, loaded by the bundled node, forks a shell on a real terminal.
  await ptyRoundTrip(agent, 'echo pty-$((6*7)) && tty\r', /pty-42\r?\n\/dev\/pts\/\d+/);
}

describe('the default sandbox image', () => {
  it('has the tools, the language servers and the non-root user cove', () => {
    const out = runScript(
      SANDBOX_IMAGE,
      [
        'set -e',
        'git --version',
        'python3 --version',
        'pip --version',
        'node --version',
        'npm --version',
        'tsc --version',
        'typescript-language-server --version',
        'pyright --version',
        'command -v pyright-langserver',
        'command -v cc make',
        'id',
        'echo "home=$HOME"',
      ].join('\n'),
      { user: 'cove', shell: '/bin/bash' },
    );
    expect(out).toMatch(/^git version 2\./m);
    expect(out).toMatch(/^Python 3\.\d+/m);
    expect(out).toMatch(/^pip \d+/m);
    expect(out).toContain(`${process.version}\n`); // this host's Node, copied in
    expect(out).toMatch(/^Version 5\.9\.\d+$/m); // tsc
    expect(out).toMatch(/^5\.3\.\d+$/m); // typescript-language-server
    expect(out).toMatch(/^pyright 1\.1\.\d+/m);
    expect(out).toContain('/usr/local/bin/pyright-langserver');
    expect(out).toContain('/usr/bin/cc');
    expect(out).toMatch(/^uid=1000\(cove\) gid=1000\(cove\)/m);
    expect(out).toContain('home=/home/cove');
  });

  it('is labelled for the runtime, without sudo', () => {
    expect(imageLabel(SANDBOX_IMAGE, 'dev.cove.agent')).toBe('baked');
    expect(imageLabel(SANDBOX_IMAGE, 'dev.cove.user')).toBe('cove');
    expect(imageLabel(SANDBOX_IMAGE, CONTENT_HASH_LABEL)).toBe(images.sandboxHash);
    expect(runScript(SANDBOX_IMAGE, 'ls /etc/sudoers.d 2>/dev/null; command -v sudo || echo no-sudo')).toBe('no-sudo');
  });

  it('runs its baked agent as PID 1, with user code as cove', async () => {
    const agent = await startAgentContainer(SANDBOX_IMAGE, { mountBundle: false });
    await expectWorkingAgent(agent);
    expect(await agent.json('/process/execute', { command: 'sh -c "id -un; pwd"' })).toEqual({ exitCode: 0, result: 'cove\n/home/cove\n' });
    const pid1 = ['/opt/cove/bin/node', '/opt/cove/agent/cli.mjs', 'agent', '--user', 'cove', '--workdir', '/home/cove', '--'];
    expect(await agent.json('/process/execute', { command: 'cat /proc/1/cmdline' })).toEqual({ exitCode: 0, result: `${pid1.join('\0')}\0` });
    expect(await agent.json('/process/code-run', { language: 'python', code: 'import sys; print(sys.version_info[0] * 14)' })).toEqual({
      exitCode: 0,
      result: '42\n',
    });
  });

  it('is kept when nothing changed: a second build builds nothing', async () => {
    const again = await buildImages({ log });
    expect(again.built).toEqual([]);
    expect(again.sandboxHash).toBe(images.sandboxHash);
    expect(again.bundleHash).toBe(images.bundleHash);
  });

  it('is rebuilt when its Dockerfile, the bundle, the runtime or the base change (content hash)', () => {
    const inputs = { dockerfile: 'FROM x\n', bundleHash: 'b1', runtime: 'node v20', baseId: 'sha256:1' };
    const hash = sandboxContentHash(inputs);
    expect(sandboxContentHash({ ...inputs })).toBe(hash);
    for (const change of [{ dockerfile: 'FROM y\n' }, { bundleHash: 'b2' }, { runtime: 'node v22' }, { baseId: 'sha256:2' }]) {
      expect(sandboxContentHash({ ...inputs, ...change }), JSON.stringify(change)).not.toBe(hash);
    }
  });
});

describe('the agent bundle, mounted read-only at /opt/cove', () => {
  const agentCommand = [`${BUNDLE_MOUNT}/agent/cli.mjs`, 'agent'];

  it('finds nothing of glibc, passwd or Node in the busybox-only image', () => {
    const out = runScript(
      BUSYBOX_IMAGE,
      'find / -xdev \\( -name "libc.so*" -o -name "ld-linux*" -o -name "libc.musl*" -o -name node \\) -print; ls /etc/passwd 2>&1; echo done',
    );
    expect(out).toBe('ls: /etc/passwd: No such file or directory\ndone');
  });

  it('runs the agent in the busybox-only image (no libc, no passwd)', async () => {
    const agent = await startAgentContainer(BUSYBOX_IMAGE, { mountBundle: true, command: agentCommand });
    await expectWorkingAgent(agent);
    expect(await agent.json('/process/execute', { command: 'id -u' })).toEqual({ exitCode: 0, result: '0\n' });
    // OpenSSH's SFTP server from the bundle loads there too (no libc in the image). Like OpenSSH anywhere, it then
    // wants a passwd entry for its user, which this image lacks.
    const sftp = await agent.json('/process/execute', { command: `${BUNDLE_MOUNT}/bin/sftp-server 2>&1 </dev/null; echo "exit $?"` });
    expect(sftp.result).toBe('No user found for uid 0\nexit 1\n');
  });

  it(`runs the agent in ${BASE_IMAGE}`, async () => {
    const agent = await startAgentContainer(BASE_IMAGE, { mountBundle: true, command: agentCommand });
    await expectWorkingAgent(agent);
    expect(await agent.json('/process/execute', { command: 'sh -c "ls /opt/cove && touch /opt/cove/x"' })).toMatchObject({
      exitCode: 1,
      result: expect.stringMatching(/agent\nbin\nlib\n[\s\S]*Read-only file system/),
    });
  });
});
