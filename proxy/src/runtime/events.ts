import { guard } from '../../../lib/guard';
import type { Logger } from 'pino';

/**
 * Following the engine's container events, so that a sandbox whose container dies on its own, is OOM-killed, or is
 * killed or removed outside Cove is noticed at once, not at the next restart.
 *
 * Three parts: parseEngineEvent() reads one event (any JSON value: never throws), createExitTracker() turns the
 * events of one container into "it ended, and this is the evidence why" and "the kernel killed processes in it", and
 * followContainerEvents() keeps a stream open, reconnecting with backoff whenever it ends (engine restarted, socket
 * error) and calling `onConnected` after each connection so that what happened while nobody listened is reconciled.
 */

/** The container events Cove follows. `exec_die` and the like are other actions, filtered out by the engine. */
export const CONTAINER_EVENTS = ['start', 'die', 'oom', 'kill', 'destroy'] as const;
type ContainerAction = (typeof CONTAINER_EVENTS)[number];

/** One container event, as the engine reported it. */
export interface ContainerEvent {
  action: ContainerAction;
  containerId: string;
  /** The container's labels (the engine puts them among the event's attributes). */
  labels: Record<string, string>;
  /** `die`: the exit code of PID 1 (the agent). */
  exitCode?: number;
  /** `kill`: the signal sent through the engine's API (docker kill, stop, rm -f). */
  signal?: number;
  /** Engine time, in milliseconds. */
  time: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const ACTIONS = new Set<string>(CONTAINER_EVENTS);

/** Reads one decoded event of the engine's stream; undefined for anything that is not a container event Cove follows. */
export function parseEngineEvent(value: unknown): ContainerEvent | undefined {
  if (!isRecord(value)) return undefined;
  const actor = isRecord(value.Actor) ? value.Actor : undefined;
  const action = typeof value.Action === 'string' ? value.Action : value.status;
  const id = typeof actor?.ID === 'string' ? actor.ID : value.id;
  if (value.Type !== undefined && value.Type !== 'container') return undefined;
  if (typeof action !== 'string' || !ACTIONS.has(action) || typeof id !== 'string' || !/^[0-9a-f]{12,64}$/.test(id)) return undefined;
  const labels: Record<string, string> = {};
  if (isRecord(actor?.Attributes)) for (const [k, v] of Object.entries(actor.Attributes)) if (typeof v === 'string') labels[k] = v;
  const event: ContainerEvent = { action: action as ContainerAction, containerId: id, labels, time: eventTime(value) };
  const number = (s: string | undefined) => (s !== undefined && /^-?\d{1,10}$/.test(s) ? Number(s) : undefined);
  if (action === 'die') event.exitCode = number(labels.exitCode);
  if (action === 'kill') event.signal = number(labels.signal) ?? signalNumber(labels.signal);
  delete labels.exitCode;
  delete labels.signal;
  return event;
}

function eventTime(value: Record<string, unknown>): number {
  if (typeof value.timeNano === 'number' && Number.isFinite(value.timeNano)) return value.timeNano / 1e6;
  if (typeof value.time === 'number' && Number.isFinite(value.time)) return value.time * 1000;
  return Date.now();
}

/** `docker kill -s TERM` reports the name it was given; the API's own kills report numbers. */
function signalNumber(name: string | undefined): number | undefined {
  if (!name) return undefined;
  const upper = name.toUpperCase();
  const n = (SIGNALS as Record<string, number | undefined>)[upper.startsWith('SIG') ? upper : `SIG${upper}`];
  return typeof n === 'number' ? n : undefined;
}
const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15 };

/** How a container's run ended, and what the events before say about why. */
export interface ContainerEnd {
  containerId: string;
  labels: Record<string, string>;
  /** `exited`: PID 1 (the agent) ended and the container stopped; `removed`: the container is gone. */
  kind: 'exited' | 'removed';
  exitCode?: number;
  /** The kernel's OOM killer acted in the container within OOM_WINDOW_MS before it died. */
  oom: boolean;
  /** Signals sent through the engine's API during this run (docker kill, stop, rm -f), oldest first. */
  signals: number[];
}

