import type { Router } from '../http/router';
import type { PtyService } from './service';

export function registerPtyRoutes(_router: Router, _service: PtyService): void {}
