import type { Router } from '../../../lib/http/router';
import { CreateRegistryRequest, ListRegistriesResponse, RegistryDto, UpdateRegistryRequest } from '../../../wire/registries';
import { CoveError } from '../../../lib/errors';
import { principalOf } from '../auth/principal';
import type { RegistryService } from './service';

/** Daytona's registry routes (api-client `DockerRegistryApi`), under the API base path. */
export function registerRegistryRoutes(router: Router, registries: RegistryService): void {
  const tag = 'docker-registry';
  router.route(
    { method: 'post', path: '/docker-registry', tag, summary: 'Create a registry (credentials for pulls; the password is never answered)', body: CreateRegistryRequest, response: RegistryDto },
    ({ c, body }) => registries.create(principalOf(c), body),
  );
  router.route(
    { method: 'get', path: '/docker-registry', tag, summary: "List registries (an admin key's: every key's)", response: ListRegistriesResponse },
    ({ c }) => registries.list(principalOf(c)),
  );
  router.route({ method: 'get', path: '/docker-registry/registry-push-access', tag, summary: 'Temporary push access (not supported: refused)' }, () => {
    throw new CoveError('INVALID_REQUEST', 'registry-push-access is not supported: a Cove server has no transient registry to push to; build images with docker on its host, or push them to a registry of yours');
  });
  router.route({ method: 'get', path: '/docker-registry/{id}', tag, summary: 'Get a registry', response: RegistryDto }, ({ c, params }) => registries.get(principalOf(c), params.id));
  router.route(
    { method: 'patch', path: '/docker-registry/{id}', tag, summary: 'Update a registry (a password left out is kept)', body: UpdateRegistryRequest, response: RegistryDto },
    ({ c, params, body }) => registries.update(principalOf(c), params.id, body),
  );
  router.route({ method: 'delete', path: '/docker-registry/{id}', tag, summary: 'Delete a registry' }, ({ c, params }) => registries.remove(principalOf(c), params.id));
  router.route(
    { method: 'post', path: '/docker-registry/{id}/set-default', tag, summary: "Make a registry its host's default (admin keys only)", response: RegistryDto },
    ({ c, params }) => registries.setDefault(principalOf(c), params.id),
  );
}
