import { z } from 'zod';
import type { Router } from '../../../lib/http/router';
import { queryBool } from '../../../wire/common';
import {
  CreateSandboxRequest,
  ListSandboxesPageQuery,
  ListSandboxesPageResponse,
  ListSandboxesQuery,
  ListSandboxesResponse,
  SandboxDto,
  IntervalParam,
  ReplaceLabelsRequest,
  ResizeSandboxRequest,
  ToolboxProxyUrl,
  UpdateNetworkSettingsRequest,
  UpdateSandboxSecretsRequest,
} from '../../../wire/sandbox';
import { SnapshotLogsQuery, SnapshotLogsUrl } from '../../../wire/snapshots';
import { EgressLogResponse } from '../../../wire/egress';
import { CoveError } from '../../../lib/errors';
import { principalOf } from '../auth/principal';
import type { SandboxService } from './service';

/**
 * The Daytona-compatible sandbox routes (mounted under the API base path). `apiUrl` is how clients reach the API (the
 * build-logs URL the SDK follows).
 */
export function registerSandboxRoutes(router: Router, sandboxes: SandboxService, toolboxUrl: () => string, apiUrl: () => string): void {
  const tag = 'sandbox';
  router.route(
    {
      method: 'post',
      path: '/sandbox',
      tag,
      summary: 'Create a sandbox (started when this returns; pending_build when its Dockerfile is built first, in the background)',
      body: CreateSandboxRequest,
      response: SandboxDto,
    },
    ({ c, body }) => sandboxes.create(principalOf(c), body),
  );
  router.route(
    { method: 'get', path: '/sandbox', tag, summary: 'List sandboxes', query: ListSandboxesQuery, response: ListSandboxesResponse },
    ({ c, query }) => sandboxes.list(principalOf(c), query),
  );
  router.route(
    { method: 'get', path: '/sandbox/paginated', tag, summary: 'List sandboxes by numbered pages', query: ListSandboxesPageQuery, response: ListSandboxesPageResponse },
    ({ c, query }) => sandboxes.listPage(principalOf(c), query),
  );
  router.route(
    { method: 'get', path: '/sandbox/{sandboxIdOrName}', tag, summary: 'Get a sandbox (one deleted in the last minutes: state destroyed)', response: SandboxDto },
    ({ c, params }) => sandboxes.getOrDestroyed(principalOf(c), params.sandboxIdOrName),
  );
  router.route(
    { method: 'post', path: '/sandbox/{sandboxIdOrName}/start', tag, summary: 'Start a stopped sandbox', response: SandboxDto },
    ({ c, params }) => sandboxes.start(principalOf(c), params.sandboxIdOrName),
  );
  router.route(
    {
      method: 'post',
      path: '/sandbox/{sandboxIdOrName}/stop',
      tag,
      summary: 'Stop a sandbox (its files are kept)',
      query: z.object({ force: queryBool }),
      response: SandboxDto,
    },
    ({ c, params, query }) => sandboxes.stop(principalOf(c), params.sandboxIdOrName, query.force),
  );
  router.route(
    { method: 'delete', path: '/sandbox/{sandboxIdOrName}', tag, summary: 'Delete a sandbox and its container', response: SandboxDto },
    ({ c, params }) => sandboxes.delete(principalOf(c), params.sandboxIdOrName),
  );
  router.route(
    {
      method: 'post',
      path: '/sandbox/{sandboxIdOrName}/network-settings',
      tag,
      summary: 'Change what a sandbox may reach (block all, IPv4 networks, domains), in force when this returns',
      body: UpdateNetworkSettingsRequest,
      response: SandboxDto,
    },
    ({ c, params, body }) => sandboxes.updateNetworkSettings(principalOf(c), params.sandboxIdOrName, body),
  );
  router.route(
    {
      method: 'put',
      path: '/sandbox/{sandboxIdOrName}/secrets',
      tag,
      summary: "Replace the secrets mounted in a sandbox (their placeholders in new processes' environment; values substituted on the way out)",
      body: UpdateSandboxSecretsRequest,
      response: SandboxDto,
    },
    ({ c, params, body }) => sandboxes.updateSecrets(principalOf(c), params.sandboxIdOrName, body),
  );
  router.route(
    {
      method: 'get',
      path: '/sandbox/{sandboxIdOrName}/egress-log',
      tag,
      summary: "What the sandbox connected to through Cove's egress proxy and DNS (its last 1000 connections and queries, oldest first)",
      query: z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() }),
      response: EgressLogResponse,
    },
    ({ c, params, query }) => sandboxes.egressLog(principalOf(c), params.sandboxIdOrName, query.limit),
  );
  router.route(
    { method: 'post', path: '/sandbox/{sandboxIdOrName}/pause', tag, summary: 'Pause a started sandbox: processes frozen, memory kept; start resumes it', response: SandboxDto },
    ({ c, params }) => sandboxes.pause(principalOf(c), params.sandboxIdOrName),
  );
  router.route(
    { method: 'post', path: '/sandbox/{sandboxIdOrName}/archive', tag, summary: "Archive a stopped sandbox: its files go to the archive store and its container is removed; start restores it", response: SandboxDto },
    ({ c, params }) => sandboxes.archive(principalOf(c), params.sandboxIdOrName),
  );
  router.route(
    {
      method: 'post',
      path: '/sandbox/{sandboxIdOrName}/recover',
      tag,
      summary: 'Start again a sandbox in error whose container is kept (it died, ran out of memory or disk); skipStart leaves it stopped',
      query: z.object({ skipStart: queryBool }),
      response: SandboxDto,
    },
    ({ c, params, query }) => sandboxes.recover(principalOf(c), params.sandboxIdOrName, query.skipStart),
  );
  router.route(
    {
      method: 'post',
      path: '/sandbox/{sandboxIdOrName}/resize',
      tag,
      summary: 'Change cpu and memory (at once) or disk (while stopped, grow only), within the quotas',
      body: ResizeSandboxRequest,
      response: SandboxDto,
    },
    ({ c, params, body }) => sandboxes.resize(principalOf(c), params.sandboxIdOrName, body),
  );
  router.route(
    { method: 'put', path: '/sandbox/{sandboxIdOrName}/labels', tag, summary: "Replace a sandbox's labels", body: ReplaceLabelsRequest, response: SandboxDto },
    ({ c, params, body }) => sandboxes.setLabels(principalOf(c), params.sandboxIdOrName, body.labels),
  );
  for (const [segment, timer, says] of [
    ['autostop', 'autoStop', 'Stop the sandbox after this many minutes without activity (0: never)'],
    ['autoarchive', 'autoArchive', 'Archive the sandbox this many minutes after it stops (0: the maximum, 30 days)'],
    ['autodelete', 'autoDelete', 'Delete the sandbox this many minutes after it stops (0: at once, -1: never)'],
    ['autopause', 'autoPause', 'Pause the sandbox after this many minutes without activity (0: never)'],
  ] as const) {
    router.route(
      { method: 'post', path: `/sandbox/{sandboxIdOrName}/${segment}/{interval}`, tag, summary: says, response: SandboxDto },
      ({ c, params }) => sandboxes.setInterval(principalOf(c), params.sandboxIdOrName, timer, minutesOf(params.interval, 'interval')),
    );
  }
  router.route(
    { method: 'post', path: '/sandbox/{sandboxIdOrName}/ttl/{ttlMinutes}', tag, summary: 'Destroy the sandbox this many minutes from now, whatever its state (0: no ttl)', response: SandboxDto },
    ({ c, params }) => sandboxes.setTtl(principalOf(c), params.sandboxIdOrName, minutesOf(params.ttlMinutes, 'ttlMinutes')),
  );
  router.route(
    { method: 'post', path: '/sandbox/{sandboxIdOrName}/last-activity', tag, summary: 'Count as activity now: the auto-stop timer starts again' },
    ({ c, params }) => {
      sandboxes.refreshActivity(principalOf(c), params.sandboxIdOrName);
      return c.body(null, 204);
    },
  );
  router.route(
    { method: 'get', path: '/sandbox/{sandboxIdOrName}/toolbox-proxy-url', tag, summary: 'Base URL of toolbox calls', response: ToolboxProxyUrl },
    ({ c, params }) => {
      sandboxes.get(principalOf(c), params.sandboxIdOrName);
      return { url: toolboxUrl() };
    },
  );
  router.route(
    { method: 'get', path: '/sandbox/{sandboxIdOrName}/build-logs-url', tag, summary: "The URL of the sandbox's build logs (what the SDK follows while its image is built)", response: SnapshotLogsUrl },
    ({ c, params }) => {
      const { id } = sandboxes.get(principalOf(c), params.sandboxIdOrName);
      return { url: `${apiUrl()}/sandbox/${encodeURIComponent(id)}/build-logs` };
    },
  );
  router.route(
    {
      method: 'get',
      path: '/sandbox/{sandboxIdOrName}/build-logs',
      tag,
      summary: "The build logs of a sandbox created from a Dockerfile, as text; follow=true streams them until the build and the sandbox's start settle",
      query: SnapshotLogsQuery,
      rawResponse: 'text/plain',
    },
    ({ c, params, query }) =>
      new Response(sandboxes.buildLogs(principalOf(c), params.sandboxIdOrName, query.follow === 'true'), { headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } }),
  );
}

/** A path's minutes as a whole number, or a 400 naming it. */
function minutesOf(text: string, name: string): number {
  const parsed = IntervalParam.safeParse(text);
  if (!parsed.success) throw new CoveError('INVALID_REQUEST', `${name} must be a whole number of minutes, not ${JSON.stringify(text.slice(0, 20))}`);
  return parsed.data;
}
