/** Failures an address may have before its attempts are slowed down (typos, a stale token in a script). */
const FREE_FAILURES = 5;
const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 8_000;
/** An address with no failure for this long starts again from zero. */
const FORGET_MS = 10 * 60_000;
/** Bounds the table when many addresses fail (a scan). */
const MAX_ADDRESSES = 10_000;

/**
 * Per-address backoff for failed SSH logins: after a few failures each further attempt from the same address waits
 * twice as long before it is answered (up to MAX_DELAY_MS), so tokens cannot be guessed quickly. Successful logins
 * wait too while the address is in backoff, so the delay never tells a valid token from an invalid one.
 */
export function createLoginBackoff(clock: () => number = Date.now) {
  const failures = new Map<string, { count: number; last: number }>();

  function entry(address: string) {
    const e = failures.get(address);
    if (e && clock() - e.last > FORGET_MS) {
      failures.delete(address);
      return undefined;
    }
    return e;
  }

  return {
    /** How long to wait before answering an attempt from `address`. */
    delayMs(address: string): number {
      const count = entry(address)?.count ?? 0;
      if (count < FREE_FAILURES) return 0;
      return Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (count - FREE_FAILURES));
    },
    fail(address: string): void {
      const e = entry(address);
      if (!e && failures.size >= MAX_ADDRESSES) {
        // Drop the oldest entry (Map keeps insertion order).
        failures.delete(failures.keys().next().value!);
      }
      failures.set(address, { count: (e?.count ?? 0) + 1, last: clock() });
    },
  };
}
