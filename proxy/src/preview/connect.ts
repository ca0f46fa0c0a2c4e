import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { openAgentUpgrade, type AgentUpgradeError } from '../runtime/agent-upgrade';

/** Where a preview goes: a port of a sandbox, and how to reach its agent if the port is bound to loopback. */
export interface PortTarget {
  ip: string;
  port: number;
  agentToken: string;
}

/** Ports found bound to the sandbox's loopback only, remembered for a while so new connections go straight to the tunnel. */
const loopbackOnly = new Map<string, number>();
const LOOPBACK_MEMORY_MS = 30_000;

/**
 * Opens a TCP connection to a sandbox port: straight to the container address when the server listens there, else
 * through the agent's `cove-tcp` tunnel, which reaches servers bound to 127.0.0.1 or ::1 inside the sandbox.
 */
export function connectToPort(target: PortTarget): Promise<net.Socket> {
  const key = `${target.ip}:${target.port}`;
  const direct = () =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(target.port, target.ip);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    });
  if ((loopbackOnly.get(key) ?? 0) > Date.now()) return tunnel(target);
  return direct().catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ECONNREFUSED') throw err;
    loopbackOnly.set(key, Date.now() + LOOPBACK_MEMORY_MS);
    return tunnel(target);
  });
}

/**
 * The agent's raw tunnel to the port. A refusal (nothing listens there) rejects with code ECONNREFUSED, as a direct
 * connection would.
 */
async function tunnel(target: PortTarget): Promise<net.Socket> {
  try {
    return await openAgentUpgrade(target, `/port/${target.port}/tunnel`, 'cove-tcp');
  } catch (err) {
    if ((err as AgentUpgradeError).reason !== 'refused') throw err;
    throw Object.assign(new Error(`the port is not listening (${(err as AgentUpgradeError).statusLine}) ${(err as Error).message}`), { code: 'ECONNREFUSED' });
  }
}

/** Keep-alive pool of preview connections, keyed by address and port like any http.Agent. */
export class PreviewAgent extends http.Agent {
  constructor() {
    super({ keepAlive: true, maxSockets: 256, maxFreeSockets: 32, scheduling: 'lifo', timeout: 60_000 });
  }

  // Node's Agent accepts a connection created asynchronously: return nothing and call back with the socket.
  override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const target = (options as { coveTarget?: PortTarget }).coveTarget!;
    connectToPort(target).then(
      (socket) => {
        socket.setNoDelay(true);
        callback?.(null, socket);
      },
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}
