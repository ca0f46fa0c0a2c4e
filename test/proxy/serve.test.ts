import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureImages } from '../../images/src/build';
import { ROOT } from '../helpers/agent';
import { requireDocker } from '../helpers/docker';

/**
 * `npx cove serve` as the README starts it: what it says at its start (runtime, disk limits, quotas) and at its
 * stop, and a SIGTERM to the npx process — which npm passes to a shell that does not pass it on — stops the server.
 */
const dataDirs: string[] = [];

beforeAll(async () => {
  await requireDocker();
  await ensureImages();
}, 20 * 60_000);

afterAll(() => {
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

/** Node processes serving `dataDir` (the server, under npm's shell). */
function serversOf(dataDir: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return /(^|\/)node$/.test(args[0]) && args.includes('serve') && args.includes(dataDir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('npx cove serve', () => {
  it('says its modes at the start and stops, with a line, on a SIGTERM to npx', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'cove-serve-'));
    dataDirs.push(dataDir);
    // The bundle is built by `npm test` before the suite; npx resolves `cove` to this checkout's bin.
    const npx = spawn('npx', ['cove', 'serve', '--port', '0', '--ssh-port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--pool', '0', '--log-level', 'warn'], {
      cwd: ROOT,
      env: { ...process.env, COVE_NO_BUILD: '1', COVE_API_KEY: 'test-serve-key-0123456789abcdef' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    npx.stdout!.on('data', (d) => (out += d));
    npx.stderr!.on('data', (d) => (out += d));
    try {
      await until('the ready line', () => /cove listening on \S+[^\n]*\n/.test(out), 60_000);
      expect(out).toMatch(/^disk limits: (storage-opt|watchdog|off)\b/m);
      expect(out).toMatch(/^quotas: per API key without limits of its own: 10 started sandboxes at once, .*; admin keys only by their own$/m);
      expect(out).toMatch(/cove listening on http:\/\/127\.0\.0\.1:\d+ \(API [^,]+, runtime runc, SSH port \d+\)/);
      const url = /cove listening on (\S+)/.exec(out)![1];
      const answer = await fetch(`${url}/api/sandbox`, { headers: { Authorization: 'Bearer test-serve-key-0123456789abcdef' } });
      expect(answer.status).toBe(200);

      const servers = serversOf(dataDir);
      expect(servers).toHaveLength(1);
      expect(servers[0]).not.toBe(npx.pid);
      npx.kill('SIGTERM');
      await until('the server to exit', () => serversOf(dataDir).length === 0);
      await until('the stop lines', () => /cove stopped\n/.test(out));
      expect(out).toMatch(/cove stopping \(SIGTERM\): sandboxes keep running for the next start\n/);
    } finally {
      npx.kill('SIGKILL');
      for (const pid of serversOf(dataDir)) process.kill(pid, 'SIGKILL');
    }
  }, 120_000);
});
