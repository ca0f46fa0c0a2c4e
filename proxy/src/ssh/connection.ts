import type net from 'node:net';
import type { Logger } from 'pino';
import type * as Ssh2 from 'ssh2';
import type { SshGrant } from '../auth/ssh-tokens';
import type { AgentEndpoint } from './agent-link';
import type { Wire } from './flow';

/** Session channels one connection may have open at once (OpenSSH's MaxSessions is 10). */
export const MAX_SESSIONS = 32;
/** direct-tcpip and forwarded-tcpip channels one connection may have open at once. */
export const MAX_FORWARD_CHANNELS = 256;
/** tcpip-forward listeners one connection may hold. */
export const MAX_LISTENERS = 32;

/** One authenticated client connection, as its channels see it. */
export interface SshConnection {
  client: Ssh2.Connection;
  grant: SshGrant;
  /** Logger bound to this connection (sandbox and token id; never the token). */
  log: Logger;
  wire: Wire;
  /** The SSH client's address, for SSH_CLIENT / SSH_CONNECTION in the sandbox. */
  clientAddress: { address: string; port: number };
  /** Started sessions: told and closed when the token is revoked. */
  sessions: Set<Ssh2.ServerChannel>;
  /** Every tunnel opened for this connection: they all close with it, even one still waiting for its channel. */
  tunnels: Set<net.Socket>;
  /** Open channels and listeners, against the limits above. */
  open: { sessions: number; channels: number; listeners: number };
  /** The sandbox for a new channel (token not expired since login, sandbox still started), or why not. */
  target(): AgentEndpoint | string;
  /** Opens a tunnel to the agent that lives no longer than this connection. */
  tunnel(agent: AgentEndpoint, where: string): Promise<net.Socket>;
  /** Ends the connection (and with it every channel and tunnel). */
  end(): void;
}
