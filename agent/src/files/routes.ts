import type { Router } from '../http/router';
import type { FilesService } from './service';

export function registerFilesRoutes(_router: Router, _service: FilesService): void {}
