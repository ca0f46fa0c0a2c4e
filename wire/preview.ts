import { z } from 'zod';

/** `getPreviewLink(port)`: the URL, and a token opening that port of that sandbox only. */
export const PortPreviewUrl = z.object({ sandboxId: z.string(), url: z.string(), token: z.string() });
export type PortPreviewUrl = z.infer<typeof PortPreviewUrl>;

/** A signed, expiring URL for sharing: the token is part of its host name, so nothing else is needed to open it. */
export const SignedPortPreviewUrl = z.object({
  sandboxId: z.string(),
  port: z.number().int(),
  token: z.string(),
  url: z.string(),
  expiresAt: z.string(),
});
export type SignedPortPreviewUrl = z.infer<typeof SignedPortPreviewUrl>;

export const SignedPreviewQuery = z.object({
  /** Lifetime in seconds: 1 s to 7 days, 60 s by default (Daytona's default). */
  expiresInSeconds: z.coerce.number().int().min(1).max(7 * 24 * 3600).optional(),
});
