import type { Duplex } from 'node:stream';
import type { z } from 'zod';
import { rejectSocket } from '../../../lib/http/node';
import type { Router } from '../../../lib/http/router';
import { settle } from '../../../lib/guard';
import { ERROR_SOURCE } from '../../../wire/errors';
import { SSH_TUNNEL_PROTOCOL, SshConnectQuery, SshListenQuery } from '../../../wire/ssh';
import { boundaryError } from '../boundary';
import type { SshService, SshTunnel } from './service';

/** The 101 that turns an agent request into a tunnel. */
const SWITCHING = `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${SSH_TUNNEL_PROTOCOL}\r\n\r\n`;

/**
 * Answers a tunnel request once the service has agreed to open it: 101, then the socket is handed over. A refusal
 * (the promise rejecting) is answered with the error envelope instead, before any 101; the gateway turns it into
 * the SSH-level failure. A socket that closed meanwhile lets the tunnel go; anything thrown after the 101 cuts the
 * connection.
 */
function open(where: string, socket: Duplex, head: Buffer, agreed: Promise<SshTunnel>): void {
  const answered = agreed.then(
    (tunnel) => {
      if (socket.destroyed) return tunnel.abandon();
      socket.write(SWITCHING);
      tunnel.attach(socket, head);
    },
    (err: unknown) => rejectSocket(socket, boundaryError(err, where), ERROR_SOURCE.agent),
  );
  settle(where, answered, () => socket.destroy());
}

/**
 * The tunnels the proxy's SSH gateway opens, one per SSH channel (raw upgrades, `Upgrade: cove-ssh`, behind the agent
 * token like every route). The frames and events they carry are described in wire/ssh.ts.
 */
export function registerSshRoutes(router: Router, ssh: SshService): void {
  const tag = 'ssh';
  router.tunnel({ path: '/ssh/session', tag, summary: 'SSH session channel: shell, command or SFTP, framed (Upgrade: cove-ssh)' }, ({ socket, head }) => {
    socket.write(SWITCHING);
    ssh.session(socket, head);
  });
  router.tunnel(
    { path: '/ssh/connect', tag, summary: 'SSH direct-tcpip: raw connection to host:port from inside the sandbox (Upgrade: cove-ssh)', query: SshConnectQuery },
    ({ socket, head, query }) => {
      const { host, port } = query as z.infer<typeof SshConnectQuery>;
      open('SSH direct-tcpip', socket, head, ssh.connect(host, port));
    },
  );
  router.tunnel(
    { path: '/ssh/listen', tag, summary: 'SSH tcpip-forward: listen inside the sandbox, announce connections as JSON lines (Upgrade: cove-ssh)', query: SshListenQuery },
    ({ socket, query }) => {
      const { address, port } = query as z.infer<typeof SshListenQuery>;
      open('SSH tcpip-forward', socket, Buffer.alloc(0), ssh.listen(address, port));
    },
  );
  // accept refuses at once (an unknown id throws NOT_FOUND), answered by the upgrade boundary like any route error.
  router.tunnel({ path: '/ssh/accept/{id}', tag, summary: 'SSH tcpip-forward: take one announced connection (Upgrade: cove-ssh)' }, ({ socket, head, params }) =>
    open('SSH accept', socket, head, Promise.resolve(ssh.accept(params.id))),
  );
}
