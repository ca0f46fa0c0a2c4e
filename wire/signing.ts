import { z } from 'zod';

/**
 * `GET /sandbox/{id}/signing-key` and `POST …/signing-key/rotate` answer with the key itself, a JSON string (Daytona's
 * generated client types the body as `string`). The SDK signs file URLs with it (see `fileUrlSignature`).
 */
export const SigningKey = z.string();
export type SigningKey = z.infer<typeof SigningKey>;

/** The query of a signed file URL: `path`, `expires` (Unix seconds; 0 never expires) and `signature` (`v1_…`). */
export const SIGNED_URL_PARAMS = ['path', 'expires', 'signature'] as const;
