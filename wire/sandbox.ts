import { StringMap } from './common';
import { SandboxVolume } from './volumes';
import { z } from 'zod';

/**
 * Sandbox states, with Daytona's names (the SDK waits on `started`, `stopped`, `error`, `destroyed`). `destroyed` is
 * never stored: only a deleted sandbox's tombstone has it (proxy/src/sandboxes/tombstones.ts). `forking` and
 * `snapshotting`: its file system is being copied (a fork, a snapshot); it returns to the state it had once the copy
 * is made. `pending_build` and `building_snapshot`: the Dockerfile of its create is waiting to be built, being built;
 * `build_failed`: it could not be built (`errorReason` says why; the sandbox has no container, only delete is left).
 */
export const SANDBOX_STATES = ['creating', 'starting', 'started', 'stopping', 'stopped', 'destroying', 'destroyed', 'error', 'pausing', 'paused', 'resuming', 'archiving', 'archived', 'restoring', 'forking', 'snapshotting', 'pending_build', 'building_snapshot', 'build_failed'] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

const stringMap = StringMap;
/** Minutes; 0 turns the timer off (auto-delete: -1 off, 0 at once when stopped). */
const minutes = z.number().int().min(0).max(525_600);
const interval = minutes.optional();

/**
 * `POST /sandbox`, the fields Cove acts on. Unknown fields the SDK sends (target, spot, otel…) are accepted and
 * ignored; fields that ask for something Cove cannot give (GPUs, a volume's subpath) are refused by the service.
 */
/**
 * An image reference as Docker reads one: `[registry[:port]/]path[:tag][@digest]`, no spaces or control characters.
 * Anything else is refused here, before any Docker call.
 */
export const IMAGE_REF = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const imageRef = z.string().max(255).regex(IMAGE_REF, 'an image reference such as name:tag or registry/name:tag');

/** A sandbox's name: unique among its API key's sandboxes. */
const sandboxName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'letters, digits, ".", "_" and "-", at most 63, starting with a letter or digit');

export const CreateSandboxRequest = z.object({
  name: sandboxName.optional(),
  /** The image to run (Daytona calls images snapshots). */
  snapshot: imageRef.optional(),
  /** Cove's own spelling of `snapshot`. */
  image: imageRef.optional(),
  /** What the SDK sends for `create({image: 'name'})`: a Dockerfile that is one FROM line. */
  buildInfo: z.object({ dockerfileContent: z.string().optional(), contextHashes: z.array(z.string()).optional() }).optional(),
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]*$|^root$/, 'a user name')
    .optional(),
  env: stringMap.optional(),
  labels: stringMap.optional(),
  public: z.boolean().optional(),
  cpu: z.number().int().min(1).max(64).optional(),
  gpu: z.number().int().min(0).optional(),
  /** GiB */
  memory: z.number().int().min(1).max(256).optional(),
  /** GiB */
  disk: z.number().int().min(1).max(1024).optional(),
  autoStopInterval: interval,
  autoArchiveInterval: interval,
  autoDeleteInterval: z.number().int().min(-1).max(525_600).optional(),
  autoPauseInterval: interval,
  /** Destroyed this many minutes after creation, whatever its state; 0: never. */
  ttlMinutes: interval,
  /** Every outbound connection refused (DNS names still resolve). */
  networkBlockAll: z.boolean().optional(),
  /** Comma-separated IPv4 networks, at most 5: the only destinations allowed. */
  networkAllowList: z.string().max(1000).optional(),
  /** Comma-separated host names and `*.` wildcards, at most 100: reached on ports 80 and 443 through Cove's egress proxy. */
  domainAllowList: z.string().max(10_000).optional(),
  /** An http(s) proxy set as HTTP(S)_PROXY in the sandbox's environment (convenience routing, not a boundary). */
  outboundProxyUrl: z.string().max(2048).optional(),
  /** Volumes to mount (the caller's, `ready`); kept by the sandbox through stop, start, archive and restore. */
  volumes: z.array(SandboxVolume).optional(),
  /** Daytona's region; a Cove server has one, `local`. */
  target: z.string().optional(),
  // Asked for by the SDK, not offered by Cove: refused by name when set (never stored and ignored).
  gpuType: z.array(z.string()).optional(),
  spot: z.boolean().optional(),
  kvm: z.boolean().optional(),
  /** Secrets to mount: each entry maps an environment variable to the name of one of the caller's secrets. */
  secrets: z.array(z.record(z.string().max(256), z.string().max(255))).max(50).optional(),
  linkedSandbox: z.string().optional(),
  otelEndpointOverride: z.string().optional(),
});
export type CreateSandboxRequest = z.infer<typeof CreateSandboxRequest>;

