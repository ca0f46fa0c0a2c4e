import type { Router } from '../../../lib/http/router';
import { CreateSecretRequest, ListSecretsPageQuery, ListSecretsPageResponse, ListSecretsResponse, SecretDto, UpdateSecretRequest } from '../../../wire/secrets';
import { principalOf } from '../auth/principal';
import type { SecretService } from './service';

/** Daytona's secret routes (api-client `SecretApi`), under the API base path. */
export function registerSecretRoutes(router: Router, secrets: SecretService): void {
  const tag = 'secret';
  router.route(
    { method: 'post', path: '/secret', tag, summary: 'Create a secret (its value is never answered)', body: CreateSecretRequest, response: SecretDto },
    ({ c, body }) => secrets.create(principalOf(c), body),
  );
  router.route({ method: 'get', path: '/secret', tag, summary: "List secrets (an admin key's: every key's)", response: ListSecretsResponse }, ({ c }) => secrets.listAll(principalOf(c)));
  router.route(
    { method: 'get', path: '/secret/paginated', tag, summary: 'List secrets by cursor', query: ListSecretsPageQuery, response: ListSecretsPageResponse },
    ({ c, query }) => secrets.list(principalOf(c), query),
  );
  router.route({ method: 'get', path: '/secret/{secretId}', tag, summary: 'Get a secret', response: SecretDto }, ({ c, params }) => secrets.get(principalOf(c), params.secretId));
  router.route(
    { method: 'patch', path: '/secret/{secretId}', tag, summary: 'Update a secret (what is left out is kept)', body: UpdateSecretRequest, response: SecretDto },
    ({ c, params, body }) => secrets.update(principalOf(c), params.secretId, body),
  );
  router.route({ method: 'delete', path: '/secret/{secretId}', tag, summary: 'Delete a secret no sandbox mounts' }, ({ c, params }) => secrets.remove(principalOf(c), params.secretId));
}
