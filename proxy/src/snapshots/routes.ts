import type { Router } from '../../../lib/http/router';
import { CreateSandboxSnapshotRequest, ForkSandboxRequest, SandboxDto } from '../../../wire/sandbox';
import { CreateSnapshotRequest, ListSnapshotsQuery, PaginatedSnapshots, SnapshotDto, SnapshotLogsQuery, SnapshotLogsUrl } from '../../../wire/snapshots';
import { principalOf } from '../auth/principal';
import type { SnapshotCatalog } from './catalog';
import type { SnapshotService } from './service';

/** Copies of a sandbox's file system (SDK 0.218 `fork`, `createSnapshot`), under the API base path. */
export function registerSnapshotRoutes(router: Router, snapshots: SnapshotService): void {
  const tag = 'sandbox';
  router.route(
    {
      method: 'post',
      path: '/sandbox/{sandboxIdOrName}/fork',
      tag,
      summary: "Fork a sandbox (started, paused or stopped): a new started sandbox with a copy of its file system, its user, resources, environment, labels and timers; the source keeps its state",
      body: ForkSandboxRequest,
      response: SandboxDto,
    },
    ({ c, params, body }) => snapshots.fork(principalOf(c), params.sandboxIdOrName, body),
  );
  router.route(
    {
      method: 'post',
      path: '/sandbox/{sandboxIdOrName}/snapshot',
      tag,
      summary: "Make the sandbox's file system a snapshot (a local image of that name, for this API key) that creates accept as snapshot; answers the sandbox once the snapshot exists",
      body: CreateSandboxSnapshotRequest,
      response: SandboxDto,
    },
    ({ c, params, body }) => snapshots.create(principalOf(c), params.sandboxIdOrName, body),
  );
}

/**
 * Daytona's snapshots API (SDK 0.218 `daytona.snapshot.*`): named images per API key, under the API base path.
 * `apiUrl` is how clients reach the API (the build-logs URL the SDK follows).
 */
export function registerSnapshotCatalogRoutes(router: Router, catalog: SnapshotCatalog, apiUrl: () => string): void {
  const tag = 'snapshots';
  router.route(
    { method: 'get', path: '/snapshots', tag, summary: 'List the snapshots this API key sees (the general one, its own; every key\'s for an admin key), by numbered pages', query: ListSnapshotsQuery, response: PaginatedSnapshots },
    ({ c, query }) => catalog.list(principalOf(c), query),
  );
  router.route(
    {
      method: 'post',
      path: '/snapshots',
      tag,
      summary: 'Make a snapshot of an image: active at once when the image is on this host, else pulled (state pulling, then active or error)',
      body: CreateSnapshotRequest,
      response: SnapshotDto,
    },
    ({ c, body }) => catalog.create(principalOf(c), body),
  );
  router.route(
    { method: 'get', path: '/snapshots/{id}', tag, summary: 'Get a snapshot by id or name', response: SnapshotDto },
    ({ c, params }) => catalog.get(principalOf(c), params.id),
  );
  router.route(
    {
      method: 'delete',
      path: '/snapshots/{id}',
      tag,
      summary: 'Delete a snapshot: its name is free at once, sandboxes made from it keep running; an image Cove pulled or committed is removed once no sandbox needs it',
    },
    async ({ c, params }) => {
      await catalog.remove(principalOf(c), params.id);
    },
  );
  router.route(
    { method: 'post', path: '/snapshots/{id}/activate', tag, summary: 'Activate an inactive snapshot', response: SnapshotDto },
    ({ c, params }) => catalog.setActive(principalOf(c), params.id, true),
  );
  router.route(
    { method: 'post', path: '/snapshots/{id}/deactivate', tag, summary: 'Deactivate a snapshot: creates refuse it until it is activated', response: SnapshotDto },
    ({ c, params }) => catalog.setActive(principalOf(c), params.id, false),
  );
  router.route(
    { method: 'get', path: '/snapshots/{id}/build-logs-url', tag, summary: "The URL of the snapshot's logs (what the SDK follows while it waits)", response: SnapshotLogsUrl },
    ({ c, params }) => {
      const id = catalog.get(principalOf(c), params.id).id;
      return { url: `${apiUrl()}/snapshots/${encodeURIComponent(id)}/build-logs` };
    },
  );
  router.route(
    {
      method: 'get',
      path: '/snapshots/{id}/build-logs',
      tag,
      summary: "The snapshot's logs (the engine's pull progress) as text; follow=true streams them until the snapshot is active or failed",
      query: SnapshotLogsQuery,
      rawResponse: 'text/plain',
    },
    ({ c, params, query }) =>
      new Response(catalog.logs(principalOf(c), params.id, query.follow === 'true'), { headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } }),
  );
}
