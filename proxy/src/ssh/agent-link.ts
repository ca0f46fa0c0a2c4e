import net from 'node:net';
import { guard } from '../../../lib/guard';
import { SSH_TUNNEL_PROTOCOL } from '../../../wire/ssh';
import { AGENT_PORT } from '../../../wire/agent';

/** How the gateway reaches a started sandbox's agent. */
export interface AgentEndpoint {
  ip: string;
  agentToken: string;
}

const OPEN_TIMEOUT_MS = 15_000;
const MAX_HEADER = 16_384;

/**
 * Opens one of the agent's `cove-ssh` tunnels (see wire/ssh.ts): an HTTP upgrade on the agent port, answered with 101,
 * after which the socket is the channel. A refusal rejects with the agent's own message (e.g. "Nothing is listening").
 */
export function openAgentTunnel(agent: AgentEndpoint, pathAndQuery: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(AGENT_PORT, agent.ip);
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error('the sandbox did not answer in time')), OPEN_TIMEOUT_MS);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onData = guard(
      'ssh tunnel: answer',
      (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_HEADER) fail(new Error('the sandbox answered with an oversized header'));
          return;
        }
        const status = head.subarray(0, head.indexOf('\r\n')).toString();
        if (!/^HTTP\/1\.1 101 /.test(status)) {
          // The body follows the header, usually in the same packet; a refusal is small.
          const body = head.subarray(end + 4).toString();
          let message = status;
          try {
            message = JSON.parse(body).message ?? status;
          } catch {
            /* keep the status line */
          }
          fail(new Error(message));
          return;
        }
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        socket.pause();
        const rest = head.subarray(end + 4);
        if (rest.length) socket.unshift(rest);
        resolve(socket);
      },
      (error) => fail(error),
    );
    socket.on('data', onData);
    const onError = (err: NodeJS.ErrnoException) =>
      fail(new Error(err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' ? 'the sandbox is not reachable (is it running?)' : err.message));
    const onClose = () => fail(new Error('the sandbox closed the connection'));
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once(
      'connect',
      guard(
        'ssh tunnel: connect',
        () => {
          socket.setNoDelay(true);
          socket.write(
            `GET ${pathAndQuery} HTTP/1.1\r\nHost: ${agent.ip}:${AGENT_PORT}\r\nAuthorization: Bearer ${agent.agentToken}\r\nConnection: Upgrade\r\nUpgrade: ${SSH_TUNNEL_PROTOCOL}\r\n\r\n`,
          );
        },
        (error) => fail(error),
      ),
    );
  });
}