/** An OOM kill this close before PID 1 died is taken as its cause (the two are milliseconds apart when it is). */
const OOM_WINDOW_MS = 5000;
/** OOM kills are reported this long after the first, once it is clear the container lives on, as one line. */
const OOM_REPORT_DELAY_MS = 1000;
/** Containers followed at once: events of more (a flood of kills) drop the oldest evidence, not the process. */
const MAX_TRACKED = 10_000;

interface Evidence {
  labels: Record<string, string>;
  lastOom?: number;
  /** OOM kills not reported yet. */
  unreported: number;
  signals: number[];
  report?: NodeJS.Timeout;
}

/**
 * Turns container events into ends (`die`, `destroy`) with the evidence of their cause, and into reports of processes
 * the kernel's OOM killer ended while the container lived on. The engine sends `oom` for every process the OOM killer
 * ends in the container, PID 1 or not; an `oom` shortly before `die` is the agent's own death.
 */
export function createExitTracker(opts: {
  onEnd: (end: ContainerEnd) => void;
  /** `events`: how many times the OOM killer acted (the engine may report one kill more than once). */
  onOomKills: (containerId: string, labels: Record<string, string>, events: number) => void;
  reportDelayMs?: number;
}) {
  const byId = new Map<string, Evidence>();

  function evidence(event: ContainerEvent): Evidence {
    let e = byId.get(event.containerId);
    if (!e) {
      if (byId.size >= MAX_TRACKED) forget(byId.keys().next().value!);
      e = { labels: event.labels, unreported: 0, signals: [] };
      byId.set(event.containerId, e);
    }
    return e;
  }

  function forget(id: string): Evidence | undefined {
    const e = byId.get(id);
    if (e) clearTimeout(e.report);
    byId.delete(id);
    return e;
  }

  return {
    /** Feeds one event; call in the engine's order. */
    feed(event: ContainerEvent): void {
      switch (event.action) {
        case 'start':
          // A new run: what happened in the last one says nothing about this one.
          forget(event.containerId);
          return;
        case 'kill': {
          const e = evidence(event);
          if (event.signal !== undefined && e.signals.length < 16) e.signals.push(event.signal);
          return;
        }
        case 'oom': {
          const e = evidence(event);
          e.lastOom = event.time;
          e.unreported++;
          e.report ??= setTimeout(
            guard(
              'engine events: OOM report',
              () => {
                const now = byId.get(event.containerId);
                if (now !== e) return;
                e.report = undefined;
                const events = e.unreported;
                e.unreported = 0;
                if (events) opts.onOomKills(event.containerId, e.labels, events);
              },
              () => {},
            ),
            opts.reportDelayMs ?? OOM_REPORT_DELAY_MS,
          );
          e.report.unref?.();
          return;
        }
        case 'die': {
          const e = forget(event.containerId);
          opts.onEnd({
            containerId: event.containerId,
            labels: event.labels,
            kind: 'exited',
            exitCode: event.exitCode,
            oom: e?.lastOom !== undefined && event.time - e.lastOom <= OOM_WINDOW_MS,
            signals: e?.signals ?? [],
          });
          return;
        }
        case 'destroy':
          forget(event.containerId);
          opts.onEnd({ containerId: event.containerId, labels: event.labels, kind: 'removed', oom: false, signals: [] });
          return;
      }
    },
    /** Containers with evidence kept (for tests: it must not grow without bound). */
    size: () => byId.size,
  };
}

/** Longest event line read; the engine's are a few KiB (they carry the container's labels). Longer ones are dropped. */
const MAX_LINE_BYTES = 1024 * 1024;

/** Splits a byte stream into lines, dropping any longer than `max` bytes (and never holding more than that). */
export function createLineSplitter(onLine: (line: string) => void, max = MAX_LINE_BYTES) {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let skipping = false;
  return (chunk: Buffer): void => {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (skipping || pendingBytes + piece.length > max) {
        skipping = false;
        pending = [];
        pendingBytes = 0;
        continue;
      }
      const line = pending.length ? Buffer.concat([...pending, piece]).toString('utf8') : piece.toString('utf8');
      pending = [];
      pendingBytes = 0;
      if (line.trim()) onLine(line);
    }
    const rest = chunk.subarray(start);
    if (!rest.length || skipping) return;
    if (pendingBytes + rest.length > max) {
      skipping = true;
      pending = [];
      pendingBytes = 0;
      return;
    }
    pending.push(Buffer.from(rest));
    pendingBytes += rest.length;
  };
}

