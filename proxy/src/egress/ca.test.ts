import { mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, createServer } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { loadEgressCa } from './ca';

describe('egress CA', () => {
  it('is made once per data dir (key readable by its owner only) and signs certificates clients trusting it accept', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'egress-ca-'));
    const ca = await loadEgressCa(dir);
    expect((await loadEgressCa(dir)).certPem).toBe(ca.certPem);
    expect(statSync(path.join(dir, 'egress-ca.key')).mode & 0o777).toBe(0o600);
    expect(await ca.contextFor('api.example.com')).toBe(await ca.contextFor('api.example.com'));

    const server = createServer({ SNICallback: (name, done) => void ca.contextFor(name).then((c) => done(null, c), done) }, (s) => s.end('hello'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const talk = (servername: string, trusted: boolean) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, servername, ...(trusted ? { ca: ca.certPem } : {}) }, () => socket.once('data', (d) => resolve(String(d))));
        socket.on('error', reject);
      });
    try {
      expect(await talk('api.example.com', true)).toBe('hello');
      expect(await talk('other.example.org', true)).toBe('hello');
      // A client that does not trust Cove's CA refuses the certificate.
      await expect(talk('api.example.com', false)).rejects.toThrow(/self.signed|unable to (get|verify)/i);
    } finally {
      server.close();
    }
  });
});