/** The sandbox as the Daytona SDK reads it. */
export const SandboxDto = z.object({
  id: z.string(),
  organizationId: z.string(),
  name: z.string(),
  snapshot: z.string(),
  user: z.string(),
  env: stringMap,
  labels: stringMap,
  public: z.boolean(),
  networkBlockAll: z.boolean(),
  networkAllowList: z.string().optional(),
  domainAllowList: z.string().optional(),
  outboundProxyUrl: z.string().optional(),
  target: z.string(),
  cpu: z.number(),
  gpu: z.number(),
  memory: z.number(),
  disk: z.number(),
  state: z.enum(SANDBOX_STATES),
  errorReason: z.string().optional(),
  recoverable: z.boolean(),
  autoStopInterval: z.number(),
  autoArchiveInterval: z.number(),
  autoDeleteInterval: z.number(),
  autoPauseInterval: z.number(),
  autoDestroyAt: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastActivityAt: z.string(),
  toolboxProxyUrl: z.string(),
  daemonVersion: z.string().optional(),
  /** The volumes mounted in the sandbox (ids, never names). */
  volumes: z.array(SandboxVolume).optional(),
});
export type SandboxDto = z.infer<typeof SandboxDto>;

/** `POST /sandbox/{id}/fork` (SDK 0.218 `fork`): a new sandbox with a copy of this one's file system. */
export const ForkSandboxRequest = z.object({
  /** The fork's name; its id when not given. */
  name: sandboxName.optional(),
});
export type ForkSandboxRequest = z.infer<typeof ForkSandboxRequest>;

/**
 * `POST /sandbox/{id}/snapshot` (SDK 0.218 `createSnapshot`): the sandbox's file system as a snapshot (a local image)
 * that creates accept as `snapshot`. The name is checked by the service, which says what is wrong with it.
 */
export const CreateSandboxSnapshotRequest = z.object({
  name: z.string().max(1000),
  /** Memory snapshots are for Daytona's VM sandboxes; refused when true. */
  includeMemory: z.boolean().optional(),
});
export type CreateSandboxSnapshotRequest = z.infer<typeof CreateSandboxSnapshotRequest>;

/** `PUT /sandbox/{id}/labels` (SDK `setLabels`): the sandbox's labels, replaced. */
export const ReplaceLabelsRequest = z.object({ labels: StringMap });
export type ReplaceLabelsRequest = z.infer<typeof ReplaceLabelsRequest>;

/** `POST /sandbox/{id}/resize` (SDK `resize`): cpu and memory live, disk (grow only) while stopped. */
export const ResizeSandboxRequest = z.strictObject({
  cpu: z.number().int().min(1).max(64).optional(),
  /** GiB */
  memory: z.number().int().min(1).max(256).optional(),
  /** GiB */
  disk: z.number().int().min(1).max(1024).optional(),
});
export type ResizeSandboxRequest = z.infer<typeof ResizeSandboxRequest>;

/** Path parameters of the lifecycle setters (`/autostop/{interval}` and friends): whole minutes. */
export const IntervalParam = z.coerce.number().int().min(-1).max(525_600);

/** `POST /sandbox/{id}/network-settings` (SDK 0.218 `updateNetworkSettings`): changes egress on a running sandbox. */
export const UpdateNetworkSettingsRequest = z.object({
  networkBlockAll: z.boolean().optional(),
  networkAllowList: z.string().max(1000).optional(),
  domainAllowList: z.string().max(10_000).optional(),
});
export type UpdateNetworkSettingsRequest = z.infer<typeof UpdateNetworkSettingsRequest>;

/** `PUT /sandbox/{id}/secrets` (SDK 0.218 `updateSecrets`): the secrets mounted, replaced (an empty list detaches all). */
export const UpdateSandboxSecretsRequest = z.object({
  secrets: z.array(z.record(z.string().max(256), z.string().max(255))).max(50),
});
export type UpdateSandboxSecretsRequest = z.infer<typeof UpdateSandboxSecretsRequest>;

/** A query-string boolean that may be absent (a filter not asked for). */
const queryFlag = z
  .enum(['true', 'false', '1', '0'])
  .optional()
  .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1'));
