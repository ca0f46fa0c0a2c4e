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
    ({ socket, head, query }) => ssh.connect(socket, head, query.host, query.port),
  );
  router.tunnel(
    { path: '/ssh/listen', tag, summary: 'SSH tcpip-forward: listen inside the sandbox, announce connections as JSON lines (Upgrade: cove-ssh)', query: SshListenQuery },
    ({ socket, query }) => ssh.listen(socket, query.address, query.port),
  );
  router.tunnel({ path: '/ssh/accept/{id}', tag, summary: 'SSH tcpip-forward: take one announced connection (Upgrade: cove-ssh)' }, ({ socket, head, params }) =>
    ssh.accept(socket, head, params.id),
  );
}
