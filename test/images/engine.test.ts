import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE } from '../../images/src/base';
import { ensureImages } from '../../images/src/build';
import { checkoutRoot } from '../../images/src/host';

/**
 * The Docker engine provisioned from nothing, by the code `cove serve`, `cove images build` and `npm test` run
 * (images/src/engine.ts): in a throwaway root — a container of Cove's Debian base image, which has no Docker at all —
 * with this host's Node and the checkout mounted read-only. Runs the real apt-get and the real dockerd inside.
 */
const SCRIPT = `
const { ensureDockerEngine } = await import('/cove/images/src/engine.ts');
const { execFileSync } = await import('node:child_process');
const lines = [];
let error;
try {
  await ensureDockerEngine((line) => lines.push(line));
} catch (err) {
  error = err.message;
}
let info;
try {
  info = execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
} catch {}
console.log(JSON.stringify({ lines, error, info }));
`;

interface Outcome {
  lines: string[];
  error?: string;
  info?: string;
}

let dir: string;
let container: string;

/** Runs the script in the container as `user`; its JSON line. */
function provision(user: string): Outcome {
  const out = execFileSync('docker', ['exec', '-u', user, '-w', '/cove', container, 'node', '--import', 'tsx', '/work/provision.mjs'], { encoding: 'utf8', timeout: 240_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as Outcome;
}

beforeAll(async () => {
  await ensureImages();
  dir = mkdtempSync(path.join(os.tmpdir(), 'cove-engine-'));
  writeFileSync(path.join(dir, 'provision.mjs'), SCRIPT);
  chmodSync(dir, 0o755); // the unprivileged run reads it too
  // dockerd needs every capability this host grants (all but sys_resource, so not --privileged) and no seccomp or
  // AppArmor filter; its storage is a volume (overlay2 cannot sit on the container's own overlay).
  container = execFileSync('docker', [
    'run', '-d', '--rm', '--label', 'dev.cove.test=engine',
    '--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE', '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined',
    '-v', '/var/lib/docker',
    '-v', `${realpathSync(process.execPath)}:/usr/local/bin/node:ro`,
    '-v', `${checkoutRoot()}:/cove:ro`,
    '-v', `${dir}:/work:ro`,
    BASE_IMAGE, 'sleep', 'infinity',
  ], { encoding: 'utf8' }).trim();
}, 20 * 60_000);

afterAll(() => {
  if (container) execFileSync('docker', ['rm', '-f', '-v', container], { stdio: 'ignore' });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('provisioning the Docker engine (images/src/engine.ts)', () => {
  it('as another user on a machine without Docker: refuses, naming the one command to run', () => {
    const outcome = provision('65534');
    expect(outcome.lines).toEqual([]);
    expect(outcome.error).toMatch(/^the Docker engine is not installed; run: sudo apt-get install -y docker\.io && sudo dockerd/);
    expect(outcome.info).toBeUndefined();
  });

  it('as root on a machine without Docker: installs docker.io, starts dockerd, and it answers', () => {
    const outcome = provision('root');
    expect(outcome.error).toBeUndefined();
    expect(outcome.lines).toEqual([
      'the Docker engine is not installed: installing it (apt-get install docker.io)',
      'starting the Docker engine (dockerd, its log in /var/log/cove-dockerd.log)',
      'waiting for the Docker engine to answer',
      'the Docker engine answers',
    ]);
    expect(outcome.info).toMatch(/^\d+\.\d+/);
  }, 240_000);

  it('with the engine installed but stopped: only starts it; answering: does nothing', () => {
    execFileSync('docker', ['exec', container, 'sh', '-c', 'kill $(cat /var/run/docker.pid); while [ -e /var/run/docker.pid ]; do sleep 0.2; done']);
    const restarted = provision('root');
    expect(restarted.error).toBeUndefined();
    expect(restarted.lines[0]).toBe('starting the Docker engine (dockerd, its log in /var/log/cove-dockerd.log)');
    expect(restarted.lines).not.toContain('the Docker engine is not installed: installing it (apt-get install docker.io)');
    expect(restarted.info).toMatch(/^\d+\.\d+/);

    const again = provision('root');
    expect(again).toEqual({ lines: [], info: restarted.info });
  }, 120_000);
});
