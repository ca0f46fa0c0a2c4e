import { readFile } from 'node:fs/promises';
import { CoveError } from '../../../lib/errors';

const TCP_LISTEN = '0A';
const TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];

/** Listening TCP ports of the sandbox's network namespace, read from the kernel's socket tables. */
export function createPortsService(tables: string[] = TABLES) {
  async function listening(): Promise<number[]> {
    const ports = new Set<number>();
    for (const table of tables) {
      let text: string;
      try {
        text = await readFile(table, 'utf8');
      } catch {
        continue; // no IPv6 in this namespace
      }
      for (const line of text.split('\n').slice(1)) {
        const cols = line.trim().split(/\s+/);
        if (cols.length < 4 || cols[3] !== TCP_LISTEN) continue;
        const port = parseInt(cols[1].split(':')[1], 16);
        if (port) ports.add(port);
      }
    }
    return [...ports].sort((a, b) => a - b);
  }
  return {
    listening,
    async isInUse(port: number): Promise<boolean> {
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new CoveError('INVALID_REQUEST', `Invalid port ${port}: expected an integer from 1 to 65535`);
      }
      return (await listening()).includes(port);
    },
  };
}
export type PortsService = ReturnType<typeof createPortsService>;
