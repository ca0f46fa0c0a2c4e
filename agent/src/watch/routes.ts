import type { Router } from '../../../lib/http/router';
import type { WatchService } from './service';

export function registerWatchRoutes(_router: Router, _service: WatchService): void {}
