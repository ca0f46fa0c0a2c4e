import type { Router } from '../../../lib/http/router';
import type { LspService } from './service';

export function registerLspRoutes(_router: Router, _service: LspService): void {}
