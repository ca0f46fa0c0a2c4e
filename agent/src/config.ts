import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { AGENT_PORT } from '../../wire/agent';
import { shellQuote } from '../../lib/shell';

/** Environment variable that may carry the agent token; it is removed from the environment once read. */
export const TOKEN_ENV = 'COVE_AGENT_TOKEN';

const AgentConfig = z.object({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65535),
  token: z.string().min(16, 'the agent token must be at least 16 characters'),
  workdir: z.string().min(1),
  user: z.string().min(1).optional(),
  /** Command run as the `entrypoint` session (the image's ENTRYPOINT/CMD), already shell-quoted. */
  entrypoint: z.string().min(1).optional(),
  /** Start the entrypoint only at the first request that carries the token. */
  holdEntrypoint: z.boolean(),
  /** Create `user`'s account when the system lacks it. */
  createUser: z.boolean(),
  /** A CA certificate (PEM file) that user code trusts: Cove's egress CA (system/trust.ts). */
  trustCa: z.string().min(1).optional(),
});
type AgentConfig = z.infer<typeof AgentConfig>;

export const AGENT_USAGE = `Usage: cove agent --token TOKEN|--token-file FILE [--port 2280] [--host 0.0.0.0] [--workdir DIR] [--user NAME [--create-user]] [--hold-entrypoint] [--trust-ca FILE] [-- ENTRYPOINT...]

  --token T     bearer token every request must carry (or ${TOKEN_ENV} in the environment)
  --token-file F  read the token from F at start (Cove's sandboxes: the file is gone once the agent listens)
  --port P      port to listen on; 0 picks a free one (default 2280)
  --host H      address to bind (default 0.0.0.0)
  --workdir D   working directory of commands (default: the user's home)
  --user NAME   run user code as this account (the agent must be root)
  --create-user add --user's account (home /home/NAME) when the system has none of that name
  --hold-entrypoint  start the entrypoint only once the first request with the token arrives
  --trust-ca F  add the CA certificate in F to the system's trust store and point Node, Python and curl at it
  -- CMD...     run CMD as the "entrypoint" session`;

/**
 * Reads the agent's configuration from flags and environment, once. Throws with a message for people when it is
 * incomplete. The caller removes the token from the environment.
 */
export function readAgentConfig(argv: string[], env: NodeJS.ProcessEnv, defaultWorkdir: string): AgentConfig {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      token: { type: 'string' },
      'token-file': { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      workdir: { type: 'string' },
      user: { type: 'string' },
      'hold-entrypoint': { type: 'boolean' },
      'create-user': { type: 'boolean' },
      'trust-ca': { type: 'string' },
    },
  });
  let token = values.token;
  if (token === undefined && values['token-file'] !== undefined) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (err) {
      throw new Error(`cannot read the token file ${values['token-file']}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  token ??= env[TOKEN_ENV];
  if (!token) throw new Error(`the agent refuses to start without a token: pass --token or --token-file, or set ${TOKEN_ENV}`);
  const port = values.port === undefined ? AGENT_PORT : Number(values.port);
  const result = AgentConfig.safeParse({
    host: values.host ?? '0.0.0.0',
    port,
    token,
    workdir: values.workdir ?? defaultWorkdir,
    user: values.user,
    entrypoint: positionals.length ? positionals.map(shellQuote).join(' ') : undefined,
    holdEntrypoint: values['hold-entrypoint'] ?? false,
    createUser: values['create-user'] ?? false,
    trustCa: values['trust-ca'],
  });
  if (!result.success) {
    throw new Error(result.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; '));
  }
  return result.data;
}
