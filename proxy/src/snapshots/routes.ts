import type { Router } from '../../../lib/http/router';
import { CreateSandboxSnapshotRequest, ForkSandboxRequest, SandboxDto } from '../../../wire/sandbox';
import { principalOf } from '../auth/principal';
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
