import type { TestCove } from './cove';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A sandbox's state as the API says it, or 'gone' once it is deleted (a deleted sandbox reads as `destroyed` for a few
 * minutes, then 404).
 */
export async function sandboxState(cove: TestCove, id: string): Promise<string> {
  const res = await cove.api(`/sandbox/${id}`);
  if (res.status === 404) return 'gone';
  const { state } = await res.json();
  return state === 'destroyed' ? 'gone' : state;
}

/** Polls until the sandbox is in one of `wanted` (one state, or any of several); resolves with that state. */
export async function waitForState(cove: TestCove, id: string, wanted: string | string[], ms: number, pollMs = 20): Promise<string> {
  const states = typeof wanted === 'string' ? [wanted] : wanted;
  const until = Date.now() + ms;
  for (;;) {
    const state = await sandboxState(cove, id);
    if (states.includes(state)) return state;
    if (Date.now() > until) throw new Error(`sandbox ${id} is ${state}, not ${states.join(' or ')}, after ${ms} ms`);
    await sleep(pollMs);
  }
}
