import { DirResponse, VersionResponse } from '../../../wire/common';
import type { Router } from '../../../lib/http/router';
import type { InfoService } from './service';

export function registerInfoRoutes(router: Router, info: InfoService): void {
  const tag = 'info';
  router.route({ method: 'get', path: '/version', tag, summary: 'Agent version', response: VersionResponse }, () => ({
    version: info.version(),
  }));
  router.route({ method: 'get', path: '/user-home-dir', tag, summary: "User's home directory", response: DirResponse }, () => ({
    dir: info.userHomeDir(),
  }));
  router.route({ method: 'get', path: '/work-dir', tag, summary: 'Working directory of commands', response: DirResponse }, () => ({
    dir: info.workDir(),
  }));
  router.route({ method: 'get', path: '/project-dir', tag, summary: 'Project directory', response: DirResponse }, () => ({
    dir: info.projectDir(),
  }));
}
