import type { z } from 'zod';
import type { Router } from '../../../lib/http/router';
import { SshConnectQuery, SshListenQuery } from '../../../wire/ssh';
import type { SshService } from './service';

/**
 * The tunnels the proxy's SSH gateway opens, one per SSH channel (raw upgrades, `Upgrade: cove-ssh`, behind the agent
 * token like every route). The frames and events they carry are described in wire/ssh.ts.
 */
export function registerSshRoutes(router: Router, ssh: SshService): void {
  const tag = 'ssh';
  router.tunnel({ path: '/ssh/session', tag, summary: 'SSH session channel: shell, command or SFTP, framed (Upgrade: cove-ssh)' }, ({ socket, head }) =>
    ssh.session(socket, head),
  );
  router.tunnel(
    { path: '/ssh/connect', tag, summary: 'SSH direct-tcpip: raw connection to host:port from inside the sandbox (Upgrade: cove-ssh)', query: SshConnectQuery },
    ({ socket, head, query }) => {
      const { host, port } = query as z.infer<typeof SshConnectQuery>;
      ssh.connect(socket, head, host, port);
    },
  );
  router.tunnel(
    { path: '/ssh/listen', tag, summary: 'SSH tcpip-forward: listen inside the sandbox, announce connections as JSON lines (Upgrade: cove-ssh)', query: SshListenQuery },
    ({ socket, query }) => {
      const { address, port } = query as z.infer<typeof SshListenQuery>;
      ssh.listen(socket, address, port);
    },
  );
  router.tunnel({ path: '/ssh/accept/{id}', tag, summary: 'SSH tcpip-forward: take one announced connection (Upgrade: cove-ssh)' }, ({ socket, head, params }) =>
    ssh.accept(socket, head, params.id),
  );
}
