import { z } from 'zod';

/** Host names or `*.` wildcards a secret's value may be sent to; none: it is substituted nowhere. */
const Hosts = z.array(z.string().max(253)).max(100);

/** `POST /secret` (SDK 0.218 `secret.create`). The value is write-only: no answer ever holds it. */
export const CreateSecretRequest = z.object({
  name: z.string().max(255),
  value: z.string().max(64 * 1024),
  description: z.string().max(1000).optional(),
  hosts: Hosts.optional(),
});
export type CreateSecretRequest = z.infer<typeof CreateSecretRequest>;

/** `PATCH /secret/{id}` (`secret.update`): what is left out is kept. */
export const UpdateSecretRequest = z.object({
  value: z.string().max(64 * 1024).optional(),
  description: z.string().max(1000).optional(),
  hosts: Hosts.optional(),
});
export type UpdateSecretRequest = z.infer<typeof UpdateSecretRequest>;

/**
 * A secret as the api-client reads it (`Secret`): never its value. `placeholder` (`dtn_secret_<id>`) is what a
 * sandbox that mounts it sees in its environment. Cove adds `organizationId`, the id of the API key that owns it.
 */
export const SecretDto = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().optional(),
  placeholder: z.string(),
  hosts: z.array(z.string()),
  organizationId: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type SecretDto = z.infer<typeof SecretDto>;

export const ListSecretsResponse = z.array(SecretDto);

const SECRET_SORT_FIELDS = ['name', 'createdAt', 'updatedAt'] as const;

/** `GET /secret/paginated` (`secret.list`): a name prefix (case-insensitive), sorted, a page after `cursor`. */
export const ListSecretsPageQuery = z.strictObject({
  cursor: z.string().max(2000).optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
  name: z.string().max(255).optional(),
  sort: z.enum(SECRET_SORT_FIELDS).optional(),
  order: z.enum(['asc', 'desc']).optional(),
});
export type ListSecretsPageQuery = z.infer<typeof ListSecretsPageQuery>;

export const ListSecretsPageResponse = z.object({
  items: z.array(SecretDto),
  total: z.number().int(),
  nextCursor: z.string().nullable(),
});
export type ListSecretsPageResponse = z.infer<typeof ListSecretsPageResponse>;
