import type { Router } from '../http/router';
import type { SessionsService } from './service';

export function registerSessionsRoutes(_router: Router, _service: SessionsService): void {}
