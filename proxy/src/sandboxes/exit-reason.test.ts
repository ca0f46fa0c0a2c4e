import { describe, expect, it } from 'vitest';
import { exitOutcome, type ExitEvidence } from './exit-reason';

const ended = (e: Partial<ExitEvidence>) => exitOutcome({ removed: false, oom: false, signals: [], ...e }, 1);

describe('exitOutcome', () => {
  it('a removed container is an error, whatever came before', () => {
    expect(ended({ removed: true, exitCode: 0, signals: [15] })).toEqual({ state: 'error', reason: 'Its container was removed outside Cove' });
  });

  it('a stop (SIGTERM through the engine, as docker stop sends) or a clean exit is stopped, without a reason', () => {
    expect(ended({ signals: [15], exitCode: 0 })).toEqual({ state: 'stopped', reason: null });
    // docker stop whose grace ran out: SIGTERM, then SIGKILL.
    expect(ended({ signals: [15, 9], exitCode: 137 })).toEqual({ state: 'stopped', reason: null });
    expect(ended({ exitCode: 0 })).toEqual({ state: 'stopped', reason: null });
  });

  it('a kill outside Cove names the signal and the exit code', () => {
    expect(ended({ signals: [9], exitCode: 137 })).toEqual({ state: 'error', reason: 'Its container was killed outside Cove (SIGKILL, exit code 137)' });
    expect(ended({ signals: [2, 2], exitCode: 130 }).reason).toBe('Its container was killed outside Cove (SIGINT, exit code 130)');
  });

  it('an OOM kill of PID 1 is out of memory, with the limit', () => {
    expect(exitOutcome({ removed: false, oom: true, signals: [], exitCode: 137 }, 4)).toEqual({
      state: 'error',
      reason: 'Out of memory: the container was OOM-killed at its 4 GiB memory limit',
    });
    // An agent that exited on its own just after a user process was OOM-killed did not die of it.
    expect(ended({ oom: true, exitCode: 1 }).reason).toBe("The sandbox's container exited with code 1");
  });

  it('any other end is an error with the exit code, and the signal it stands for', () => {
    expect(ended({ exitCode: 137 }).reason).toBe("The sandbox's container exited with code 137 (killed by SIGKILL)");
    expect(ended({ exitCode: 2 }).reason).toBe("The sandbox's container exited with code 2");
    expect(ended({}).reason).toBe("The sandbox's container stopped unexpectedly");
  });
});
