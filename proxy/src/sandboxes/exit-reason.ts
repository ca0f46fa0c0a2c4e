import { constants } from 'node:os';

/** What is known of how a sandbox's container ended: from the engine's events, or from inspecting it afterwards. */
export interface ExitEvidence {
  /** The container no longer exists. */
  removed: boolean;
  /** Exit code of PID 1 (the agent). */
  exitCode?: number;
  /** The kernel's OOM killer acted in the container right before it died. */
  oom: boolean;
  /** Signals sent through the engine's API during the run (docker kill, docker stop, docker rm -f). */
  signals: number[];
}

const SIGTERM = constants.signals.SIGTERM;
const SIGKILL_EXIT = 128 + constants.signals.SIGKILL;

/** `SIGKILL` for 9; `signal 42` for a number without a name. */
function signalName(n: number): string {
  const name = Object.entries(constants.signals).find(([, v]) => v === n)?.[0];
  return name ?? `signal ${n}`;
}

/**
 * What a sandbox whose container ended without Cove asking becomes, and the reason people read in `errorReason`.
 * A stop (SIGTERM through the engine, as `docker stop` sends) or a clean exit is `stopped`; anything else is `error`:
 * removed, killed outside Cove, out of memory, or an exit code. Pure.
 */
export function exitOutcome(e: ExitEvidence, memoryGiB: number): { state: 'stopped' | 'error'; reason: string | null } {
  if (e.removed) return { state: 'error', reason: 'Its container was removed outside Cove' };
  if (e.exitCode === 0 || e.signals.includes(SIGTERM)) return { state: 'stopped', reason: null };
  if (e.signals.length) {
    const names = [...new Set(e.signals)].map(signalName).join(', ');
    return { state: 'error', reason: `Its container was killed outside Cove (${names}${e.exitCode !== undefined ? `, exit code ${e.exitCode}` : ''})` };
  }
  if (e.oom && (e.exitCode === undefined || e.exitCode === SIGKILL_EXIT)) {
    return { state: 'error', reason: `Out of memory: the container was OOM-killed at its ${memoryGiB} GiB memory limit` };
  }
  if (e.exitCode === undefined) return { state: 'error', reason: "The sandbox's container stopped unexpectedly" };
  const signal = e.exitCode > 128 && e.exitCode <= 128 + 64 ? ` (killed by ${signalName(e.exitCode - 128)})` : '';
  return { state: 'error', reason: `The sandbox's container exited with code ${e.exitCode}${signal}` };
}
