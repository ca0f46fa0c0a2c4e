import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { SnapshotName } from '../../wire/snapshots';
import { normalizeOrigin } from './http/cors';
import { LIMIT_NAMES, LIMITS, parseLimit, showLimit, type Limits } from './quotas/limits';
import { OCI_RUNTIMES } from './runtime/runsc-config';

const ProxyConfig = z.object({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65535),
  dataDir: z.string().min(1),
  /** Preview hosts are `{port}-{sandboxId}.{previewDomain}`. */
  previewDomain: z.string().min(1),
  sshPort: z.number().int().min(0).max(65535),
  /** Warm containers kept ready for the default image and class. */
  pool: z.number().int().min(0).max(1000),
  /** Warm pools of snapshots (`--pool NAME[@KEY]=N`): N ready sandboxes of that snapshot, of that key when given. */
  snapshotPools: z.array(z.object({ snapshot: z.string(), key: z.string().optional(), size: z.number().int().min(0).max(1000) })),
  /** What secrets' values are sealed with (COVE_SECRET_KEY); `<dataDir>/secrets.key` when absent. */
  secretKey: z.string().min(32, 'COVE_SECRET_KEY must be at least 32 characters').optional(),
  /** Admin API key; generated and printed at first start when absent. */
  apiKey: z.string().min(16, 'COVE_API_KEY must be at least 16 characters').optional(),
  /** Base URL clients reach this server at (for toolbox and preview URLs). Defaults to http://localhost:PORT. */
  publicUrl: z.string().url().optional(),
  /** Default sandbox image. */
  image: z.string().min(1),
  /** Docker network sandboxes join. */
  network: z.string().min(1),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'silent']),
  /** Browser origins allowed to call the API and toolbox (CORS), normalized; `*` allows any; none by default. */
  corsOrigins: z.array(z.string()),
  /** Sandboxes may reach private ranges (RFC 1918, CGNAT); never link-local (cloud metadata) or the host. */
  allowPrivateEgress: z.boolean(),
  /** Name servers (`ip` or `ip:port`) the egress proxy and DNS resolve with; the host's own when empty. */
  dnsServers: z.array(z.string()),
  /** Milliseconds in a minute of the sandbox timers: 60,000, scaled down only by tests (COVE_TEST_MINUTE_MS). */
  minuteMs: z.number().int().min(10).max(60_000),
  /** Seconds between two measurements of sandboxes' writable layers, where the disk watchdog enforces sizes. */
  diskCheckInterval: z.number().positive().max(3600),
  /** The OCI runtime of every sandbox: runc (the engine's own) or runsc (gVisor, registered with the engine at start). */
  runtime: z.enum(OCI_RUNTIMES, { error: (i) => `${String(i.input)} is not a runtime Cove knows (runc or runsc)` }),
  /** A second listener serving /metrics without authentication (`--metrics-listen HOST:PORT`); none by default. */
  metricsListen: z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65535) }).optional(),
  /** The limits of every API key that sets none of its own (admin keys excepted: see quotas/limits.ts). */
  limits: z.object(Object.fromEntries(LIMIT_NAMES.map((n) => [n, z.number().int().min(0).nullable()])) as Record<keyof Limits, z.ZodNullable<z.ZodNumber>>),
});
type ProxyConfig = z.infer<typeof ProxyConfig>;

