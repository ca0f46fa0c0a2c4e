/**
 * How long the agent lets processes it started end after SIGTERM (or SIGHUP, for terminals) before it SIGKILLs what
 * is left: when it stops (every command, session, terminal and SSH channel) and when a session is deleted.
 */
export const STOP_GRACE_MS = 3_000;

/**
 * Signals a whole process group (children are spawned `detached`, so each leads its own group). Falls back to the
 * single process when the group is gone. Never throws.
 */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals | number = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}
