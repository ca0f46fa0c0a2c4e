/**
 * HTTPS from a sandbox to a test server, through Cove's egress proxy and without it, in the same run, through a real
 * `cove serve`: the test server runs in a network namespace made here (its own CA), the sandbox resolves it through
 * Cove's DNS. Three sandboxes of the default image:
 * - direct: no egress policy (its traffic is forwarded by the kernel: the baseline);
 * - proxied: a `domainAllowList` naming the server (TLS decided by SNI, relayed by the proxy);
 * - substituted: a mounted secret for the server (TLS terminated with Cove's CA, the placeholder replaced).
 * In each, a Node client measures a request on a new connection (TLS handshake included) and on a kept-alive one
 * (p50 over many), and the throughput of a 256 MiB download (median of 3).
 * Run with `npm run build && node --import tsx bench/egress.ts` (root: network namespaces, iptables).
 */
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Sandbox } from '@daytonaio/sdk';
import * as dnsPacket from 'dns-packet';
import { startCove } from '../test/helpers/cove';
import { createTestHost } from '../test/helpers/netns';
import { printTable } from './lib';

const SERVER_IP = '198.51.100.31';
const NAME = 'bench.egress.test';
const NEW_CONNECTIONS = 100;
const KEPT_ALIVE = 400;
const DOWNLOAD = 256 * 1024 ** 2;

/** The client run inside each sandbox: prints JSON of its figures. */
const CLIENT = `
const https = require('https');
const lookup = (h, o, cb) => (o && o.all ? cb(null, [{ address: '${SERVER_IP}', family: 4 }]) : cb(null, '${SERVER_IP}', 4));
const [mode, n] = process.argv.slice(2);
const agentKeep = new https.Agent({ keepAlive: true, maxSockets: 1 });
function get(path, agent) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '${NAME}', path, agent, lookup, headers: { authorization: 'Bearer ' + (process.env.TOKEN || 'none') } }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error('status ' + res.statusCode))));
    });
    req.on('error', reject);
    req.end();
  });
}
const p50 = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];
(async () => {
  const times = [];
  if (mode === 'download') {
    for (let i = 0; i < Number(n); i++) {
      const t = process.hrtime.bigint();
      const bytes = await get('/bytes/${DOWNLOAD}', agentKeep);
      times.push(bytes / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9));
    }
  } else {
    for (let i = 0; i < 20; i++) await get('/warm', mode === 'new' ? new https.Agent({ keepAlive: false }) : agentKeep);
    for (let i = 0; i < Number(n); i++) {
      const t = process.hrtime.bigint();
      await get('/r', mode === 'new' ? new https.Agent({ keepAlive: false }) : agentKeep);
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  console.log(JSON.stringify({ p50: p50(times) }));
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-bench-egress-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bench CA');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${NAME}`);
  writeFileSync(path.join(dir, 'san.ext'), `subjectAltName=DNS:${NAME}\n`);
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  const testCa = readFileSync(path.join(dir, 'ca.pem'), 'utf8');
  const host = await createTestHost({ addresses: [SERVER_IP], web: { cert: readFileSync(path.join(dir, 'server.pem'), 'utf8'), key: readFileSync(path.join(dir, 'server.key'), 'utf8') } });
  const dns = createSocket('udp4');
  dns.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions?.[0];
    const known = question?.name.toLowerCase() === NAME;
    const answers = known && question.type === 'A' ? [{ type: 'A' as const, class: 'IN' as const, name: question.name, ttl: 60, data: SERVER_IP }] : [];
    dns.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3), questions: q.questions, answers }), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
  const cove = await startCove({ pool: 0, env: { COVE_DNS_SERVER: `127.0.0.1:${dns.address().port}`, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') } });
  const sandboxes: Sandbox[] = [];
  try {
    const daytona = cove.daytona();
    await daytona.secret.create({ name: 'bench-token', value: 'bench-secret-value', hosts: [NAME] } as never);
    const make = async (params: object) => {
      const sandbox = await daytona.create(params as never);
      sandboxes.push(sandbox);
      // Both CAs: the test server's (direct and relayed TLS) and Cove's (intercepted), beside the public ones.
      await sandbox.fs.uploadFile(Buffer.from(CLIENT), '/tmp/client.js');
      await sandbox.fs.uploadFile(Buffer.from(testCa), '/tmp/test-ca.pem');
      await sandbox.process.executeCommand('cat /tmp/test-ca.pem /usr/local/share/ca-certificates/cove-egress-ca.crt > /tmp/cas.pem');
      return sandbox;
    };
    const direct = await make({});
    const proxied = await make({ domainAllowList: NAME });
    const substituted = await make({ secrets: { TOKEN: 'bench-token' } });
    const run = async (sandbox: Sandbox, mode: string, n: number): Promise<number> => {
      const res = await sandbox.process.executeCommand(`NODE_EXTRA_CA_CERTS=/tmp/cas.pem node /tmp/client.js ${mode} ${n}`, undefined, undefined, 600);
      if (res.exitCode !== 0) throw new Error(`the client failed (${mode}): ${res.result}`);
      const { p50 } = JSON.parse(res.result.trim().split('\n').at(-1)!) as { p50?: number };
      if (typeof p50 !== 'number') throw new Error(`the client measured nothing (${mode}): ${res.result}`);
      return p50;
    };
    const figures: Record<string, Record<string, number>> = {};
    for (const [label, sandbox] of [
      ['direct', direct],
      ['proxied', proxied],
      ['substituted', substituted],
    ] as const) {
      figures[label] = { new: await run(sandbox, 'new', NEW_CONNECTIONS), kept: await run(sandbox, 'kept', KEPT_ALIVE), download: await run(sandbox, 'download', 3) };
    }
    // The substituted sandbox's requests really carried the value (the log names the secret).
    const log = (await (await cove.api(`/sandbox/${substituted.id}/egress-log?limit=5`)).json()) as { entries: { secrets?: string[] }[] };
    if (!log.entries.some((e) => e.secrets?.includes('bench-token'))) throw new Error('the substituted sandbox shows no substitution in its egress log');
    const rows = (label: 'proxied' | 'substituted', what: string) => [
      { name: `${what}: request on a new connection (p50)`, value: figures[label].new, unit: 'ms', baseline: figures.direct.new, baselineName: 'direct' },
      { name: `${what}: request on a kept-alive connection (p50)`, value: figures[label].kept, unit: 'ms', baseline: figures.direct.kept, baselineName: 'direct' },
      { name: `${what}: 256 MiB download (median of 3)`, value: figures[label].download, unit: 'MB/s', baseline: figures.direct.download, baselineName: 'direct' },
    ];
    printTable('HTTPS from a sandbox to a test server: through the egress proxy vs direct (same run)', [
      ...rows('proxied', 'domainAllowList (SNI, relayed)'),
      ...rows('substituted', 'secret (TLS terminated, substituted)'),
    ]);
  } finally {
    for (const s of sandboxes) await s.delete().catch(() => {});
    await cove.destroy();
    await host.remove();
    dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
