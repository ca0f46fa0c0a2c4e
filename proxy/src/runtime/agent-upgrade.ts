import net from 'node:net';
import { guard } from '../../../lib/guard';
import { AGENT_PORT } from '../../../wire/agent';

/** A started sandbox's agent, as the proxy reaches it. */
export interface AgentEndpoint {
  ip: string;
  agentToken: string;
}

/** Why an upgrade did not give a socket. */
type AgentUpgradeFailure = 'refused' | 'unreachable' | 'closed' | 'timeout' | 'bad-answer';

/** The agent did not switch protocols; `message` is the agent's own (`{message}` of its refusal) when it gave one. */
export class AgentUpgradeError extends Error {
  constructor(
    message: string,
    readonly reason: AgentUpgradeFailure,
    /** The status line of a refusal. */
    readonly statusLine?: string,
    /** The network error's code when the agent could not be reached. */
    readonly code?: string,
  ) {
    super(message);
  }
}

const MAX_HEAD_BYTES = 16_384;
const DEFAULT_TIMEOUT_MS = 15_000;

/**
 * Opens one of the agent's raw tunnels: `GET path` with `Upgrade: protocol` on the agent port, answered with 101, after
 * which the socket carries the tunnel's bytes (any that came with the 101 are put back first). `pause` leaves the
 * socket paused for a caller that attaches its reader later; otherwise it stays flowing for one that reads at once.
 */
export function openAgentUpgrade(
  agent: AgentEndpoint,
  path: string,
  protocol: string,
  opts: { timeoutMs?: number; pause?: boolean } = {},
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(AGENT_PORT, agent.ip);
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new AgentUpgradeError('the sandbox did not answer in time', 'timeout')), opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onData = guard(
      'agent upgrade: answer',
      (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_HEAD_BYTES) fail(new AgentUpgradeError('the sandbox answered with an oversized header', 'bad-answer'));
          return;
        }
        const statusLine = head.subarray(0, head.indexOf('\r\n')).toString();
        if (!/^HTTP\/1\.1 101 /.test(statusLine)) {
          // The refusal's body follows its head, usually in the same packet; refusals are small.
          const body = head.subarray(end + 4).toString();
          let message = statusLine;
          try {
            message = (JSON.parse(body) as { message?: string }).message ?? statusLine;
          } catch {
            /* keep the status line */
          }
          fail(new AgentUpgradeError(message, 'refused', statusLine));
          return;
        }
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        if (opts.pause) socket.pause();
        const rest = head.subarray(end + 4);
        if (rest.length) socket.unshift(rest);
        resolve(socket);
      },
      (error) => fail(error),
    );
    const onError = (err: NodeJS.ErrnoException) => fail(new AgentUpgradeError(err.message, 'unreachable', undefined, err.code));
    const onClose = () => fail(new AgentUpgradeError('the sandbox closed the connection', 'closed'));
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once(
      'connect',
      guard(
        'agent upgrade: connect',
        () => {
          socket.setNoDelay(true);
          socket.write(
            `GET ${path} HTTP/1.1\r\nHost: ${agent.ip}:${AGENT_PORT}\r\nAuthorization: Bearer ${agent.agentToken}\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n\r\n`,
          );
        },
        (error) => fail(error),
      ),
    );
  });
}
