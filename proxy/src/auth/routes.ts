import type { Router } from '../../../lib/http/router';
import { SigningKey } from '../../../wire/signing';
import { principalOf } from './principal';
import type { SandboxService } from '../sandboxes/service';
import type { SigningKeys } from './signing';

/** Daytona's signing-key routes (under the API base path): the key the SDK signs file URLs with, and its rotation. */
export function registerSigningRoutes(router: Router, deps: { sandboxes: SandboxService; keys: SigningKeys }): void {
  const tag = 'sandbox';
  router.route(
    { method: 'get', path: '/sandbox/{sandboxIdOrName}/signing-key', tag, summary: 'The key signed file URLs of this sandbox are signed with', response: SigningKey },
    ({ c, params }) => deps.keys.keyOf(deps.sandboxes.get(principalOf(c), params.sandboxIdOrName).id),
  );
  router.route(
    { method: 'post', path: '/sandbox/{sandboxIdOrName}/signing-key/rotate', tag, summary: 'Rotate the signing key: every URL signed before stops working', response: SigningKey },
    ({ c, params }) => deps.keys.rotate(deps.sandboxes.get(principalOf(c), params.sandboxIdOrName).id),
  );
}