export const SERVE_USAGE = `Usage: cove serve [options]

  --port P             API, toolbox and preview port (COVE_PORT, default 3000)
  --host H             address to bind (COVE_HOST, default 0.0.0.0)
  --data-dir DIR       state: SQLite database, host keys (COVE_DATA_DIR, default ~/.cove)
  --preview-domain D   preview URLs are {port}-{id}.D (COVE_PREVIEW_DOMAIN, default localhost)
  --ssh-port P         SSH gateway port (COVE_SSH_PORT, default 2222)
  --pool N             warm containers of the default image kept ready (COVE_POOL, default 2)
  --pool NAME=N        N warm sandboxes of the snapshot NAME kept ready, so that creates from it start at once;
                       repeatable. NAME is a snapshot's name when one API key alone has a snapshot of that
                       name, else NAME@KEY with KEY an API key's id or name ("cove keys list"). A pool waits
                       until its snapshot is active and is emptied when it is deleted or deactivated.
                       COVE_POOL takes a comma-separated list, e.g. COVE_POOL=2,my-snap=3
  --public-url URL     how clients reach this server (COVE_PUBLIC_URL, default http://localhost:PORT)
  --image NAME         default sandbox image (COVE_IMAGE, default cove-sandbox:latest)
  --network NAME       Docker network of sandboxes (COVE_NETWORK, default cove)
  --log-level L        fatal|error|warn|info|debug|silent (COVE_LOG_LEVEL, default info)
  --cors-origins LIST  browser origins allowed to call the API and toolbox, comma-separated, e.g.
                       https://app.example.com; * allows any (COVE_CORS_ORIGINS, default none)
  --allow-private-egress
                       let sandboxes reach private networks (10/8, 172.16/12, 192.168/16, 100.64/10);
                       link-local addresses (cloud metadata), the host and other sandboxes stay out of
                       reach (COVE_ALLOW_PRIVATE_EGRESS=1, default off)
  --dns-server LIST    name servers (IPv4, optionally :port, comma-separated) that resolve the names of
                       sandboxes' domain allow-lists; the host's own by default (COVE_DNS_SERVER)
  --disk-check-interval S
                       where the engine cannot limit sandboxes' disk sizes itself (not overlay2 on xfs
                       with pquota, nor btrfs), seconds between two measurements of each started
                       sandbox's files; one past its size is stopped (COVE_DISK_CHECK_INTERVAL, default 5)
  --runtime R          OCI runtime of sandboxes: runc, or runsc to run them under gVisor (registered with
                       the Docker engine at start when it is not yet; needs root then) (COVE_RUNTIME,
                       default runc)
  --metrics-listen H:P also serve /metrics (Prometheus) without authentication on this address, e.g.
                       127.0.0.1:9100, for a private network only (COVE_METRICS_LISTEN, default off);
                       /metrics on the main port always needs an admin API key

Limits of each API key (Daytona's organization limits), a whole number or "unlimited". These are the defaults;
"cove keys create|set KEY --max-… N" sets a key's own. Admin keys are not bound by these defaults: only limits set
on the admin key itself apply to it. Going over answers 400 naming the limit.
${LIMIT_NAMES.map((n) => `  --${`${LIMITS[n].flag} N`.padEnd(22)}${LIMITS[n].says} (${LIMITS[n].env}, default ${showLimit(LIMITS[n].fallback)})`).join('\n')}

The admin API key comes from COVE_API_KEY, or is generated and printed at first start. Secrets' values are
sealed with COVE_SECRET_KEY (at least 32 characters), or with a key made in the data dir (secrets.key).`;

/** A boolean environment variable: 1/true/yes or 0/false/no (or unset: false). */
function envFlag(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '') return false;
  if (/^(1|true|yes)$/i.test(value)) return true;
  if (/^(0|false|no)$/i.test(value)) return false;
  throw new Error(`${name}: ${value.slice(0, 50)} is not 1/true/yes or 0/false/no`);
}

/**
 * The warm pools `--pool` (repeatable) or COVE_POOL ask for, each a comma-separated list of `N` (the default image's
 * pool; default 2) and `NAME[@KEY]=N` (a snapshot's). `@` and `=` cannot be in snapshot names, so the split is
 * unambiguous; a snapshot named twice, or the default image named as a snapshot, is refused.
 */
export function parsePools(entries: string[], defaultImage: string): { pool: number; snapshotPools: { snapshot: string; key?: string; size: number }[] } {
  let pool = 2;
  const snapshotPools: { snapshot: string; key?: string; size: number }[] = [];
  const size = (text: string, what: string): number => {
    if (!/^\d+$/.test(text.trim()) || Number(text) > 1000) throw new Error(`pool: ${what} must be a whole number from 0 to 1000, not ${JSON.stringify(text.slice(0, 40))}`);
    return Number(text);
  };
  for (const entry of entries.flatMap((e) => e.split(','))) {
    const item = entry.trim();
    if (!item) continue;
    const eq = item.lastIndexOf('=');
    if (eq < 0) {
      pool = size(item, 'the size of the default pool');
      continue;
    }
    const target = item.slice(0, eq).trim();
    const at = target.indexOf('@');
    const snapshot = (at < 0 ? target : target.slice(0, at)).trim();
    const key = at < 0 ? undefined : target.slice(at + 1).trim();
    if (!snapshot || key === '') throw new Error(`pool: ${JSON.stringify(item.slice(0, 100))} is not NAME=N or NAME@KEY=N`);
    if (!SnapshotName.safeParse(snapshot).success) throw new Error(`pool: ${JSON.stringify(snapshot.slice(0, 100))} is not a snapshot name (lowercase, as an image name)`);
    if (snapshot === defaultImage) throw new Error(`pool: ${snapshot} is the default image; give its pool's size as a bare number (--pool N)`);
    const label = key ? `${snapshot}@${key}` : snapshot;
    if (snapshotPools.some((p) => p.snapshot === snapshot && p.key === key)) throw new Error(`pool: ${label} is given twice`);
    snapshotPools.push({ snapshot, ...(key ? { key } : {}), size: size(item.slice(eq + 1), `the size of the pool of ${label}`) });
  }
  return { pool, snapshotPools };
}

