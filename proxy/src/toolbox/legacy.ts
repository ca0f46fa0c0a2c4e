import { CoveError } from '../../../lib/errors';
import { AGENT_PORT } from '../../../wire/agent';
import type { PreviewHost } from '../preview/host';

/**
 * The toolbox addresses of older Daytona SDKs, mapped onto Cove's toolbox (`/toolbox/{id}/…`, server.ts).
 *
 * Needed by SDK 0.108 (the version of Daytona's getting-started examples) and the releases of its generation; 0.143
 * and 0.218 call the sandbox's `toolboxProxyUrl` and need none of this. 0.108 reaches the toolbox two ways:
 * - HTTP calls through the API: `{apiUrl}/toolbox/{sandboxId}/toolbox/{agent path}` (its bundled API client's
 *   ToolboxApi; with the API key in Authorization), e.g. `/api/toolbox/{id}/toolbox/process/execute`;
 * - WebSockets (PTY connect, following a session command's logs) to the preview URL of port 2280, the port of
 *   Daytona's toolbox daemon: `ws://2280-{sandboxId}.{previewDomain}/process/pty/{sessionId}/connect`. In Node it
 *   sends the API key in Authorization and the preview token in X-Daytona-Preview-Token; in browsers and edge
 *   runtimes only the token, in the DAYTONA_SANDBOX_AUTH_KEY query parameter.
 *
 * Both become ordinary toolbox calls: the same admission (toolbox/access.ts; the token rule of the port-2280 host is
 * that of `/toolbox` upgrades with port 2280's token instead of port 1's) and the same forwarding, so the agent's
 * secret is never revealed and its answers (a 404 for a path it has no route for) are the same.
 */

/** The API's toolbox prefix of the older SDKs: `/api/toolbox/{sandboxId}/toolbox/…`. */
const API_TOOLBOX = '/api/toolbox/';
const TOOLBOX_SEGMENT = '/toolbox';

/** Agent paths whose old spelling differs from the one 0.218's toolbox client (and Cove's agent) uses. */
const RENAMED: Record<string, string> = {
  '/lsp/workspace-symbols': '/lsp/workspacesymbols',
};

/** A toolbox call in an older SDK's form: which sandbox, the agent path with its query, and how it came. */
interface LegacyToolboxCall {
  sandboxId: string;
  path: string;
  /** `api`: under `/api/toolbox/`; `agent-port`: on the preview host of port 2280. */
  via: 'api' | 'agent-port';
}

/**
 * `{port}-{id}.{domain}` hosts that are the toolbox, not a preview: port 2280 of a sandbox by id (the agent listens
 * there, so no app of the sandbox can). Signed hosts stay previews.
 */
export function isToolboxHost(host: PreviewHost): boolean {
  return host.port === AGENT_PORT && !host.signed;
}

function renamed(path: string): string {
  const q = path.indexOf('?');
  const pathname = q < 0 ? path : path.slice(0, q);
  const to = RENAMED[pathname];
  return to === undefined ? path : to + path.slice(pathname.length);
}

/**
 * The Cove toolbox call an older SDK's request stands for, or undefined when it is not one (other API routes,
 * previews). A request under `/api/toolbox/` that is not `/api/toolbox/{id}/toolbox[/…]` is a 404 naming the form;
 * a sandbox id whose percent-encoding does not decode is a 400.
 */
export function legacyToolboxCall(url: string, host: PreviewHost | undefined): LegacyToolboxCall | undefined {
  if (host) return isToolboxHost(host) ? { sandboxId: host.label, path: url, via: 'agent-port' } : undefined;
  if (!url.startsWith(API_TOOLBOX)) return undefined;
  const rest = url.slice(API_TOOLBOX.length);
  const cut = rest.indexOf('/');
  const tail = cut < 0 ? '' : rest.slice(cut);
  const inForm = cut > 0 && tail.startsWith(TOOLBOX_SEGMENT) && /^(?:[/?]|$)/.test(tail.slice(TOOLBOX_SEGMENT.length));
  if (!inForm || rest.slice(0, cut).includes('?')) {
    throw new CoveError('NOT_FOUND', `No route for ${url.split('?')[0].slice(0, 200)}: toolbox calls through the API are /api/toolbox/{sandboxId}/toolbox/…`);
  }
  let sandboxId: string;
  try {
    sandboxId = decodeURIComponent(rest.slice(0, cut));
  } catch {
    throw new CoveError('INVALID_REQUEST', 'The sandbox id in the path has malformed percent-encoding');
  }
  let path = tail.slice(TOOLBOX_SEGMENT.length);
  if (path === '' || path.startsWith('?')) path = `/${path}`;
  return { sandboxId, path: renamed(path), via: 'api' };
}
