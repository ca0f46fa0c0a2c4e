import type { Router } from '../../../lib/http/router';
import { UpdateEnvRequest, UpdateEnvResponse } from '../../../wire/env';
import type { EnvService } from './service';

/** Daytona's `POST /env` (`sandbox.updateEnv`). */
export function registerEnvRoutes(router: Router, env: EnvService): void {
  router.route(
    {
      method: 'post',
      path: '/env',
      tag: 'env',
      summary: 'Change the environment of processes started from now on (running ones keep theirs)',
      body: UpdateEnvRequest,
      response: UpdateEnvResponse,
    },
    ({ body }) => {
      env.update(body);
      return { message: 'Environment updated successfully' };
    },
  );
}
