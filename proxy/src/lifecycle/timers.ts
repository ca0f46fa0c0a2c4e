import type { SandboxRecord } from '../sandboxes/repo';

/** What a timer asks of a sandbox now. */
export type TimerAction = 'destroy' | 'stop' | 'pause' | 'archive' | 'delete';

/** Minutes an auto-archive interval of 0 stands for (Daytona's "the maximum"): 30 days. */
const MAX_AUTO_ARCHIVE = 30 * 24 * 60;

/** Minutes after its stop when a stopped sandbox is archived. */
const archiveAfter = (r: SandboxRecord) => r.autoArchiveInterval || MAX_AUTO_ARCHIVE;

/**
 * The action a sandbox's timers call for at `now` (pure), the first that applies:
 * - **destroy** when its ttl has passed (`autoDestroyAt`), whatever its state;
 * - **pause** a started sandbox idle (no API, toolbox, preview, SSH or terminal traffic) for `autoPauseInterval`
 *   minutes, when that comes before its auto-stop;
 * - **stop** a started or paused sandbox idle for `autoStopInterval` minutes;
 * - **delete** a stopped or archived sandbox `autoDeleteInterval` minutes after its stop (0: at once — `ephemeral`;
 *   archiving keeps the time of the stop);
 * - **archive** a stopped sandbox `autoArchiveInterval` minutes after its stop (0: the maximum, 30 days), unless it
 *   is to be deleted by then.
 * Sandboxes in the middle of an operation (creating, starting, stopping, pausing, resuming, archiving, restoring,
 * destroying, their image being built) are left alone; one whose build failed is only destroyed by its ttl.
 */
export function dueAction(r: SandboxRecord, now: number, minuteMs: number): TimerAction | undefined {
  if (!['started', 'paused', 'stopped', 'archived', 'error', 'build_failed'].includes(r.state)) return undefined;
  if (r.autoDestroyAt && Date.parse(r.autoDestroyAt) <= now) return 'destroy';
  const since = (iso: string | null) => (iso ? now - Date.parse(iso) : 0);
  const idle = since(r.lastActivityAt);
  const stopDue = r.autoStopInterval > 0 && idle >= r.autoStopInterval * minuteMs;
  if (r.state === 'started' && r.autoPauseInterval > 0 && idle >= r.autoPauseInterval * minuteMs && !stopDue) return 'pause';
  if ((r.state === 'started' || r.state === 'paused') && stopDue) return 'stop';
  const stoppedFor = since(r.stateChangedAt ?? r.updatedAt);
  if ((r.state === 'stopped' || r.state === 'archived') && r.autoDeleteInterval >= 0 && stoppedFor >= r.autoDeleteInterval * minuteMs) return 'delete';
  if (r.state === 'stopped' && stoppedFor >= archiveAfter(r) * minuteMs) return 'archive';
  return undefined;
}

/** When `dueAction` next has something to do for `r`, in ms from `now` (Infinity: never, as things stand). */
export function nextDue(r: SandboxRecord, now: number, minuteMs: number): number {
  const at: number[] = [];
  if (r.autoDestroyAt) at.push(Date.parse(r.autoDestroyAt));
  if ((r.state === 'started' || r.state === 'paused') && r.autoStopInterval > 0) at.push(Date.parse(r.lastActivityAt) + r.autoStopInterval * minuteMs);
  if (r.state === 'started' && r.autoPauseInterval > 0) at.push(Date.parse(r.lastActivityAt) + r.autoPauseInterval * minuteMs);
  const stoppedAt = Date.parse(r.stateChangedAt ?? r.updatedAt);
  if ((r.state === 'stopped' || r.state === 'archived') && r.autoDeleteInterval >= 0) at.push(stoppedAt + r.autoDeleteInterval * minuteMs);
  if (r.state === 'stopped') at.push(stoppedAt + archiveAfter(r) * minuteMs);
  return at.length ? Math.max(0, Math.min(...at) - now) : Infinity;
}