/** `HOST:PORT` (an IPv6 host in brackets, `[::1]:9100`) as host and port; undefined when empty. */
function parseListen(text: string | undefined, what: string): { host: string; port: number } | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m || Number(m[3]) > 65535) throw new Error(`${what}: ${text.slice(0, 100)} is not HOST:PORT, such as 127.0.0.1:9100 or [::1]:9100`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

/** Reads flags over environment over defaults, once. Throws with a message for people when something is invalid. */
export function readProxyConfig(argv: string[], env: NodeJS.ProcessEnv, cwd: string): ProxyConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      'preview-domain': { type: 'string' },
      'ssh-port': { type: 'string' },
      pool: { type: 'string', multiple: true },
      'public-url': { type: 'string' },
      image: { type: 'string' },
      network: { type: 'string' },
      'log-level': { type: 'string' },
      'cors-origins': { type: 'string' },
      'allow-private-egress': { type: 'boolean' },
      'dns-server': { type: 'string' },
      'disk-check-interval': { type: 'string' },
      runtime: { type: 'string' },
      'metrics-listen': { type: 'string' },
      ...Object.fromEntries(LIMIT_NAMES.map((n) => [LIMITS[n].flag, { type: 'string' as const }])),
    },
  });
  const num = (v: string | undefined, fallback: number) => (v === undefined || v === '' ? fallback : Number(v));
  const corsOrigins: string[] = [];
  for (const entry of (values['cors-origins'] ?? env.COVE_CORS_ORIGINS ?? '').split(',')) {
    if (!entry.trim()) continue;
    const origin = normalizeOrigin(entry);
    if (!origin) throw new Error(`cors-origins: ${entry.trim().slice(0, 200)} is not an origin (scheme://host[:port], or *)`);
    if (!corsOrigins.includes(origin)) corsOrigins.push(origin);
  }
  const dnsServers: string[] = [];
  for (const entry of (values['dns-server'] ?? env.COVE_DNS_SERVER ?? '').split(',')) {
    const server = entry.trim();
    if (!server) continue;
    const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(server);
    if (!m || m[1].split('.').some((o) => Number(o) > 255) || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535))) {
      throw new Error(`dns-server: ${server.slice(0, 100)} is not an IPv4 address with an optional port, such as 10.0.0.2 or 127.0.0.1:5353`);
    }
    dnsServers.push(server);
  }
  const limits = {} as Limits;
  for (const n of LIMIT_NAMES) {
    const given = (values as Record<string, string | undefined>)[LIMITS[n].flag] ?? env[LIMITS[n].env];
    limits[n] = given === undefined || given === '' ? LIMITS[n].fallback : parseLimit(given, LIMITS[n].flag);
  }
  const image = values.image ?? env.COVE_IMAGE ?? 'cove-sandbox:latest';
  const pools = parsePools(values.pool?.length ? values.pool : env.COVE_POOL ? [env.COVE_POOL] : [], image);
  const dataDir = path.resolve(cwd, values['data-dir'] ?? env.COVE_DATA_DIR ?? path.join(os.homedir(), '.cove'));
  const result = ProxyConfig.safeParse({
    host: values.host ?? env.COVE_HOST ?? '0.0.0.0',
    port: num(values.port ?? env.COVE_PORT, 3000),
    dataDir,
    previewDomain: values['preview-domain'] ?? env.COVE_PREVIEW_DOMAIN ?? 'localhost',
    sshPort: num(values['ssh-port'] ?? env.COVE_SSH_PORT, 2222),
    ...pools,
    apiKey: env.COVE_API_KEY || undefined,
    secretKey: env.COVE_SECRET_KEY || undefined,
    publicUrl: values['public-url'] ?? env.COVE_PUBLIC_URL,
    image,
    network: values.network ?? env.COVE_NETWORK ?? 'cove',
    logLevel: values['log-level'] ?? env.COVE_LOG_LEVEL ?? 'info',
    corsOrigins,
    allowPrivateEgress: values['allow-private-egress'] ?? envFlag(env.COVE_ALLOW_PRIVATE_EGRESS, 'COVE_ALLOW_PRIVATE_EGRESS'),
    dnsServers,
    minuteMs: num(env.COVE_TEST_MINUTE_MS, 60_000),
    diskCheckInterval: num(values['disk-check-interval'] ?? env.COVE_DISK_CHECK_INTERVAL, 5),
    runtime: values.runtime || env.COVE_RUNTIME || 'runc',
    metricsListen: parseListen(values['metrics-listen'] ?? env.COVE_METRICS_LISTEN, 'metrics-listen'),
    limits,
  });
  if (!result.success) {
    throw new Error(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  }
  return result.data;
}
