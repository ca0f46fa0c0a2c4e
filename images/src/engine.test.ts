import { describe, expect, it } from 'vitest';
import { planEngine, type EngineFacts } from './engine';

const fresh: EngineFacts = { answers: false, error: 'the docker command is missing', hasClient: false, hasEngine: false, root: true, systemd: false, remote: false };
const steps = (facts: Partial<EngineFacts>) => {
  const plan = planEngine({ ...fresh, ...facts });
  if (plan instanceof Error) throw plan;
  return plan.map((s) => s.do);
};
const refusal = (facts: Partial<EngineFacts>) => {
  const plan = planEngine({ ...fresh, ...facts });
  if (!(plan instanceof Error)) throw new Error(`expected a refusal, got ${JSON.stringify(plan)}`);
  return plan.message;
};

describe('planEngine', () => {
  it('does nothing when the engine answers', () => {
    expect(steps({ answers: true, hasClient: true, hasEngine: true })).toEqual([]);
  });

  it('as root with nothing installed: installs docker.io, starts dockerd, waits', () => {
    expect(steps({})).toEqual(['install', 'start-dockerd', 'wait']);
    expect(steps({ systemd: true })).toEqual(['install', 'start-service', 'wait']);
  });

  it('installs when only the client is there (the engine itself is missing)', () => {
    expect(steps({ hasClient: true, error: 'Cannot connect to the Docker daemon' })).toEqual(['install', 'start-dockerd', 'wait']);
  });

  it('only starts an installed engine that is stopped', () => {
    expect(steps({ hasClient: true, hasEngine: true, error: 'Cannot connect to the Docker daemon' })).toEqual(['start-dockerd', 'wait']);
    expect(steps({ hasClient: true, hasEngine: true, systemd: true })).toEqual(['start-service', 'wait']);
  });

  it('as another user: names the one command to run', () => {
    expect(refusal({ root: false })).toMatch(/not installed; run: sudo apt-get install -y docker\.io && sudo dockerd/);
    expect(refusal({ root: false, systemd: true })).toMatch(/not installed; run: sudo apt-get install -y docker\.io$/);
    expect(refusal({ root: false, hasClient: true, hasEngine: true, systemd: true })).toMatch(/installed but not running; run: sudo systemctl start docker$/);
  });

  it('a running engine this user may not use: says how to get access, starts nothing', () => {
    const message = refusal({ root: false, hasClient: true, hasEngine: true, error: 'permission denied while trying to connect to the Docker daemon socket' });
    expect(message).toMatch(/usermod -aG docker/);
  });

  it('never starts a local engine for a remote DOCKER_HOST', () => {
    expect(refusal({ remote: true, hasClient: true, hasEngine: true })).toMatch(/DOCKER_HOST/);
  });
});
