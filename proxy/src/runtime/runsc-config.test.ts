import { describe, expect, it } from 'vitest';
import { dockerdOptions, listeningSocketInodes, runscEntryProblem, withRunscRuntime } from './runsc-config';

describe('withRunscRuntime', () => {
  it('adds runsc with --network=host to an absent or empty file', () => {
    for (const text of ['', '  \n', '{}']) {
      expect(JSON.parse(withRunscRuntime(text, '/usr/bin/runsc')!)).toEqual({ runtimes: { runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--network=host'] } } });
    }
  });

  it('keeps every other key and runtime as it was', () => {
    const text = JSON.stringify({ 'log-level': 'warn', 'storage-driver': 'overlay2', runtimes: { kata: { path: '/opt/kata' } }, 'default-runtime': 'runc' });
    expect(JSON.parse(withRunscRuntime(text, '/usr/bin/runsc')!)).toEqual({
      'log-level': 'warn',
      'storage-driver': 'overlay2',
      runtimes: { kata: { path: '/opt/kata' }, runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--network=host'] } },
      'default-runtime': 'runc',
    });
  });

  it("never replaces the operator's own runsc entry", () => {
    expect(withRunscRuntime('{"runtimes": {"runsc": {"path": "/opt/runsc"}}}', '/usr/bin/runsc')).toBeUndefined();
  });

  it('refuses to rewrite a file it cannot read', () => {
    expect(() => withRunscRuntime('{"runtimes": ', '/usr/bin/runsc')).toThrow(/not valid JSON/);
    expect(() => withRunscRuntime('[1]', '/usr/bin/runsc')).toThrow(/does not hold a JSON object/);
    expect(() => withRunscRuntime('{"runtimes": []}', '/usr/bin/runsc')).toThrow(/"runtimes" is not a JSON object/);
  });
});

describe('runscEntryProblem', () => {
  it('accepts --network=host with other flags, refuses entries without it or that drop the limits', () => {
    expect(runscEntryProblem({ path: '/usr/bin/runsc', runtimeArgs: ['--network=host'] })).toBeUndefined();
    expect(runscEntryProblem({ path: '/usr/bin/runsc', runtimeArgs: ['--debug', '--network=host'] })).toBeUndefined();
    expect(runscEntryProblem({ path: '/usr/bin/runsc' })).toMatch(/lack --network=host/);
    expect(runscEntryProblem({ path: '/usr/bin/runsc', runtimeArgs: ['--network=sandbox'] })).toMatch(/lack --network=host/);
    expect(runscEntryProblem({ path: '/usr/bin/runsc', runtimeArgs: ['--network=host', '--network=none'] })).toMatch(/lack --network=host/);
    expect(runscEntryProblem({ path: '/usr/bin/runsc', runtimeArgs: ['--network=host', '--ignore-cgroups'] })).toMatch(/drops every memory/);
  });
});

describe('dockerdOptions', () => {
  it('finds the configuration file and whether runtimes come from flags', () => {
    expect(dockerdOptions([])).toEqual({ configFile: '/etc/docker/daemon.json', addsRuntimes: false });
    expect(dockerdOptions(['--data-root', '/x', '--config-file', '/srv/d.json'])).toEqual({ configFile: '/srv/d.json', addsRuntimes: false });
    expect(dockerdOptions(['--config-file=/srv/e.json', '--add-runtime', 'k=/bin/k'])).toEqual({ configFile: '/srv/e.json', addsRuntimes: true });
    expect(dockerdOptions(['--add-runtime=k=/bin/k']).addsRuntimes).toBe(true);
  });
});

describe('listeningSocketInodes', () => {
  const table = [
    'Num       RefCount Protocol Flags    Type St Inode Path',
    '000000009454211c: 00000002 00000000 00010000 0001 01 8146759 /var/run/docker.sock',
    '00000000c100dc06: 00000003 00000000 00000000 0001 03 8815362 /var/run/docker.sock',
    '00000000aa1ea6ac: 00000002 00000000 00010000 0001 01 8798027 /tmp/other/docker.sock',
    '00000000aa1ea6ad: 00000002 00000000 00010000 0001 01 8798030',
  ].join('\n');

  it('lists the listening sockets bound at the path, not its connections or other sockets', () => {
    expect(listeningSocketInodes(table, ['/var/run/docker.sock'])).toEqual([8146759]);
    expect(listeningSocketInodes(table, ['/run/docker.sock', '/tmp/other/docker.sock'])).toEqual([8798027]);
    expect(listeningSocketInodes(table, ['/nowhere'])).toEqual([]);
  });
});
