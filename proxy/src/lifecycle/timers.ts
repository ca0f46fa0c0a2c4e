import type { SandboxRecord } from '../sandboxes/repo';

/** What a timer asks of a sandbox now. */
export type TimerAction = 'destroy' | 'stop' | 'delete';

/**
 * The action a sandbox's timers call for at `now` (pure), the first that applies:
 * - **destroy** when its ttl has passed (`autoDestroyAt`), whatever its state;
 * - **stop** a started sandbox idle (no API, toolbox, preview, SSH or terminal traffic) for `autoStopInterval` minutes;
 * - **delete** a stopped sandbox `autoDeleteInterval` minutes after its stop (0: at once — `ephemeral`).
 * Sandboxes in the middle of an operation (creating, starting, stopping, destroying) are left alone.
 */
export function dueAction(r: SandboxRecord, now: number, minuteMs: number): TimerAction | undefined {
  if (r.state === 'creating' || r.state === 'starting' || r.state === 'stopping' || r.state === 'destroying') return undefined;
  if (r.autoDestroyAt && Date.parse(r.autoDestroyAt) <= now) return 'destroy';
  const since = (iso: string | null) => (iso ? now - Date.parse(iso) : 0);
  if (r.state === 'started' && r.autoStopInterval > 0 && since(r.lastActivityAt) >= r.autoStopInterval * minuteMs) return 'stop';
  if (r.state === 'stopped' && r.autoDeleteInterval >= 0 && since(r.stateChangedAt ?? r.updatedAt) >= r.autoDeleteInterval * minuteMs) return 'delete';
  return undefined;
}

/** When `dueAction` next has something to do for `r`, in ms from `now` (Infinity: never, as things stand). */
export function nextDue(r: SandboxRecord, now: number, minuteMs: number): number {
  const at: number[] = [];
  if (r.autoDestroyAt) at.push(Date.parse(r.autoDestroyAt));
  if (r.state === 'started' && r.autoStopInterval > 0) at.push(Date.parse(r.lastActivityAt) + r.autoStopInterval * minuteMs);
  if (r.state === 'stopped' && r.autoDeleteInterval >= 0) at.push(Date.parse(r.stateChangedAt ?? r.updatedAt) + r.autoDeleteInterval * minuteMs);
  return at.length ? Math.max(0, Math.min(...at) - now) : Infinity;
}
