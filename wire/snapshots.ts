import { z } from 'zod';
import { IMAGE_REF } from './sandbox';

/**
 * Snapshot states, with Daytona's names (SDK 0.218 `snapshot.create` waits until `active`, `error` or
 * `build_failed`). Cove keeps `pending` (recorded, nothing started), `pulling` (the engine pulls the image),
 * `active`, `inactive` (deactivated: creates refuse it), `error` (with `errorReason`) and `removing` (deleted while a
 * sandbox still runs from its image: hidden from every route, gone once the image is removed).
 */
export const SNAPSHOT_STATES = ['pending', 'pulling', 'building', 'active', 'inactive', 'error', 'build_failed', 'removing'] as const;
export type SnapshotState = (typeof SNAPSHOT_STATES)[number];

/**
 * A snapshot's name: what `create({snapshot: name})` sends, so a name an image reference can have (lowercase
 * `path[:tag]`, no digest), unique among its API key's snapshots.
 */
export const SnapshotName = z
  .string()
  .max(255)
  .regex(IMAGE_REF, 'lowercase letters, digits, ".", "_", "-" and "/", and a ":tag" if you like, as in an image name')
  .refine((n) => !n.includes('@'), 'no digest (@…)');

/** `POST /snapshots` (SDK `snapshot.create`). What Cove cannot honour yet is refused by the service, by name. */
export const CreateSnapshotRequest = z.object({
  name: z.string().max(1000),
  /** The image to make a snapshot of: used as it is when on this host, else pulled. */
  imageName: z.string().max(1000).optional(),
  /** What sandboxes of the snapshot run as their `entrypoint` session instead of the image's ENTRYPOINT and CMD. */
  entrypoint: z.array(z.string().max(4096)).max(256).optional(),
  /** The resources of every sandbox made from the snapshot (vCPU, GiB, GiB), as a sandbox create takes them. */
  cpu: z.number().int().min(1).max(64).optional(),
  gpu: z.number().optional(),
  gpuType: z.array(z.string()).optional(),
  memory: z.number().int().min(1).max(256).optional(),
  disk: z.number().int().min(1).max(1024).optional(),
  /** A declarative image (`Image.debianSlim(…)`): a Dockerfile and the hashes of its uploaded context. */
  buildInfo: z.object({ dockerfileContent: z.string(), contextHashes: z.array(z.string()).optional() }).optional(),
  regionId: z.string().optional(),
  sandboxClass: z.string().optional(),
});
export type CreateSnapshotRequest = z.infer<typeof CreateSnapshotRequest>;

/** The snapshot as the Daytona SDK reads it (`SnapshotDto`). `size` is in GB; resources in vCPU and GiB. */
export const SnapshotDto = z.object({
  id: z.string(),
  organizationId: z.string(),
  /** Visible to every API key and owned by none (Cove's default image). */
  general: z.boolean(),
  name: z.string(),
  imageName: z.string(),
  state: z.enum(SNAPSHOT_STATES),
  size: z.number().nullable(),
  entrypoint: z.array(z.string()).nullable(),
  cpu: z.number(),
  gpu: z.number(),
  mem: z.number(),
  disk: z.number(),
  errorReason: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastUsedAt: z.string().nullable(),
  /** The sandbox whose file system this snapshot is a copy of (`sandbox.createSnapshot`), else null. */
  sourceSandboxId: z.string().nullable(),
  sandboxClass: z.literal('container'),
});
export type SnapshotDto = z.infer<typeof SnapshotDto>;

/** `GET /snapshots`: numbered pages, newest first unless `sort`/`order` say otherwise. */
export const ListSnapshotsQuery = z.object({
  page: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
  name: z.string().optional(),
  sourceSandboxId: z.string().optional(),
  sort: z.enum(['name', 'state', 'lastUsedAt', 'createdAt']).optional(),
  order: z.enum(['asc', 'desc']).optional(),
});
export type ListSnapshotsQuery = z.infer<typeof ListSnapshotsQuery>;

export const PaginatedSnapshots = z.object({
  items: z.array(SnapshotDto),
  total: z.number().int(),
  page: z.number().int(),
  totalPages: z.number().int(),
});
export type PaginatedSnapshots = z.infer<typeof PaginatedSnapshots>;

/** `GET /snapshots/{id}/build-logs`: `follow=true` streams until the snapshot is active or failed. */
export const SnapshotLogsQuery = z.object({ follow: z.enum(['true', 'false']).optional() });
export type SnapshotLogsQuery = z.infer<typeof SnapshotLogsQuery>;

export const SnapshotLogsUrl = z.object({ url: z.string() });
export type SnapshotLogsUrl = z.infer<typeof SnapshotLogsUrl>;
