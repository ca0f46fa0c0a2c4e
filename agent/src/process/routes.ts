import type { Router } from '../http/router';
import type { ProcessService } from './service';

export function registerProcessRoutes(_router: Router, _service: ProcessService): void {}
