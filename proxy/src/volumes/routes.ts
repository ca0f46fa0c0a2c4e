import type { Router } from '../../../lib/http/router';
import { CreateVolumeRequest, ListVolumesQuery, ListVolumesResponse, VolumeDto } from '../../../wire/volumes';
import { principalOf } from '../auth/principal';
import type { VolumeService } from './service';

/** Daytona's volume routes (SDK `daytona.volume.create|list|get|delete`), under the API base path. */
export function registerVolumeRoutes(router: Router, volumes: VolumeService): void {
  const tag = 'volumes';
  router.route(
    { method: 'post', path: '/volumes', tag, summary: 'Create a volume (ready when this returns)', body: CreateVolumeRequest, response: VolumeDto },
    ({ c, body }) => volumes.create(principalOf(c), body.name),
  );
  router.route(
    { method: 'get', path: '/volumes', tag, summary: "List volumes (an admin key's: every key's)", query: ListVolumesQuery, response: ListVolumesResponse },
    ({ c, query }) => volumes.list(principalOf(c), query),
  );
  router.route(
    { method: 'get', path: '/volumes/by-name/{name}', tag, summary: 'Get a volume by its name', response: VolumeDto },
    ({ c, params }) => volumes.get(principalOf(c), params.name),
  );
  router.route(
    { method: 'get', path: '/volumes/{volumeId}', tag, summary: 'Get a volume', response: VolumeDto },
    ({ c, params }) => volumes.get(principalOf(c), params.volumeId),
  );
  router.route(
    { method: 'delete', path: '/volumes/{volumeId}', tag, summary: 'Delete a volume no sandbox mounts, and its data' },
    ({ c, params }) => volumes.delete(principalOf(c), params.volumeId),
  );
}
