/** Lines kept per build or pull under way; the oldest go first. */
const MAX_LOG_LINES = 2000;

interface Entry {
  lines: string[];
  listeners: Set<(line: string | null) => void>;
}

/**
 * The output of builds and pulls under way (a snapshot's image, a sandbox's Dockerfile), kept in memory by id, the
 * last {@link MAX_LOG_LINES} lines, with whoever follows them. Once one ends its owner stores the lines where it keeps
 * them (a snapshot's row, a sandbox's build logs) and followers are told the end.
 */
export function createLiveLogs() {
  const live = new Map<string, Entry>();
  return {
    /** Starts (or starts again) the logs of `id`, empty. */
    begin(id: string): void {
      live.set(id, { lines: [], listeners: new Set() });
    },
    /** Whether `id` has logs under way. */
    has: (id: string): boolean => live.has(id),
    append(id: string, line: string): void {
      const entry = live.get(id);
      if (!entry) return;
      entry.lines.push(line);
      if (entry.lines.length > MAX_LOG_LINES) entry.lines.splice(0, entry.lines.length - MAX_LOG_LINES);
      for (const listener of entry.listeners) listener(line);
    },
    /** Ends the logs of `id`: `keep` gets the lines (to store them), then followers are told the end. */
    end(id: string, keep: (text: string) => void = () => {}): void {
      const entry = live.get(id);
      if (!entry) return;
      live.delete(id);
      keep(entry.lines.join('\n'));
      for (const listener of entry.listeners) listener(null);
    },
    /**
     * The logs of `id` as text: the lines so far when it is under way (else `past`, what was stored); with `follow`,
     * and while it is under way, the lines to come too, until it ends.
     */
    stream(id: string, past: string, follow: boolean): ReadableStream<Uint8Array> {
      const encoder = new TextEncoder();
      const entry = live.get(id);
      const text = entry ? entry.lines.join('\n') : past;
      let listener: ((line: string | null) => void) | undefined;
      return new ReadableStream<Uint8Array>({
        start(controller) {
          if (text) controller.enqueue(encoder.encode(`${text}\n`));
          if (!follow || !entry) return controller.close();
          listener = (line) => {
            if (line === null) {
              entry.listeners.delete(listener!);
              controller.close();
            } else controller.enqueue(encoder.encode(`${line}\n`));
          };
          entry.listeners.add(listener);
        },
        cancel() {
          if (listener) entry?.listeners.delete(listener);
        },
      });
    },
  };
}
