import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.stop('SIGKILL');
  agent = undefined;
});

describe('the agent at start', () => {
  it('loads libc (koffi) only once it starts a child: an idle agent does not', async () => {
    agent = await startAgent();
    const pid = agent.process.pid!;
    const koffiMapped = () => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('koffi');
    await agent.json('/version');
    expect(koffiMapped()).toBe(false);
    await agent.json('/process/execute', { method: 'POST', json: { command: 'true' } });
    expect(koffiMapped()).toBe(true);
  });

  it('runs the entrypoint as the "entrypoint" session and forwards SIGTERM to it', async () => {
    const started = path.join('/tmp', `cove-ep-${process.pid}-${Date.now()}`);
    const script = `echo up > ${started}; trap 'echo term >> ${started}; exit 0' TERM; echo entrypoint-running; while :; do sleep 0.05; done`;
    agent = await startAgent({ args: ['--', 'sh', '-c', script] });
    await waitFor(() => {
      try {
        return readFileSync(started, 'utf8').includes('up');
      } catch {
        return false;
      }
    }, 10_000, 'the entrypoint to start');
    const session = await agent.json('/process/session/entrypoint');
    expect(session.sessionId).toBe('entrypoint');
    expect(session.commands[0].command).toContain('sh -c');
    await waitFor(async () => {
      const logs = await agent!.fetch(`/process/session/entrypoint/command/${session.commands[0].id}/logs`);
      return (await logs.text()).includes('entrypoint-running');
    }, 5000, 'entrypoint output in the session logs');

    const code = await agent.stop('SIGTERM');
    expect(code).toBe(0);
    expect(readFileSync(started, 'utf8')).toContain('term');
  });
});
