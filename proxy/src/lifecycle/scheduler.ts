import type { Logger } from 'pino';
import { guard } from '../../../lib/guard';
import type { SandboxRecord } from '../sandboxes/repo';
import { dueAction, nextDue, type TimerAction } from './timers';

/**
 * The one scheduler of sandbox timers (auto-stop, auto-delete, ttl). It keeps no state of its own: every tick reads
 * the records (times are in the database), so a restarted server picks up where the last one was. It wakes at the
 * earliest time something is due (and at least once a lifecycle minute, never more often than `minSleepMs`), and at once
 * when told a sandbox's timers changed (auto-delete 0 acts at the stop). Actions run one at a time; one that fails is logged and tried again later.
 */
export function createLifecycleScheduler(opts: {
  records: () => SandboxRecord[];
  act: (id: string, action: TimerAction) => Promise<unknown>;
  minuteMs: number;
  log: Logger;
  minSleepMs?: number;
  maxSleepMs?: number;
}) {
  const minSleep = opts.minSleepMs ?? Math.min(1000, opts.minuteMs / 4);
  // At least once a minute whatever was computed: a sandbox created or started since the last look is seen by then.
  const maxSleep = opts.maxSleepMs ?? Math.min(30_000, opts.minuteMs);
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let again = false;
  let closed = false;
  /** Sandboxes whose last action failed: not tried again before this time. */
  const backoff = new Map<string, number>();

  async function tick(): Promise<void> {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    let sleep = maxSleep;
    try {
      const now = Date.now();
      for (const record of opts.records()) {
        if ((backoff.get(record.id) ?? 0) > now) continue;
        const action = dueAction(record, now, opts.minuteMs);
        if (action) {
          try {
            await opts.act(record.id, action);
            backoff.delete(record.id);
            opts.log.info({ sandboxId: record.id, action }, 'sandbox timer acted');
          } catch (err) {
            backoff.set(record.id, Date.now() + 30_000);
            opts.log.warn({ sandboxId: record.id, action, err: (err as Error).message }, 'sandbox timer could not act; trying again later');
          }
          continue;
        }
        sleep = Math.min(sleep, nextDue(record, now, opts.minuteMs));
      }
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      return tick();
    }
    if (!closed) {
      timer = setTimeout(run, Math.max(minSleep, Math.min(maxSleep, sleep)));
      timer.unref();
    }
  }
  const run = guard(
    'sandbox timers',
    () => void tick().catch((err: Error) => opts.log.error({ err: err.message }, 'sandbox timers failed; trying again later')),
    () => {},
  );

  return {
    start: run,
    /** Looks again now (a sandbox stopped, a timer changed). */
    kick: run,
    close(): void {
      closed = true;
      clearTimeout(timer);
    },
  };
}
