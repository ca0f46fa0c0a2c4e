import type { Router } from '../../../lib/http/router';
import { CoveError } from '../../../lib/errors';
import { SandboxDto } from '../../../wire/sandbox';
import { CreateSshAccessQuery, RevokeSshAccessQuery, SshAccessDto, SshAccessValidationDto, ValidateSshAccessQuery } from '../../../wire/ssh';
import { principalOf } from '../auth/principal';
import type { SandboxService } from '../sandboxes/service';
import type { SshAccess } from '../auth/ssh-tokens';

/** Where clients reach the gateway, for `sshCommand`. */
export interface SshEndpoint {
  host: string;
  port: number;
}

/** Daytona's SSH access routes (under the API base path). */
export function registerSshRoutes(router: Router, deps: { sandboxes: SandboxService; access: SshAccess; endpoint: () => SshEndpoint }): void {
  const tag = 'ssh';
  // Two segments after /sandbox, so no `/sandbox/{id}` route can take it for a sandbox named ssh-access.
  router.route(
    { method: 'get', path: '/sandbox/ssh-access/validate', tag, summary: 'Whether an SSH access token is valid, and its sandbox', query: ValidateSshAccessQuery, response: SshAccessValidationDto },
    ({ c, query }) => {
      const checked = deps.access.check(query.token);
      if (!('grant' in checked)) return { valid: false, sandboxId: '' };
      const sandbox = deps.sandboxes.find(checked.grant.sandboxId);
      // A caller who may not see the sandbox learns nothing about it, not even that the token is live.
      if (!sandbox || !deps.sandboxes.mayUse(principalOf(c), sandbox)) return { valid: false, sandboxId: '' };
      return { valid: true, sandboxId: sandbox.id };
    },
  );
  router.route(
    {
      method: 'post',
      path: '/sandbox/{sandboxIdOrName}/ssh-access',
      tag,
      summary: 'Create an SSH access token (the SSH user name) for a sandbox',
      query: CreateSshAccessQuery,
      response: SshAccessDto,
    },
    ({ c, params, query }) => {
      const { id } = deps.sandboxes.get(principalOf(c), params.sandboxIdOrName);
      const created = deps.access.create(id, query.expiresInMinutes ?? 60);
      const { host, port } = deps.endpoint();
      return { ...created, sshCommand: `ssh -p ${port} ${created.token}@${host}` };
    },
  );
  router.route(
    {
      method: 'delete',
      path: '/sandbox/{sandboxIdOrName}/ssh-access',
      tag,
      summary: 'Revoke one SSH access token, or all of the sandbox without `token`; open sessions close',
      query: RevokeSshAccessQuery,
      response: SandboxDto,
    },
    ({ c, params, query }) => {
      const sandbox = deps.sandboxes.get(principalOf(c), params.sandboxIdOrName);
      const revoked = deps.access.revoke(sandbox.id, query.token);
      if (query.token !== undefined && revoked === 0) throw new CoveError('NOT_FOUND', 'No such live SSH access token for this sandbox');
      return sandbox;
    },
  );
}