/** A list given as a repeated name or comma-separated. */
const queryList = z.union([z.string(), z.array(z.string())]).optional();
const queryNumber = z.coerce.number().min(0).optional();

/**
 * `GET /sandbox` (SDK 0.2: `daytona.list(query)`): Daytona's search. Names it takes but Cove cannot honour are
 * refused by name (`sandboxClasses`, and `autoDestroyAt*` until sandboxes have a ttl).
 */
export const ListSandboxesQuery = z.strictObject({
  cursor: z.string().max(1000).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** Id prefix, case-insensitive. */
  id: z.string().optional(),
  /** Name prefix, case-insensitive. */
  name: z.string().optional(),
  /** JSON object of labels every listed sandbox must carry. */
  labels: z.string().optional(),
  /** Refused when true: deleted sandboxes are never listed (GET /sandbox/{id} answers one as `destroyed` for a few minutes only). */
  includeErroredDeleted: queryFlag,
  /** Warm-pool containers are not sandboxes until claimed, so there are none to include. */
  includeWarm: queryFlag,
  states: queryList,
  /** Image names. */
  snapshots: queryList,
  /** Targets (Cove has one, `local`). */
  regionIds: queryList,
  minCpu: queryNumber,
  maxCpu: queryNumber,
  minMemoryGiB: queryNumber,
  maxMemoryGiB: queryNumber,
  minDiskGiB: queryNumber,
  maxDiskGiB: queryNumber,
  minGpu: queryNumber,
  maxGpu: queryNumber,
  isPublic: queryFlag,
  isRecoverable: queryFlag,
  createdAtAfter: z.string().optional(),
  createdAtBefore: z.string().optional(),
  /** Last activity. */
  lastEventAfter: z.string().optional(),
  lastEventBefore: z.string().optional(),
  sort: z.enum(['name', 'cpu', 'memoryGib', 'diskGib', 'lastActivityAt', 'createdAt']).optional(),
  order: z.enum(['asc', 'desc']).optional(),
});
export type ListSandboxesQuery = z.infer<typeof ListSandboxesQuery>;

export const ListSandboxesResponse = z.object({ items: z.array(SandboxDto), nextCursor: z.string().nullable() });
export type ListSandboxesResponse = z.infer<typeof ListSandboxesResponse>;

/**
 * `GET /sandbox/paginated` (SDKs before 0.2: `list(labels, page, limit)` and `findOne({labels})`): numbered pages.
 * Filters Cove does not keep (snapshots, regions, resource ranges, deleted sandboxes) are refused by name.
 */
export const ListSandboxesPageQuery = z.strictObject({
  page: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
  id: z.string().optional(),
  name: z.string().optional(),
  labels: z.string().optional(),
  states: z.union([z.string(), z.array(z.string())]).optional(),
});
export type ListSandboxesPageQuery = z.infer<typeof ListSandboxesPageQuery>;

export const ListSandboxesPageResponse = z.object({
  items: z.array(SandboxDto),
  total: z.number().int(),
  page: z.number().int(),
  totalPages: z.number().int(),
});
export type ListSandboxesPageResponse = z.infer<typeof ListSandboxesPageResponse>;

export const ToolboxProxyUrl = z.object({ url: z.string() });
export type ToolboxProxyUrl = z.infer<typeof ToolboxProxyUrl>;

/** One warm pool: of the default image and class, or of a snapshot (`snapshot`: `NAME[@KEY]` as configured). */
const PoolView = z.object({
  snapshot: z.string().optional(),
  /** Containers the pool keeps ready. */
  target: z.number().int(),
  /** Containers ready now. */
  ready: z.number().int(),
  /** The ready containers' ids: a create that hits the pool gets one of these. */
  members: z.array(z.string()),
  image: z.string(),
  cpu: z.number(),
  memory: z.number(),
  /** Why a snapshot's pool has no members (its snapshot missing, not active, or of several keys). */
  waiting: z.string().optional(),
});

/** `GET /pool` (admin): the default image's pool at the top level (zeros when there is none), and every pool in `pools`. */
export const PoolStatus = z.object({
  target: z.number().int(),
  ready: z.number().int(),
  image: z.string(),
  cpu: z.number(),
  memory: z.number(),
  pools: z.array(PoolView),
});
export type PoolStatus = z.infer<typeof PoolStatus>;
