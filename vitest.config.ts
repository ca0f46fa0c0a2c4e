import { defineConfig } from 'vitest/config';

/** Unit tests live beside the code they test and need no root, Docker, network or server process. */
const UNIT = ['agent/src/**/*.test.ts', 'proxy/src/**/*.test.ts', 'lib/**/*.test.ts', 'wire/**/*.test.ts', 'cli/**/*.test.ts', 'images/src/**/*.test.ts'];

export default defineConfig({
  test: {
    reporters: ['default'],
    // Two cores: more workers at once only slow the suites that start real processes.
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: 'unit',
          include: UNIT,
          // Pure code: threads start faster than forks.
          pool: 'threads',
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Suites start real processes; two cores do not gain from more parallel files.
          maxWorkers: 2,
        },
      },
    ],
  },
});
