import type { IncomingMessage } from 'node:http';
import { CoveError } from '../../../lib/errors';
import { SIGNED_URL_PARAMS } from '../../../wire/signing';
import { authenticate } from '../auth/principal';
import type { KeysService } from '../auth/api-keys';
import { isTokenParam, TOKEN_HEADERS } from '../preview/credentials';
import { parseQuery, splitTarget, targetWithout, type QueryParam } from '../preview/target';
import type { PreviewTokens } from '../auth/preview-tokens';
import type { SandboxRecord } from '../sandboxes/repo';
import type { AgentTarget, SandboxService } from '../sandboxes/service';
import type { SigningKeys } from '../auth/signing';
import { checkSignedFileUrl, SIGNED_OPERATIONS, type SignedParams } from '../auth/signing';

/** The preview port whose tokens open toolbox WebSockets: the SDK asks for `getPreviewLink(1)` (no app listens on 1). */
const TOOLBOX_TOKEN_PORT = 1;

/**
 * Which preview tokens open a toolbox WebSocket without an API key: those of `port`, in the DAYTONA_SANDBOX_AUTH_KEY
 * query, and with `header` also in X-Daytona-Preview-Token (SDK 0.108's port-2280 host, see legacy.ts).
 */
interface UpgradeTokens {
  port: number;
  header: boolean;
}
const TOOLBOX_TOKENS: UpgradeTokens = { port: TOOLBOX_TOKEN_PORT, header: false };

type Request = Pick<IncomingMessage, 'method' | 'headers'>;

/** Where a toolbox call goes, and the agent path it is forwarded with (no credential of the caller's in it). */
interface ToolboxCall {
  target: AgentTarget;
  path: string;
}

function grouped(params: QueryParam[]): SignedParams {
  const map: SignedParams = new Map();
  for (const p of params) map.set(p.name, [...(map.get(p.name) ?? []), p.value]);
  return map;
}

/**
 * Who may make a toolbox call, and what reaches the agent. Accepted: `Authorization: Bearer <api key>` of a key that
 * may use the sandbox (every call); a signed file URL without Authorization (`GET /files/download`,
 * `POST /files/upload-v2`); and on WebSocket upgrades without Authorization, the query `DAYTONA_SANDBOX_AUTH_KEY`
 * holding a preview token of port 1 of this sandbox (what browser, Deno and edge runtimes of the SDK send). The agent
 * is always called with its own secret (see forward.ts); the preview-token parameters and the signature never reach
 * it: a signed call is forwarded with its `path` parameter alone.
 */
export function createToolboxAccess(deps: { keys: KeysService; sandboxes: SandboxService; signing: SigningKeys; previewTokens: PreviewTokens }) {
  /** The agent of a started sandbox admitted without an API key; counts as activity like agentFor. */
  function startedAgent(record: SandboxRecord): AgentTarget {
    if (record.state !== 'started' || !record.ip) throw new CoveError('SANDBOX_NOT_STARTED', `Sandbox ${record.id} is ${record.state}; start it first`);
    deps.sandboxes.touch(record.id);
    return { sandboxId: record.id, ip: record.ip, agentToken: record.agentToken };
  }

  function parse(path: string): { pathname: string; params: QueryParam[] } {
    const split = splitTarget(path);
    if (!split) throw new CoveError('INVALID_REQUEST', 'The request target is not a path (expected /path?query)');
    return { pathname: split.path, params: parseQuery(split.query) };
  }

  /** The path without preview-token parameters, and without the signature of signed operations. */
  function forwardable(path: string, pathname: string): string {
    const signed = pathname in SIGNED_OPERATIONS;
    const stripped = targetWithout(path, (p) => isTokenParam(p.name) || (signed && p.name !== 'path' && (SIGNED_URL_PARAMS as readonly string[]).includes(p.name)));
    if (stripped === undefined) throw new CoveError('INVALID_REQUEST', 'The request target is not a path (expected /path?query)');
    return stripped;
  }

  return {
    /** An HTTP toolbox call: an API key, or a signed file URL. */
    request(req: Request, sandboxId: string, path: string): ToolboxCall {
      const { pathname, params } = parse(path);
      if (req.headers.authorization === undefined) {
        if (params.some((p) => p.name === 'signature')) {
          const record = deps.sandboxes.find(sandboxId);
          const check = checkSignedFileUrl({
            key: record ? deps.signing.current(record.id) : undefined,
            method: req.method ?? '',
            operation: pathname,
            params: grouped(params),
            nowSeconds: Date.now() / 1000,
          });
          if (!check.ok) throw new CoveError('FORBIDDEN', check.reason);
          return { target: startedAgent(record!), path: `${pathname}?path=${encodeURIComponent(check.path)}` };
        }
        if (params.some((p) => isTokenParam(p.name))) {
          throw new CoveError('UNAUTHORIZED', 'DAYTONA_SANDBOX_AUTH_KEY opens toolbox WebSockets only; other toolbox calls need Authorization: Bearer <api key>');
        }
      }
      return { target: deps.sandboxes.agentFor(authenticate(deps.keys, req.headers), sandboxId), path: forwardable(path, pathname) };
    },

    /** A toolbox WebSocket upgrade: an API key, or a preview token of this sandbox (`accepted`: port 1's, in the query). */
    upgrade(req: Request, sandboxId: string, path: string, accepted: UpgradeTokens = TOOLBOX_TOKENS): ToolboxCall {
      const { pathname, params } = parse(path);
      const forwarded = forwardable(path, pathname);
      if (req.headers.authorization !== undefined) return { target: deps.sandboxes.agentFor(authenticate(deps.keys, req.headers), sandboxId), path: forwarded };
      // Exactly one token, in one place: the same token twice is refused like two different ones.
      const tokens = params.filter((p) => isTokenParam(p.name)).map((p) => p.value);
      if (accepted.header) {
        for (const name of TOKEN_HEADERS) {
          const value = req.headers[name];
          if (typeof value === 'string') tokens.push(value);
        }
      }
      if (!tokens.length) authenticate(deps.keys, req.headers); // throws the usual 401
      // Tokens are looked up by their SHA-256 (auth/credentials.ts): no secret is compared byte by byte.
      const grant = tokens.length === 1 ? deps.previewTokens.verify(tokens[0]) : undefined;
      const record = deps.sandboxes.find(sandboxId);
      if (!grant || !record || grant.sandboxId !== record.id || grant.port !== accepted.port || grant.signed) {
        throw new CoveError('UNAUTHORIZED', `DAYTONA_SANDBOX_AUTH_KEY must be the token of getPreviewLink(${accepted.port}) of this sandbox`);
      }
      return { target: startedAgent(record), path: forwarded };
    },
  };
}
export type ToolboxAccess = ReturnType<typeof createToolboxAccess>;
