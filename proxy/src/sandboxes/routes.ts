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
  ToolboxProxyUrl,
  UpdateNetworkSettingsRequest,
} from '../../../wire/sandbox';
import { principalOf } from '../auth/principal';
import type { SandboxService } from './service';

/** The Daytona-compatible sandbox routes (mounted under the API base path). */
export function registerSandboxRoutes(router: Router, sandboxes: SandboxService, toolboxUrl: () => string): void {
  const tag = 'sandbox';
  router.route(
    { method: 'post', path: '/sandbox', tag, summary: 'Create a sandbox (started when this returns)', body: CreateSandboxRequest, response: SandboxDto },
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
    { method: 'get', path: '/sandbox/{sandboxIdOrName}', tag, summary: 'Get a sandbox', response: SandboxDto },
    ({ c, params }) => sandboxes.get(principalOf(c), params.sandboxIdOrName),
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
      summary: 'Change what a sandbox may reach (block all, or an IPv4 allow-list), in force when this returns',
      body: UpdateNetworkSettingsRequest,
      response: SandboxDto,
    },
    ({ c, params, body }) => sandboxes.updateNetworkSettings(principalOf(c), params.sandboxIdOrName, body),
  );
  router.route(
    { method: 'get', path: '/sandbox/{sandboxIdOrName}/toolbox-proxy-url', tag, summary: 'Base URL of toolbox calls', response: ToolboxProxyUrl },
    ({ c, params }) => {
      sandboxes.get(principalOf(c), params.sandboxIdOrName);
      return { url: toolboxUrl() };
    },
  );
}