/** Reconnection delays: doubled after each failure up to `maxMs`; back to `initialMs` after a connection that lasted. */
interface Backoff {
  initialMs: number;
  maxMs: number;
  /** A connection that stayed up this long resets the delay. */
  healthyMs: number;
}
const DEFAULT_BACKOFF: Backoff = { initialMs: 250, maxMs: 10_000, healthyMs: 10_000 };

/** The delay before the next attempt, and the one after it. Pure. */
export function nextDelay(backoff: Backoff, current: number, connectedForMs: number | undefined): { wait: number; next: number } {
  const wait = connectedForMs !== undefined && connectedForMs >= backoff.healthyMs ? backoff.initialMs : current;
  return { wait, next: Math.min(backoff.maxMs, wait * 2) };
}

/**
 * Follows the engine's container events from now on: every decoded event goes to `onEvent`; whenever the stream ends
 * (the engine restarted, the socket broke) it opens it again after a backoff, and after every connection — the first
 * included — calls `onConnected`, which reconciles state with what really runs (events missed while nobody listened
 * are not replayed). A failing `onConnected` drops the connection, so it is tried again after the next one.
 * Every handler runs behind the error boundary: no event, chunk or failure ends the process.
 */
export function followContainerEvents(opts: {
  open: () => Promise<NodeJS.ReadableStream>;
  onEvent: (event: ContainerEvent) => void;
  onConnected: () => Promise<void>;
  log: Logger;
  backoff?: Backoff;
}): { close(): void } {
  const backoff = opts.backoff ?? DEFAULT_BACKOFF;
  let delay = backoff.initialMs;
  let closed = false;
  let current: NodeJS.ReadableStream | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;

  const destroy = (stream: NodeJS.ReadableStream) => (stream as { destroy?: () => void }).destroy?.();

  function retry(connectedForMs?: number): void {
    if (closed) return;
    const { wait, next } = nextDelay(backoff, delay, connectedForMs);
    delay = next;
    timer = setTimeout(guard('engine events: reconnect', () => void connect(), () => retry()), wait);
    timer.unref?.();
  }

  async function connect(): Promise<void> {
    if (closed) return;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await opts.open();
    } catch (err) {
      // Said once, then quietly while the engine stays away.
      if (failures++ === 0) opts.log.warn({ err: (err as Error).message }, 'cannot follow the Docker engine\'s events; retrying');
      retry();
      return;
    }
    if (closed) {
      destroy(stream);
      return;
    }
    current = stream;
    const connectedAt = Date.now();
    if (failures) opts.log.info({ after: failures }, 'following the Docker engine\'s events again');
    failures = 0;
    // Each event behind its own boundary: one that fails to be handled does not cost the others of its chunk.
    const lines = createLineSplitter(
      guard(
        'engine events: event',
        (line: string) => {
          let value: unknown;
          try {
            value = JSON.parse(line);
          } catch {
            return;
          }
          const event = parseEngineEvent(value);
          if (event) opts.onEvent(event);
        },
        () => {},
      ),
    );
    let ended = false;
    const onEnd = guard(
      'engine events: end',
      (err?: Error) => {
        if (ended) return;
        ended = true;
        if (current === stream) current = undefined;
        destroy(stream);
        if (closed) return;
        opts.log.warn({ err: err?.message }, 'the Docker engine\'s event stream ended; following it again');
        retry(Date.now() - connectedAt);
      },
      () => retry(),
    );
    stream.on('data', guard('engine events: data', (chunk: Buffer | string) => lines(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)), () => {}));
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onEnd);
    Promise.resolve()
      .then(() => opts.onConnected())
      .then(undefined, (err: unknown) => {
        opts.log.warn({ err: (err as Error)?.message }, 'could not reconcile sandboxes with the containers; following the engine again');
        onEnd();
      });
  }

  void connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (current) destroy(current);
      current = undefined;
    },
  };
}
