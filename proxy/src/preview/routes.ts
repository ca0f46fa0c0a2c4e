import type { Router } from '../../../lib/http/router';
import { CoveError } from '../../../lib/errors';
import { PortPreviewUrl, SignedPortPreviewUrl, SignedPreviewQuery } from '../../../wire/preview';
import { principalOf } from '../auth/principal';
import type { SandboxService } from '../sandboxes/service';
import { previewUrl } from './host';
import type { PreviewTokens } from '../auth/preview-tokens';

function portOf(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CoveError('INVALID_REQUEST', `Invalid port ${value}: expected an integer from 1 to 65535`);
  return port;
}

/** Daytona's preview URL routes (under the API base path). */
export function registerPreviewRoutes(
  router: Router,
  deps: { sandboxes: SandboxService; tokens: PreviewTokens; publicUrl: () => string; domain: string },
): void {
  const tag = 'preview';
  router.route(
    { method: 'get', path: '/sandbox/{sandboxIdOrName}/ports/{port}/preview-url', tag, summary: 'Preview URL and token of a port', response: PortPreviewUrl },
    ({ c, params }) => {
      const { id } = deps.sandboxes.get(principalOf(c), params.sandboxIdOrName);
      const port = portOf(params.port);
      return { sandboxId: id, url: previewUrl(deps.publicUrl(), deps.domain, port, id), token: deps.tokens.issue(id, port) };
    },
  );
  router.route(
    {
      method: 'get',
      path: '/sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url',
      tag,
      summary: 'Signed, expiring preview URL of one port, for sharing',
      query: SignedPreviewQuery,
      response: SignedPortPreviewUrl,
    },
    ({ c, params, query }) => {
      const { id } = deps.sandboxes.get(principalOf(c), params.sandboxIdOrName);
      const port = portOf(params.port);
      const { token, expiresAt } = deps.tokens.sign(id, port, query.expiresInSeconds ?? 60);
      return { sandboxId: id, port, token, url: previewUrl(deps.publicUrl(), deps.domain, port, token), expiresAt };
    },
  );
  router.route(
    { method: 'post', path: '/sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url/{token}/expire', tag, summary: 'Expire a signed preview URL now' },
    ({ c, params }) => {
      const { id } = deps.sandboxes.get(principalOf(c), params.sandboxIdOrName);
      if (!deps.tokens.revoke(id, portOf(params.port), params.token)) throw new CoveError('NOT_FOUND', 'No such active preview token for this port');
    },
  );
}
