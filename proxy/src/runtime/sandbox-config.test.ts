import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { AGENT_COMMAND, BUNDLE_MOUNT } from '../../../images/src/bundle';
import { agentCommand, chooseUser, chooseWorkdir, containerCreateOptions, imageEntrypoint, RUNSC_HOST_TASKS_PER_PROCESS, SANDBOX_CAPABILITIES, storageSize, userNameOfUid, validateSpec } from './sandbox-config';
import { RuntimeError, type SandboxSpec } from './types';

/** An image inspect result with only the Config parts these functions read. */
const image = (config: { User?: string; Labels?: Record<string, string>; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string } = {}) =>
  ({ Config: config }) as unknown as Dockerode.ImageInspectInfo;
const SPEC: SandboxSpec = { name: 'cove-abc', image: 'cove-sandbox:latest', agentToken: 't'.repeat(32) };

const TOKEN_FILE = ['--token-file', '/run/cove/agent-token'];

describe('chooseUser', () => {
  it("prefers the spec, then the image label, then the image USER, then Cove's non-root account, created when missing", () => {
    expect(chooseUser({ user: 'alice' }, image({ User: 'bob', Labels: { 'dev.cove.user': 'carol' } }))).toEqual({ name: 'alice' });
    expect(chooseUser({ user: '  ' }, image({ User: 'bob', Labels: { 'dev.cove.user': 'carol' } }))).toEqual({ name: 'carol' });
    expect(chooseUser({}, image({ User: 'bob:staff' }))).toEqual({ name: 'bob' });
    expect(chooseUser({}, image())).toEqual({ name: 'cove', create: true });
    expect(chooseUser({}, { Config: undefined } as unknown as Dockerode.ImageInspectInfo)).toEqual({ name: 'cove', create: true });
    expect(chooseUser({}, image({ User: 'root' }))).toEqual({ name: 'root' });
  });

  it('leaves a numeric USER as a uid to resolve, except 0 which is root', () => {
    expect(chooseUser({}, image({ User: '1000:1000' }))).toEqual({ uid: 1000 });
    expect(chooseUser({}, image({ User: '0' }))).toEqual({ name: 'root' });
    expect(chooseUser({}, image({ User: '00' }))).toEqual({ name: 'root' });
  });
});

describe('userNameOfUid', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\nbroken line\nnobody:x::65534\ndev:x:1000:1000::/home/dev:/bin/sh\n';
  it('finds the account of a uid in /etc/passwd, and nothing for an unknown or empty uid', () => {
    expect(userNameOfUid(passwd, 1000)).toBe('dev');
    expect(userNameOfUid(passwd, 0)).toBe('root');
    expect(userNameOfUid(passwd, 65534)).toBeUndefined();
    expect(userNameOfUid(passwd, 42)).toBeUndefined();
    expect(userNameOfUid('', 0)).toBeUndefined();
  });
});

describe('entrypoint, command and work dir', () => {
  it("runs the image's ENTRYPOINT and CMD after the agent, unless the agent is baked in", () => {
    expect(imageEntrypoint(image({ Entrypoint: ['/docker-entrypoint.sh'], Cmd: ['nginx', '-g', 'daemon off;'] }))).toEqual(['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;']);
    expect(imageEntrypoint(image({ Cmd: ['bash'] }))).toEqual(['bash']);
    expect(imageEntrypoint(image({ Cmd: ['bash'], Labels: { 'dev.cove.agent': 'baked' } }))).toEqual([]);
    expect(agentCommand({ user: 'dev', port: 2280, entrypoint: [] })).toEqual([...AGENT_COMMAND, ...TOKEN_FILE, '--port', '2280', '--user', 'dev']);
    expect(agentCommand({ user: 'cove', createUser: true, port: 2280, entrypoint: [] })).toEqual([...AGENT_COMMAND, ...TOKEN_FILE, '--port', '2280', '--user', 'cove', '--create-user']);
    expect(agentCommand({ user: 'root', workdir: '/app', port: 1, entrypoint: ['npm', 'start'] })).toEqual([
      ...AGENT_COMMAND,
      ...TOKEN_FILE,
      '--port',
      '1',
      '--user',
      'root',
      '--workdir',
      '/app',
      '--hold-entrypoint',
      '--',
      'npm',
      'start',
    ]);
  });

  it("uses the image's WORKDIR unless it is the root or unset", () => {
    expect(chooseWorkdir(image({ WorkingDir: '/app ' }))).toBe('/app');
    expect(chooseWorkdir(image({ WorkingDir: '/' }))).toBeUndefined();
    expect(chooseWorkdir(image({ WorkingDir: '' }))).toBeUndefined();
    expect(chooseWorkdir(image())).toBeUndefined();
  });
});

