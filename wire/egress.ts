import { z } from 'zod';

/**
 * One line of a sandbox's egress log (Cove's own route, `GET /api/sandbox/{id}/egress-log`): a connection or DNS
 * query that passed Cove's egress services, allowed or refused. Secrets are named, never their values.
 */
export const EgressEntry = z.object({
  time: z.string(),
  /** `http` (port 80), `https` (443, TLS terminated by Cove to substitute secrets), `tls` (443, relayed), `dns`. */
  protocol: z.enum(['http', 'https', 'tls', 'dns']),
  host: z.string(),
  port: z.number().int(),
  /** The address Cove connected to on the sandbox's behalf. */
  address: z.string().optional(),
  method: z.string().optional(),
  /** The request's path and query, cut to 512 characters. */
  path: z.string().optional(),
  status: z.number().int().optional(),
  bytesSent: z.number().int().optional(),
  bytesReceived: z.number().int().optional(),
  decision: z.enum(['allowed', 'refused']),
  reason: z.string().optional(),
  /** Names of the secrets whose values replaced their placeholders in this request. */
  secrets: z.array(z.string()).optional(),
});
export type EgressEntry = z.infer<typeof EgressEntry>;

export const EgressLogResponse = z.object({
  entries: z.array(EgressEntry),
  /** Entries dropped because the log is bounded (the oldest go first). */
  dropped: z.number().int(),
});
export type EgressLogResponse = z.infer<typeof EgressLogResponse>;
