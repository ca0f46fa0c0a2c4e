import { z } from 'zod';

/**
 * `GET /system/metrics` (`sandbox.getMetricsLatest()`), Daytona's SystemMetrics. Byte fields are bytes; `cpuUsedPct`
 * is a percentage (0–100) of the CPUs the sandbox may use; `cpuCount` is that number of CPUs, rounded up;
 * `timestampUnix` is in seconds.
 */
export const SystemMetrics = z.object({
  cpuCount: z.number().int(),
  cpuUsedPct: z.number(),
  memTotal: z.number().int(),
  memUsed: z.number().int(),
  memCache: z.number().int(),
  diskTotal: z.number().int(),
  diskUsed: z.number().int(),
  diskFree: z.number().int(),
  timestamp: z.string(),
  timestampUnix: z.number().int(),
});
export type SystemMetrics = z.infer<typeof SystemMetrics>;