describe('validateSpec', () => {
  it('takes a valid spec', () => {
    expect(() => validateSpec({ ...SPEC, cpu: 0.5, memoryGiB: 2, pids: 100, env: { A: '1' }, user: 'www-data' })).not.toThrow();
  });

  it('refuses what the engine would refuse less clearly, naming what is wrong', () => {
    const refused: Array<[Partial<SandboxSpec>, RegExp]> = [
      [{ name: '-x' }, /name/],
      [{ name: 'a/b' }, /name/],
      [{ image: '' }, /image/],
      [{ agentToken: 'short' }, /token/],
      [{ cpu: 0 }, /cpu/],
      [{ memoryGiB: -1 }, /memoryGiB/],
      [{ pids: Number.NaN }, /pids/],
      [{ cpu: Number.POSITIVE_INFINITY }, /cpu/],
      [{ env: { 'A=B': '1' } }, /environment variable/],
      [{ env: { '': '1' } }, /environment variable/],
      [{ env: { 'A\0': '1' } }, /environment variable/],
      [{ user: 'root; rm -rf /' }, /user name/],
      [{ user: '1000' }, /user name/],
      [{ volumes: [{ volume: '../x', target: '/data' }] }, /volume name/],
      [{ volumes: [{ volume: 'cove-vol-1', target: 'data' }] }, /mount path/],
    ];
    for (const [change, why] of refused) {
      let error: unknown;
      try {
        validateSpec({ ...SPEC, ...change });
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(change)).toBeInstanceOf(RuntimeError);
      expect((error as Error).message, JSON.stringify(change)).toMatch(why);
    }
  });
});

