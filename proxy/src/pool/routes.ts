import { CoveError } from '../../../lib/errors';
import type { Router } from '../../../lib/http/router';
import { PoolStatus } from '../../../wire/sandbox';
import { principalOf } from '../auth/principal';
import type { WarmPool } from './service';

/** Operators' view of the warm pool (admin keys only). */
export function registerPoolRoutes(router: Router, pool: WarmPool | undefined): void {
  router.route({ method: 'get', path: '/pool', tag: 'pool', summary: 'Warm pool status (admin)', response: PoolStatus }, ({ c }) => {
    if (!principalOf(c).admin) throw new CoveError('FORBIDDEN', 'Only admin keys may see the warm pool');
    return pool?.status() ?? { target: 0, ready: 0, image: '', cpu: 0, memory: 0 };
  });
}
