/** Byte that ends a marker's trailer (ASCII unit separator, which text output practically never contains). */
export const MARKER_END = 0x1f;
/** A trailer longer than this means the bytes were not our marker after all. */
const MAX_TRAILER = 32;

export type SplitEvent = { type: 'data'; data: Buffer } | { type: 'marker'; trailer: string };

/**
 * Splits one output stream of a session shell into command output and end-of-command markers
 * (`<marker><trailer>\x1f`). Markers may arrive cut across chunks, so a tail that could be the start of one is
 * held back until the next chunk shows what it is; everything else is passed on at once.
 */
export class MarkerSplitter {
  private pending = Buffer.alloc(0);

  constructor(private readonly marker: Buffer) {}

  push(chunk: Buffer): SplitEvent[] {
    const events: SplitEvent[] = [];
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    for (;;) {
      const at = buf.indexOf(this.marker);
      if (at === -1) {
        const keep = this.prefixTail(buf);
        if (buf.length > keep) events.push({ type: 'data', data: buf.subarray(0, buf.length - keep) });
        this.pending = Buffer.from(buf.subarray(buf.length - keep));
        return events;
      }
      if (at > 0) events.push({ type: 'data', data: buf.subarray(0, at) });
      const trailerStart = at + this.marker.length;
      const end = buf.indexOf(MARKER_END, trailerStart);
      if ((end === -1 ? buf.length : end) - trailerStart > MAX_TRAILER) {
        // Not a marker we wrote (its trailer would be too long, ended or not): hand the bytes on as output and keep
        // scanning after them.
        events.push({ type: 'data', data: buf.subarray(at, trailerStart) });
        buf = buf.subarray(trailerStart);
        continue;
      }
      if (end === -1) {
        this.pending = Buffer.from(buf.subarray(at));
        return events;
      }
      events.push({ type: 'marker', trailer: buf.subarray(trailerStart, end).toString('latin1') });
      buf = buf.subarray(end + 1);
    }
  }

  /** Whatever is held back, as output (the stream ended, so it cannot become a marker). */
  flush(): Buffer {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest;
  }

  /** Length of the longest tail of `buf` that is a proper prefix of the marker. */
  private prefixTail(buf: Buffer): number {
    const max = Math.min(buf.length, this.marker.length - 1);
    for (let n = max; n > 0; n--) {
      if (buf.subarray(buf.length - n).equals(this.marker.subarray(0, n))) return n;
    }
    return 0;
  }
}
