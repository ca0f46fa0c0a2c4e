import type net from 'node:net';
import { SSH_TUNNEL_PROTOCOL } from '../../../wire/ssh';
import { openAgentUpgrade, type AgentEndpoint, type AgentUpgradeError } from '../runtime/agent-upgrade';

export type { AgentEndpoint } from '../runtime/agent-upgrade';

/**
 * Opens one of the agent's `cove-ssh` tunnels (see wire/ssh.ts); the socket comes back paused. A refusal rejects with
 * the agent's own message (e.g. "Nothing is listening").
 */
export async function openAgentTunnel(agent: AgentEndpoint, pathAndQuery: string): Promise<net.Socket> {
  try {
    return await openAgentUpgrade(agent, pathAndQuery, SSH_TUNNEL_PROTOCOL, { pause: true });
  } catch (err) {
    const code = (err as AgentUpgradeError).code;
    if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH') throw new Error('the sandbox is not reachable (is it running?)');
    throw err;
  }
}
