import { readFileSync, writeFileSync } from 'node:fs';
import { wrapChildProcessSpawn } from './child-process-private';

/**
 * oom_score_adj of every process the agent starts (user commands, sessions, terminals, SSH channels, git, language
 * servers, kernels): when the sandbox reaches its memory limit, the kernel's OOM killer takes user code before the
 * agent, whatever their sizes (+500 adds half the limit to each user process's score). Without it, a parallel job
 * whose workers are each smaller than the agent (~70 MB) gets the agent killed, and with it the whole sandbox.
 */
export const USER_OOM_SCORE_ADJ = 500;
const OWN = '/proc/self/oom_score_adj';

/** The agent's own score, put back after each spawn; undefined while the preference is off. */
let own: number | undefined;

/**
 * Runs `fork` (a call that forks synchronously) with the agent's score raised, so the child starts with the raised one
 * — there is no moment where it or what it forks runs with the agent's. Raising needs no privilege, and neither does
 * going back down to the agent's own value (never below the floor the container started it with). The agent holds the
 * raised score while `fork` runs: Node's spawn returns once the child has exec'd, about a millisecond. An OOM kill in
 * that moment weighs the agent like user code, by size alone, as without this preference.
 */
export function forkingUserCode<T>(fork: () => T): T {
  if (own === undefined) return fork();
  try {
    writeFileSync(OWN, String(USER_OOM_SCORE_ADJ));
  } catch {
    own = undefined;
    return fork();
  }
  try {
    return fork();
  } finally {
    try {
      writeFileSync(OWN, String(own));
    } catch {
      // Cannot happen for a value the process already had; without /proc there was nothing raised either.
    }
  }
}

/**
 * Makes every child process (Node's child_process; node-pty goes through forkingUserCode in node-pty.ts) start with
 * USER_OOM_SCORE_ADJ. Off where /proc/self/oom_score_adj cannot be read or written, or when the agent's own score is
 * already that high. Returns whether it is on.
 */
export function preferUserCodeForOom(): boolean {
  if (own !== undefined) return true;
  let current: number;
  try {
    current = Number(readFileSync(OWN, 'utf8').trim());
    if (!Number.isInteger(current) || current >= USER_OOM_SCORE_ADJ) return false;
    writeFileSync(OWN, String(current));
  } catch {
    return false;
  }
  own = current;
  wrapChildProcessSpawn(forkingUserCode);
  return true;
}
