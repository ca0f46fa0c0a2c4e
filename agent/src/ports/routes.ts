import { CoveError } from '../../../lib/errors';
import { settle } from '../../../lib/guard';
import { PortInUse, PortList } from '../../../wire/ports';
import type { Router } from '../../../lib/http/router';
import type { PortsService } from './service';
import { openTunnel } from './tunnel';

export function registerPortsRoutes(router: Router, ports: PortsService): void {
  const tag = 'ports';
  router.route({ method: 'get', path: '/port', tag, summary: 'Listening TCP ports', response: PortList }, async () => ({
    ports: await ports.listening(),
  }));
  router.route(
    { method: 'get', path: '/port/{port}/in-use', tag, summary: 'Whether a TCP port is listening', response: PortInUse },
    async ({ params }) => ({ isInUse: await ports.isInUse(Number(params.port)) }),
  );
  // The proxy reaches servers bound to the sandbox's loopback through this tunnel (previews).
  router.tunnel({ path: '/port/{port}/tunnel', tag, summary: 'Raw TCP tunnel to a port of the sandbox (Upgrade: cove-tcp)' }, ({ socket, head, params }) => {
    const port = Number(params.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CoveError('INVALID_REQUEST', `Invalid port ${params.port}: expected an integer from 1 to 65535`);
    settle('port tunnel', openTunnel(socket, head, port), () => socket.destroy());
  });
}
