/**
 * Output kept in memory for a one-shot answer, bounded: the first half of the limit and the most recent half are
 * kept, the middle is dropped and counted. Commands can print without end; the agent's memory must not follow.
 */
export class BoundedOutput {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private readonly tail: Buffer[] = [];
  private tailBytes = 0;
  private readonly headLimit: number;
  private readonly tailLimit: number;
  /** Bytes dropped from the middle. */
  dropped = 0;

  constructor(limit: number) {
    this.headLimit = Math.floor(limit / 2);
    this.tailLimit = limit - this.headLimit;
  }

  push(chunk: Buffer): void {
    if (this.headBytes < this.headLimit) {
      const take = Math.min(chunk.length, this.headLimit - this.headBytes);
      this.head.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      this.headBytes += take;
      if (take === chunk.length) return;
      chunk = chunk.subarray(take);
    }
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes - this.tail[0].length >= this.tailLimit) {
      const gone = this.tail.shift()!;
      this.tailBytes -= gone.length;
      this.dropped += gone.length;
    }
    if (this.tailBytes > this.tailLimit) {
      const excess = this.tailBytes - this.tailLimit;
      this.tail[0] = this.tail[0].subarray(excess);
      this.tailBytes -= excess;
      this.dropped += excess;
    }
  }

  /** The kept output as UTF-8 text, with a marker where bytes were dropped. */
  text(): string {
    if (this.dropped === 0) {
      const all = this.tail.length ? [...this.head, ...this.tail] : this.head;
      return all.length === 1 ? all[0].toString('utf8') : Buffer.concat(all).toString('utf8');
    }
    const marker = `\n[cove: output truncated: ${this.dropped} bytes omitted here; the first ${this.headBytes} and the last ${this.tailBytes} bytes are kept]\n`;
    return Buffer.concat(this.head).toString('utf8') + marker + Buffer.concat(this.tail).toString('utf8');
  }
}