describe('containerCreateOptions', () => {
  const create = (spec: Partial<SandboxSpec> = {}, img = image({ Cmd: ['sleep', 'infinity'] }), runtime: 'runc' | 'runsc' = 'runc') =>
    containerCreateOptions({
      spec: { ...SPEC, ...spec },
      image: img,
      user: 'dev',
      bundleDir: '/var/lib/cove/bundle/../bundle',
      secretsDir: '/var/lib/cove/agent-secrets/abc',
      network: 'cove-net',
      agentPort: 2280,
      runtime,
    });

  it('mounts named volumes read-write without copying the image into them, and none when there are none', () => {
    expect(create().HostConfig?.Mounts).toBeUndefined();
    const o = create({ volumes: [{ volume: 'cove-vol-1', target: '/data' }, { volume: 'cove-vol-2', target: '/home/cove/x' }] });
    expect(o.HostConfig?.Mounts).toEqual([
      { Type: 'volume', Source: 'cove-vol-1', Target: '/data', ReadOnly: false, VolumeOptions: { NoCopy: true } },
      { Type: 'volume', Source: 'cove-vol-2', Target: '/home/cove/x', ReadOnly: false, VolumeOptions: { NoCopy: true } },
    ]);
  });

  it("runs the mounted agent as root under Docker's init, with the image entrypoint after it, read-only bundle, no CMD", () => {
    const o = create();
    expect(o.User).toBe('0:0');
    expect(o.Entrypoint).toEqual([...AGENT_COMMAND, '--token-file', '/run/cove/agent-token', '--port', '2280', '--user', 'dev', '--hold-entrypoint', '--', 'sleep', 'infinity']);
    expect(o.Cmd).toEqual([]);
    expect(o.StopSignal).toBe('SIGTERM');
    expect(o.HostConfig?.Binds).toEqual([`/var/lib/cove/bundle:${BUNDLE_MOUNT}:ro`, '/var/lib/cove/agent-secrets/abc:/run/cove:ro']);
    expect(o.HostConfig?.Init).toBe(true);
    expect(o.HostConfig?.NetworkMode).toBe('cove-net');
  });

  it('keeps only the listed capabilities, no privilege, no new privileges', () => {
    const h = create().HostConfig!;
    expect(h.Privileged).toBe(false);
    expect(h.CapDrop).toEqual(['ALL']);
    expect(h.CapAdd).toEqual([...SANDBOX_CAPABILITIES]);
    expect(h.CapAdd).not.toContain('NET_RAW');
    expect(h.CapAdd).not.toContain('SYS_ADMIN');
    expect(h.SecurityOpt).toEqual(['no-new-privileges']);
    expect(h.RestartPolicy).toEqual({ Name: 'no' });
  });

  it('sets CPU, memory without swap and a pids limit, with defaults', () => {
    expect(create().HostConfig).toMatchObject({ NanoCpus: 1e9, Memory: 1024 ** 3, MemorySwap: 1024 ** 3, PidsLimit: 1024 });
    expect(create({ cpu: 2.5, memoryGiB: 0.5, pids: 64 }).HostConfig).toMatchObject({ NanoCpus: 2.5e9, Memory: 512 * 1024 ** 2, MemorySwap: 512 * 1024 ** 2, PidsLimit: 64 });
  });

  it("passes the user's environment, never the agent's token nor a variable of its name", () => {
    const env = create({ env: { A: '1', COVE_AGENT_TOKEN: 'forged-token-forged', B: 'x=y' } }).Env!;
    expect(env).toEqual(['A=1', 'B=x=y']);
  });

  it("blanks the image's own Cove labels and marks the container managed", () => {
    const img = image({ Labels: { 'dev.cove.sandbox': 'someone-else', 'dev.cove.user': 'dev', 'org.example': 'kept by Docker' } });
    expect(create({ labels: { 'dev.cove.sandbox': 'mine', extra: '1' } }, img).Labels).toEqual({
      'dev.cove.sandbox': 'mine',
      'dev.cove.user': '',
      extra: '1',
      'dev.cove.managed': '1',
      'dev.cove.runtime': 'runc',
    });
    // A spec cannot unset the managed label, nor name another runtime than the one the container runs under.
    expect(create({ labels: { 'dev.cove.managed': '0', 'dev.cove.runtime': 'runsc' } }).Labels).toMatchObject({ 'dev.cove.managed': '1', 'dev.cove.runtime': 'runc' });
  });

  it('names the OCI runtime on every container, runc included, with the same security settings under both', () => {
    const runc = create();
    const runsc = create({}, undefined, 'runsc');
    expect(runc.HostConfig?.Runtime).toBe('runc');
    expect(runsc.HostConfig?.Runtime).toBe('runsc');
    expect(runsc.Labels?.['dev.cove.runtime']).toBe('runsc');
    const { Runtime: _a, PidsLimit: _b, Ulimits: _c, ...rest } = runsc.HostConfig!;
    const { Runtime: _d, PidsLimit: _e, ...restRunc } = runc.HostConfig!;
    expect(rest).toEqual(restRunc);
  });

  it('limits processes per user inside gVisor under runsc, the host tasks of its Sentry as a backstop', () => {
    expect(create({ pids: 64 }).HostConfig).toMatchObject({ PidsLimit: 64 });
    expect(create({ pids: 64 }).HostConfig?.Ulimits).toBeUndefined();
    expect(create({ pids: 64 }, undefined, 'runsc').HostConfig).toMatchObject({
      PidsLimit: 64 * RUNSC_HOST_TASKS_PER_PROCESS,
      Ulimits: [{ Name: 'nproc', Soft: 64, Hard: 64 }],
    });
  });

  it('uses the WORKDIR of the image for the agent', () => {
    expect(create({}, image({ WorkingDir: '/srv' })).Entrypoint).toEqual([...AGENT_COMMAND, ...TOKEN_FILE, '--port', '2280', '--user', 'dev', '--workdir', '/srv']);
  });

  it("asks the engine for the sandbox's size only where it enforces sizes, adding the image's where it counts it", () => {
    const withSize = (storageOpt: { countsImage: boolean } | undefined, diskGiB?: number) =>
      containerCreateOptions({
        spec: { ...SPEC, diskGiB },
        image: { ...image(), Size: 1_500_000_000 },
        user: 'dev',
        bundleDir: '/b',
        secretsDir: '/s',
        network: 'cove',
        agentPort: 2280,
        storageOpt,
        runtime: 'runc',
      }).HostConfig?.StorageOpt;
    expect(withSize(undefined, 3)).toBeUndefined();
    expect(withSize({ countsImage: false }, 3)).toEqual({ size: '3G' });
    expect(withSize({ countsImage: true }, 3)).toEqual({ size: String(3 * 1024 ** 3 + 1_500_000_000) });
    expect(withSize({ countsImage: false })).toBeUndefined();
    expect(storageSize(10, 0)).toBe('10G');
    expect(() => validateSpec({ ...SPEC, diskGiB: 0 })).toThrow(/diskGiB must be a positive number/);
  });
});
