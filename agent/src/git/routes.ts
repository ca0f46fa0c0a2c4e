import type { Router } from '../../../lib/http/router';
import type { GitService } from './service';

export function registerGitRoutes(_router: Router, _service: GitService): void {}
