import { z } from 'zod';

/** A query-string boolean: `true`/`1` are true, `false`/`0`/absent are false. */
export const queryBool = z
  .enum(['true', 'false', '1', '0', ''])
  .optional()
  .transform((v) => v === 'true' || v === '1');

/** Names to string values: environment variables, labels. */
export const StringMap = z.record(z.string(), z.string());

/** Environment variables added to a command's, shell's or sandbox's environment. */
export const Envs = z.record(z.string(), z.string()).describe('Environment variables: names to values');
export type Envs = z.infer<typeof Envs>;

/** Answer of the info routes. */
export const DirResponse = z.object({ dir: z.string() });
export type DirResponse = z.infer<typeof DirResponse>;

export const VersionResponse = z.object({ version: z.string() });
export type VersionResponse = z.infer<typeof VersionResponse>;

/**
 * The subprotocol SDKs in browsers, Deno and edge runtimes offer on every toolbox WebSocket (they cannot set the
 * `X-Daytona-SDK-Version` header there). A client that offers subprotocols fails the handshake unless one is echoed,
 * so WebSocket routes without protocols of their own echo this one.
 */
export const SDK_VERSION_PROTOCOL_PREFIX = 'X-Daytona-SDK-Version~';
