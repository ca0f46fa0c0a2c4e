/** Which stream a chunk came from. */
export type StreamName = 'stdout' | 'stderr';

export interface LogChunk {
  stream: StreamName;
  data: Buffer;
}

/** Someone following a command's output live. */
export interface LogListener {
  chunk(chunk: LogChunk): void;
  end(): void;
}

/** Default bound on the output kept per command. */
export const DEFAULT_LOG_CAP = 10 * 1024 * 1024;

/**
 * The output of one command, kept after it ends. Chunks stay in arrival order so that stdout and stderr can be
 * served apart or interleaved. Memory is bounded: past `cap` bytes the oldest bytes are dropped, so the newest
 * output (usually the part that explains a failure) is what remains.
 */
export class CommandLog {
  private chunks: LogChunk[] = [];
  private listeners = new Set<LogListener>();
  private ended = false;
  /** Bytes held now. */
  bytes = 0;
  /** Bytes dropped to respect the cap (or cleared to respect a session budget). */
  dropped = 0;

  constructor(private readonly cap = DEFAULT_LOG_CAP) {}

  /** Appends a chunk and tells followers; returns the change in bytes held (negative when old bytes were dropped). */
  append(stream: StreamName, data: Buffer): number {
    if (data.length === 0) return 0;
    const before = this.bytes;
    const chunk = { stream, data: Buffer.from(data) };
    this.chunks.push(chunk);
    this.bytes += data.length;
    while (this.bytes > this.cap) {
      const head = this.chunks[0];
      const excess = this.bytes - this.cap;
      if (head.data.length <= excess) {
        this.chunks.shift();
        this.bytes -= head.data.length;
        this.dropped += head.data.length;
      } else {
        head.data = head.data.subarray(excess);
        this.bytes -= excess;
        this.dropped += excess;
      }
    }
    for (const l of this.listeners) l.chunk(chunk);
    return this.bytes - before;
  }

  /** Drops everything held (a session over its budget sacrifices its oldest finished logs); returns bytes freed. */
  clear(): number {
    const freed = this.bytes;
    this.dropped += freed;
    this.chunks = [];
    this.bytes = 0;
    return freed;
  }

  /** Marks the log complete: followers get `end()` and later followers get the history then `end()` at once. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const l of this.listeners) l.end();
    this.listeners.clear();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Replays what is held to `listener`, then keeps it informed until the log ends. Returns the unsubscribe. */
  follow(listener: LogListener): () => void {
    for (const c of this.chunks) listener.chunk(c);
    if (this.ended) {
      listener.end();
      return () => {};
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every chunk prefixed with its stream's marker (runs of one stream under one marker), as SDKs before 0.167 read it. */
  marked(prefixes: Record<StreamName, Buffer>): string {
    const parts: Buffer[] = [];
    let last: StreamName | undefined;
    for (const c of this.chunks) {
      if (c.stream !== last) parts.push(prefixes[c.stream]);
      parts.push(c.data);
      last = c.stream;
    }
    return Buffer.concat(parts).toString('utf8');
  }

  text(stream?: StreamName): string {
    const parts = stream ? this.chunks.filter((c) => c.stream === stream) : this.chunks;
    return Buffer.concat(parts.map((c) => c.data)).toString('utf8');
  }
}
