/**
 * Shared set-up of the fuzz suites (property-based, fast-check). Every property runs with a fixed seed, then with a
 * random seed that is printed, so any failure can be replayed with `FUZZ_SEED=<seed>`. Under `npm test` each property
 * gets a small time budget (the whole fuzz tier takes about a minute); `FUZZ_SECONDS=N npm run fuzz` gives each
 * property N seconds instead.
 */
import { randomInt } from 'node:crypto';
import fc from 'fast-check';

export { fc };

/** The seed every run starts with: the same inputs in every CI run. */
const FIXED_SEED = 20261130;
const seconds = Number(process.env.FUZZ_SECONDS) || 0;
const replay = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

/** The time a property may run for, given its budget under `npm test`. */
function budgetMs(ciMs: number): number {
  return seconds ? seconds * 1000 : ciMs;
}

/** A vitest timeout for a test that fuzzes for `ciMs` under `npm test` (and as long as asked under `npm run fuzz`). */
export function timeoutFor(ciMs: number, setupMs = 60_000): number {
  return budgetMs(ciMs) + setupMs;
}

/**
 * Checks `property` for its time budget: half with the fixed seed, half with a random one (or all with FUZZ_SEED).
 * A counterexample fails the test with fast-check's report, which names the seed and the shrunk input.
 */
export async function fuzz<T>(name: string, property: fc.IAsyncPropertyWithHooks<T> | fc.IPropertyWithHooks<T>, ciMs: number): Promise<void> {
  const seeds = replay !== undefined ? [replay] : [FIXED_SEED, randomInt(2 ** 31)];
  const share = budgetMs(ciMs) / seeds.length;
  for (const seed of seeds) {
    process.stdout.write(`fuzz ${name}: seed ${seed} for ${Math.round(share / 1000)} s (replay: FUZZ_SEED=${seed})\n`);
    await fc.assert(property as fc.IAsyncProperty<T>, {
      seed,
      numRuns: Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: share,
      markInterruptAsFailure: false,
      endOnFailure: false,
    });
  }
}
