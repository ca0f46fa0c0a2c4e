import { z } from 'zod';

/**
 * `GET /api/object-storage/push-access`: short-lived S3 credentials with which the SDK uploads build contexts
 * (`Image.addLocalFile/addLocalDir`) as `{organizationId}/{hash}/context.tar` into `bucket` at `storageUrl`
 * (path-style). `region` is what the SDK's S3 client is configured with.
 */
export const PushAccess = z.object({
  accessKey: z.string(),
  secret: z.string(),
  sessionToken: z.string(),
  storageUrl: z.string(),
  organizationId: z.string(),
  bucket: z.string(),
  region: z.string(),
});
export type PushAccess = z.infer<typeof PushAccess>;
