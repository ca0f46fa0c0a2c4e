import { CoveError } from '../../../lib/errors';
import type { Router } from '../../../lib/http/router';
import { PoolStatus } from '../../../wire/sandbox';
import { principalOf } from '../auth/principal';
import type { Pools } from './pools';

/** Operators' view of the warm pools (admin keys only). */
export function registerPoolRoutes(router: Router, pools: Pools | undefined): void {
  router.route({ method: 'get', path: '/pool', tag: 'pool', summary: 'Warm pool status (admin)', response: PoolStatus }, ({ c }) => {
    if (!principalOf(c).admin) throw new CoveError('FORBIDDEN', 'Only admin keys may see the warm pool');
    const views = pools?.status() ?? [];
    const main = views.find((v) => v.snapshot === undefined);
    return { target: main?.target ?? 0, ready: main?.ready ?? 0, image: main?.image ?? '', cpu: main?.cpu ?? 0, memory: main?.memory ?? 0, pools: views };
  });
}
