import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { SANDBOX_STATES, type PoolStatus } from '../../../wire/sandbox';

/** The families requests are counted under: where server.ts routes them. */
const ROUTE_FAMILIES = ['api', 'toolbox', 'preview', 'events', 'object-storage', 'other'] as const;
export type RouteFamily = (typeof ROUTE_FAMILIES)[number];

/**
 * What became of a preview request: relayed as bytes by the connection relay, admitted and served through Node's HTTP
 * server (an upgrade, the cookie redirect, a head the relay does not frame), or refused before reaching the app (no
 * or a bad credential, a stopped or unknown sandbox).
 */
type PreviewOutcome = 'relayed' | 'admitted' | 'refused';

/**
 * What the services tell /metrics. They call these and never see prom-client: each call is a few additions on
 * metrics bound at start, so the request paths pay next to nothing.
 */
export interface CoveMetrics {
  /** A request's response (of the HTTP server: when it closed; of the preview relay: when its head came). */
  requestDone(family: RouteFamily, status: number, seconds: number): void;
  /** A create took a warm pool member. */
  poolHit(): void;
  /** A create started a container of its own (no warm member fitted it, or none was ready). */
  poolMiss(): void;
  /** A create answered with a started sandbox after `seconds`. */
  createDone(source: 'pool' | 'cold', seconds: number): void;
  /** An SSH connection logged in to a sandbox. */
  sshOpened(): void;
  /** A logged-in SSH connection closed. */
  sshClosed(): void;
  preview(outcome: PreviewOutcome): void;
}

/** What is read at each scrape rather than counted as it happens. */
interface MetricsSources {
  /** The state of every sandbox record. */
  sandboxStates(): Iterable<string>;
  /** Every configured warm pool (pool/pools.ts `status()`). */
  pools(): PoolStatus['pools'];
}

/** Latencies from 1 ms to 30 s: pool hits and toolbox calls at the low end, cold starts and long calls at the high. */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
/** Every state a record can be in (`destroyed` is only ever a tombstone's): each is exported, 0 when none is in it. */
const STORED_STATES = SANDBOX_STATES.filter((s) => s !== 'destroyed');

/** The label of a warm pool: `default` for the default image's, `snapshot:NAME[@KEY]` for a snapshot's. */
const poolLabel = (view: PoolStatus['pools'][number]) => (view.snapshot === undefined ? 'default' : `snapshot:${view.snapshot}`);

/**
 * Cove's metrics in a registry of its own (not prom-client's global one), with Node's process metrics prefixed
 * `cove_`. Gauges of sandboxes and pools are read from `sources` at each scrape; the rest is counted by the calls of
 * CoveMetrics.
 */
export function createMetrics(sources: MetricsSources) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cove_' });
  const registers = [registry];

  new Gauge({
    name: 'cove_sandboxes',
    help: 'Sandboxes by state',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = new Map<string, number>(STORED_STATES.map((s) => [s, 0]));
      for (const state of sources.sandboxStates()) counts.set(state, (counts.get(state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  const poolGauge = (name: string, help: string, value: (view: PoolStatus['pools'][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['pool'],
      registers,
      collect() {
        // Pools come and go only with a restart, but a reset keeps a gauge from outliving its pool.
        this.reset();
        for (const view of sources.pools()) this.set({ pool: poolLabel(view) }, value(view));
      },
    });
  poolGauge('cove_pool_target', 'Warm containers a pool keeps ready (its configured size)', (v) => v.target);
  poolGauge('cove_pool_ready', 'Warm containers ready in a pool now', (v) => v.ready);
  const hits = new Counter({ name: 'cove_pool_hits_total', help: 'Creates that took a warm pool member', registers });
  const misses = new Counter({ name: 'cove_pool_misses_total', help: 'Creates that started a container of their own (cold starts)', registers });

  const creates = new Histogram({
    name: 'cove_sandbox_create_seconds',
    help: 'Time from a create request to its started sandbox, by where the container came from',
    labelNames: ['source'],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const createdFrom = { pool: creates.labels('pool'), cold: creates.labels('cold') };
  for (const source of ['pool', 'cold']) creates.zero({ source });

  const durations = new Histogram({
    name: 'cove_http_request_duration_seconds',
    help: 'Time to answer a request, by route family (relayed previews: until the head of their response)',
    labelNames: ['family'],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const requests = new Counter({
    name: 'cove_http_requests_total',
    help: 'Requests answered, by route family and status class (4xx and 5xx are the errors)',
    labelNames: ['family', 'status_class'],
    registers,
  });
  // Children bound once per family (and status class): a request only adds to them. Every series is exported from
  // the start, at 0, so rates are right from the first request.
  const byFamily = Object.fromEntries(
    ROUTE_FAMILIES.map((family) => {
      durations.zero({ family });
      const byClass = STATUS_CLASSES.map((c) => requests.labels(family, c));
      for (const child of byClass) child.inc(0);
      return [family, { duration: durations.labels(family), byClass }];
    }),
  ) as Record<RouteFamily, { duration: Histogram.Internal<string>; byClass: Counter.Internal[] }>;

  const sshOpen = new Gauge({ name: 'cove_ssh_sessions', help: 'SSH connections logged in to a sandbox, open now', registers });
  const sshOpened = new Counter({ name: 'cove_ssh_sessions_opened_total', help: 'SSH connections that logged in to a sandbox', registers });

  const previews = new Counter({
    name: 'cove_preview_requests_total',
    help: 'Preview requests by outcome: relayed (byte relay), admitted (served through the HTTP server), refused (before the app)',
    labelNames: ['outcome'],
    registers,
  });
  const previewBy = { relayed: previews.labels('relayed'), admitted: previews.labels('admitted'), refused: previews.labels('refused') };
  for (const child of Object.values(previewBy)) child.inc(0);

  const metrics: CoveMetrics = {
    requestDone(family, status, seconds) {
      const f = byFamily[family];
      f.duration.observe(seconds);
      // Statuses outside 100–599 (none that Node sends) count as 5xx.
      f.byClass[status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : 4].inc();
    },
    poolHit: () => hits.inc(),
    poolMiss: () => misses.inc(),
    createDone: (source, seconds) => createdFrom[source].observe(seconds),
    sshOpened() {
      sshOpen.inc();
      sshOpened.inc();
    },
    sshClosed: () => sshOpen.dec(),
    preview: (outcome) => previewBy[outcome].inc(),
  };
  return {
    ...metrics,
    /** The Prometheus text exposition of every metric, and its content type. */
    async exposition(): Promise<{ contentType: string; body: string }> {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
