import type { Router } from '../../../lib/http/router';
import { SystemMetrics } from '../../../wire/metrics';
import type { MetricsService } from './service';

/** Daytona's `GET /system/metrics` (`sandbox.getMetricsLatest()`). */
export function registerMetricsRoutes(router: Router, metrics: MetricsService): void {
  router.route(
    { method: 'get', path: '/system/metrics', tag: 'system', summary: 'CPU, memory and disk use of the sandbox (its cgroup and work dir file system)', response: SystemMetrics },
    () => metrics.latest(),
  );
}
