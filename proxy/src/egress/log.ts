import type { EgressEntry } from '../../../wire/egress';

/**
 * Each sandbox's egress log: the last `MAX_ENTRIES` connections and DNS queries that passed the egress services, in
 * memory (lost when the server restarts), dropped with the sandbox. Bounded per sandbox in entries and in the length
 * of every field, so a sandbox cannot grow the server's memory by talking.
 */
export interface EgressLog {
  add(sandboxId: string, entry: Omit<EgressEntry, 'time'>): void;
  list(sandboxId: string, limit?: number): { entries: EgressEntry[]; dropped: number };
  drop(sandboxId: string): void;
}

const MAX_ENTRIES = 1000;
const MAX_PATH = 512;
const MAX_HOST = 253;

export function createEgressLog(opts: { maxEntries?: number } = {}): EgressLog {
  const max = opts.maxEntries ?? MAX_ENTRIES;
  const logs = new Map<string, { entries: EgressEntry[]; dropped: number }>();
  return {
    add(sandboxId, entry) {
      let log = logs.get(sandboxId);
      if (!log) logs.set(sandboxId, (log = { entries: [], dropped: 0 }));
      const line: EgressEntry = { time: new Date().toISOString(), ...entry, host: entry.host.slice(0, MAX_HOST) };
      if (line.path !== undefined) line.path = line.path.slice(0, MAX_PATH);
      if (line.method !== undefined) line.method = line.method.slice(0, 32);
      log.entries.push(line);
      if (log.entries.length > max) {
        log.entries.splice(0, log.entries.length - max);
        log.dropped++;
      }
    },
    list(sandboxId, limit = max) {
      const log = logs.get(sandboxId);
      if (!log) return { entries: [], dropped: 0 };
      return { entries: log.entries.slice(-Math.max(1, Math.min(limit, max))), dropped: log.dropped };
    },
    drop(sandboxId) {
      logs.delete(sandboxId);
    },
  };
}
