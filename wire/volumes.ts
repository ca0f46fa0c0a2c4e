import { z } from 'zod';

/**
 * Volume states, with Daytona's names. A Cove volume answers its create once it is `ready` (the Docker volume exists
 * and its root is writable), and its delete once it is gone; `creating` and `deleting` show only while those run.
 * The others are Daytona's and are never stored by Cove.
 */
export const VOLUME_STATES = ['pending_create', 'creating', 'ready', 'pending_delete', 'deleting', 'deleted', 'error'] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];

/** `POST /volumes` (SDK `volume.create(name)`, and `volume.get(name, true)` when there is none of that name). */
export const CreateVolumeRequest = z.object({ name: z.string() });
export type CreateVolumeRequest = z.infer<typeof CreateVolumeRequest>;

/** A volume as the Daytona SDK reads it (its `VolumeDto`). `organizationId` is the id of the API key that owns it. */
export const VolumeDto = z.object({
  id: z.string(),
  name: z.string(),
  organizationId: z.string(),
  state: z.enum(VOLUME_STATES),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastUsedAt: z.string().nullable(),
  errorReason: z.string().nullable(),
});
export type VolumeDto = z.infer<typeof VolumeDto>;

/** `GET /volumes`: deleted volumes are forgotten at once, so asking to include them is refused by name. */
export const ListVolumesQuery = z.strictObject({
  includeDeleted: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
});
export type ListVolumesQuery = z.infer<typeof ListVolumesQuery>;

export const ListVolumesResponse = z.array(VolumeDto);

/**
 * A volume mounted in a sandbox (Daytona's `SandboxVolume`), in `create({volumes})` and in the sandbox DTO. On create
 * `volumeId` may be the volume's id or its name; the sandbox shows the id.
 */
export const SandboxVolume = z.object({
  volumeId: z.string().max(255),
  mountPath: z.string().max(1024),
  subpath: z.string().max(1024).optional(),
});
export type SandboxVolume = z.infer<typeof SandboxVolume>;
