import { z } from 'zod';

/**
 * Registry types, with Daytona's names. Keys make `organization` registries (their own credentials for pulls); the
 * others name Daytona's internal registries, which a Cove server has none of, and are refused by name on create.
 */
export const REGISTRY_TYPES = ['internal', 'organization', 'transient', 'backup'] as const;
export type RegistryType = (typeof REGISTRY_TYPES)[number];

/**
 * `POST /docker-registry` (api-client `DockerRegistryApi.createRegistry`). `url` is `host[:port][/path]` (an
 * `http://` or `https://` prefix is accepted and dropped); `project` a path under it. `registryType` and `isDefault`
 * are sent by older api-clients; the service checks what they may be.
 */
export const CreateRegistryRequest = z.object({
  name: z.string().max(255),
  url: z.string().max(1000),
  username: z.string().max(1000),
  password: z.string().max(10_000),
  project: z.string().max(255).optional(),
  registryType: z.string().optional(),
  isDefault: z.boolean().optional(),
});
export type CreateRegistryRequest = z.infer<typeof CreateRegistryRequest>;

/** `PATCH /docker-registry/{id}`: name, url and username as on create; a password left out (or empty) is kept. */
export const UpdateRegistryRequest = z.object({
  name: z.string().max(255),
  url: z.string().max(1000),
  username: z.string().max(1000),
  password: z.string().max(10_000).optional(),
  project: z.string().max(255).optional(),
});
export type UpdateRegistryRequest = z.infer<typeof UpdateRegistryRequest>;

/**
 * A registry as the api-client reads it (`DockerRegistry`). The password is never part of it. Cove adds
 * `organizationId` (the id of the API key that owns it, as on volumes and snapshots) and `isDefault` (its credentials
 * serve every key's pulls from its host).
 */
export const RegistryDto = z.object({
  id: z.string(),
  name: z.string(),
  url: z.string(),
  username: z.string(),
  project: z.string(),
  registryType: z.enum(REGISTRY_TYPES),
  organizationId: z.string(),
  isDefault: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type RegistryDto = z.infer<typeof RegistryDto>;

export const ListRegistriesResponse = z.array(RegistryDto);
