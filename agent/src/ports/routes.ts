import { PortInUse, PortList } from '../../../wire/ports';
import type { Router } from '../../../lib/http/router';
import type { PortsService } from './service';

export function registerPortsRoutes(router: Router, ports: PortsService): void {
  const tag = 'ports';
  router.route({ method: 'get', path: '/port', tag, summary: 'Listening TCP ports', response: PortList }, async () => ({
    ports: await ports.listening(),
  }));
  router.route(
    { method: 'get', path: '/port/{port}/in-use', tag, summary: 'Whether a TCP port is listening', response: PortInUse },
    async ({ params }) => ({ isInUse: await ports.isInUse(Number(params.port)) }),
  );
}
