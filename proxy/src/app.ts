import { Hono } from 'hono';
import { CoveError, toCoveError } from '../../lib/errors';
import { Router } from '../../lib/http/router';
import { ERROR_SOURCE } from '../../wire/errors';
import { authenticate } from './auth/principal';
import type { KeysService } from './auth/api-keys';
import type { Pools } from './pool/pools';
import { registerPoolRoutes } from './pool/routes';
import { registerPreviewRoutes } from './preview/routes';
import type { PreviewTokens } from './auth/preview-tokens';
import { registerSandboxRoutes } from './sandboxes/routes';
import type { SandboxService } from './sandboxes/service';
import type { SigningKeys } from './auth/signing';
import { registerSnapshotCatalogRoutes, registerSnapshotRoutes } from './snapshots/routes';
import type { SnapshotService } from './snapshots/service';
import type { SnapshotCatalog } from './snapshots/catalog';
import { registerSigningRoutes } from './auth/routes';
import type { SshAccess } from './auth/ssh-tokens';
import { registerSshRoutes, type SshEndpoint } from './ssh/routes';
import { registerRegistryRoutes } from './registries/routes';
import type { RegistryService } from './registries/service';
import { registerSecretRoutes } from './secrets/routes';
import type { SecretService } from './secrets/service';
import { registerVolumeRoutes } from './volumes/routes';
import { registerObjectStorageRoutes } from './object-storage/routes';
import type { ObjectStorage } from './object-storage/service';
import type { VolumeService } from './volumes/service';

/** Base path of the control API: the SDK's `apiUrl` is `http(s)://HOST[:PORT]/api`. */
export const API_BASE = '/api';

/** The control API: wires services to routes, behind API-key auth. Toolbox and preview traffic never reach it. */
export interface ApiOptions {
  keys: KeysService;
  sandboxes: SandboxService;
  /** Forks and snapshots of sandboxes. */
  snapshots: SnapshotService;
  /** Volumes (`/volumes`). */
  volumes: VolumeService;
  /** Daytona's snapshots: named images per API key. */
  catalog: SnapshotCatalog;
  /** Build contexts' uploads: credentials here, the S3 endpoint in server.ts. */
  objectStorage: ObjectStorage;
  /** Registry credentials for pulls (`/docker-registry`). */
  registries: RegistryService;
  /** Secrets sandboxes mount (`/secret`). */
  secrets: SecretService;
  pool?: Pools;
  previewTokens: PreviewTokens;
  /** Keys of signed file URLs (`sandbox.downloadUrl`, `uploadUrl`). */
  signing: SigningKeys;
  previewDomain: string;
  /** How clients reach this server (known once it listens). */
  publicUrl: () => string;
  toolboxUrl: () => string;
  version: string;
  /** SSH access tokens, and where clients reach the gateway (for `sshCommand`). */
  ssh: { access: SshAccess; endpoint: () => SshEndpoint };
}

export function createApiApp(opts: ApiOptions) {
  const app = new Hono().basePath(API_BASE);
  // CORS preflights never get here: the server answers them before auth (http/cors.ts).
  app.use('*', async (c, next) => {
    c.set('principal' as never, authenticate(opts.keys, c.req.raw.headers) as never);
    await next();
  });
  app.onError((err, c) => {
    const error = toCoveError(err);
    return c.json(error.toBody(ERROR_SOURCE.api), error.status as 400);
  });
  app.notFound((c) => c.json(new CoveError('NOT_FOUND', `No route for ${c.req.method} ${c.req.path}`).toBody(ERROR_SOURCE.api), 404));

  // Control API bodies are small (a create request with env and labels): 256 KiB bounds what one connection can hold.
  const router = new Router(app, { maxJsonBody: 256 * 1024 });
  registerSandboxRoutes(router, opts.sandboxes, opts.toolboxUrl, () => `${opts.publicUrl()}${API_BASE}`);
  registerSnapshotRoutes(router, opts.snapshots);
  registerVolumeRoutes(router, opts.volumes);
  registerRegistryRoutes(router, opts.registries);
  registerSecretRoutes(router, opts.secrets);
  registerSnapshotCatalogRoutes(router, opts.catalog, () => `${opts.publicUrl()}${API_BASE}`);
  registerObjectStorageRoutes(router, opts.objectStorage);
  registerPoolRoutes(router, opts.pool);
  registerPreviewRoutes(router, { sandboxes: opts.sandboxes, tokens: opts.previewTokens, publicUrl: opts.publicUrl, domain: opts.previewDomain });
  registerSshRoutes(router, { sandboxes: opts.sandboxes, access: opts.ssh.access, endpoint: opts.ssh.endpoint });
  registerSigningRoutes(router, { sandboxes: opts.sandboxes, keys: opts.signing });
  let openapi: object | undefined;
  app.get('/openapi.json', (c) => c.json((openapi ??= router.openapi({ title: 'Cove API', version: opts.version }))));
  return app;
}
