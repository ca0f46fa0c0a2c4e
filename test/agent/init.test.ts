import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.stop('SIGKILL');
  agent = undefined;
});

function hasUnshare(): boolean {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Children of `pid` (in this namespace) that are zombies, read from the kernel. */
function zombieChildren(pid: number): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid=,stat='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, ppid, stat]) => Number(ppid) === pid && stat?.startsWith('Z'))
    .map(([p]) => Number(p));
}

const ORPHANS = 'for i in 1 2 3 4 5; do (sleep 0.1 >/dev/null 2>&1 &); done; sleep 0.6';

describe('the agent as init', () => {
  it('loads libc (koffi) only once it starts a child: an idle agent does not', async () => {
    agent = await startAgent();
    const pid = agent.process.pid!;
    const koffiMapped = () => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('koffi');
    await agent.json('/version');
    expect(koffiMapped()).toBe(false);
    await agent.json('/process/execute', { method: 'POST', json: { command: 'true' } });
    expect(koffiMapped()).toBe(true);
  });

  it('reaps orphaned grandchildren when it is not PID 1 (child subreaper)', async () => {
    agent = await startAgent();
    const pid = agent.process.pid!;
    // The orphans are re-parented to the agent while they run…
    const started = await agent.json('/process/execute', {
      method: 'POST',
      json: { command: '(sleep 3 >/dev/null 2>&1 & echo $!)' },
    });
    const orphan = Number(started.result.trim());
    const stat = readFileSync(`/proc/${orphan}/stat`, 'utf8');
    expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])).toBe(pid);
    // …and once they exit, none stays a zombie.
    await agent.json('/process/execute', { method: 'POST', json: { command: ORPHANS } });
    await waitFor(() => zombieChildren(pid).length === 0, 5000, 'orphans to be reaped');
    expect(zombieChildren(pid)).toEqual([]);
    process.kill(orphan, 'SIGKILL');
  });

  it('reaps orphans as PID 1 of a PID namespace', async (ctx) => {
    if (!hasUnshare()) {
      if (process.env.CI) throw new Error('unshare --pid needs root and util-linux: run the tests as root');
      ctx.skip('unshare --pid needs root and util-linux');
    }
    agent = await startAgent({ prefix: ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'] });
    const first = await agent.json('/process/execute', { method: 'POST', json: { command: 'cat /proc/1/cmdline | tr "\\0" " "' } });
    expect(first.result).toContain('agent');
    const after = await agent.json('/process/execute', {
      method: 'POST',
      json: { command: `${ORPHANS}; ps -eo ppid=,stat= | awk '$1 == 1 && $2 ~ /^Z/' | wc -l` },
    });
    // Some may still be exiting at the moment ps runs; none may stay.
    await waitFor(async () => {
      const now = await agent!.json('/process/execute', {
        method: 'POST',
        json: { command: `ps -eo ppid=,stat= | awk '$1 == 1 && $2 ~ /^Z/' | wc -l` },
      });
      return now.result.trim() === '0';
    }, 5000, 'zombies of PID 1 to be reaped');
    expect(after.exitCode).toBe(0);
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
