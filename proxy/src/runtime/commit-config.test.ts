import { describe, expect, it } from 'vitest';
import { commitConfig } from './commit-config';

/** The image a sandbox was made from, and its container as Cove configured it (see sandbox-config.ts). */
const IMAGE = {
  User: 'app',
  Env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'],
  Entrypoint: ['/docker-entrypoint.sh'],
  Cmd: ['serve', '--port', '80'],
  WorkingDir: '/srv',
  Labels: { maintainer: 'someone', 'dev.cove.user': 'app' },
  ExposedPorts: { '80/tcp': {} },
  StopSignal: 'SIGQUIT',
};
const CONTAINER = {
  User: '0:0',
  Env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8', 'API_URL=http://x'],
  Entrypoint: ['/opt/cove/bin/node', '/opt/cove/agent/cli.mjs', 'agent', '--token-file', '/run/cove/agent-token', '--', '/docker-entrypoint.sh'],
  Cmd: [],
  WorkingDir: '/srv',
  Labels: { maintainer: 'someone', 'dev.cove.user': '', 'dev.cove.managed': '1', 'dev.cove.sandbox': 'abc', 'dev.cove.instance': 'i1', 'dev.cove.runtime': 'runc' },
  StopSignal: 'SIGTERM',
};

describe('commitConfig', () => {
  it("keeps the image's configuration, never what Cove gave the container", () => {
    const config = commitConfig(IMAGE, CONTAINER, { 'dev.cove.snapshot.owner': 'key1' });
    expect(config).toMatchObject({
      User: 'app',
      Entrypoint: ['/docker-entrypoint.sh'],
      Cmd: ['serve', '--port', '80'],
      WorkingDir: '/srv',
      ExposedPorts: { '80/tcp': {} },
      StopSignal: 'SIGQUIT',
    });
    // Cove's container labels cannot be dropped (Docker merges them back): blanked; the image's keep their values.
    expect(config.Labels).toEqual({
      maintainer: 'someone',
      'dev.cove.user': 'app',
      'dev.cove.managed': '',
      'dev.cove.sandbox': '',
      'dev.cove.instance': '',
      'dev.cove.runtime': '',
      'dev.cove.snapshot.owner': 'key1',
    });
    expect(JSON.stringify(config)).not.toMatch(/agent-token|\/opt\/cove/);
  });

  it('has the environment the sandbox had: the image with the variables it was created with', () => {
    expect(commitConfig(IMAGE, CONTAINER, {}).Env).toEqual(CONTAINER.Env);
    expect(commitConfig(IMAGE, { ...CONTAINER, Env: null }, {}).Env).toEqual(IMAGE.Env);
  });

  it('sends empty lists and root for what the image leaves unset, so Docker does not fill them from the container', () => {
    const config = commitConfig({ Env: ['A=1'], Entrypoint: null, Cmd: null, Labels: null }, CONTAINER, {});
    expect(config).toMatchObject({ User: '0:0', Entrypoint: [], Cmd: [], WorkingDir: '' });
    expect(config.StopSignal).toBeUndefined();
    expect(commitConfig(undefined, CONTAINER, {})).toMatchObject({ User: '0:0', Entrypoint: [], Cmd: [] });
    expect(commitConfig({ Entrypoint: '/bin/sh', Cmd: 'run' }, CONTAINER, {})).toMatchObject({ Entrypoint: ['/bin/sh'], Cmd: ['run'] });
  });

  it('does not pass on whom an image committed from a fork or snapshot was for', () => {
    const fromFork = { ...IMAGE, Labels: { ...IMAGE.Labels, 'dev.cove.fork': 'i1', 'dev.cove.snapshot.owner': 'key1' } };
    expect(commitConfig(fromFork, CONTAINER, { 'dev.cove.snapshot.owner': 'key2' }).Labels).toMatchObject({ 'dev.cove.fork': '', 'dev.cove.snapshot.owner': 'key2' });
  });
});
