import type { WatchServerMessage } from '../../../wire/watch';

/** Where an outbox writes: a WebSocket, in the agent. */
interface OutboxTransport {
  isOpen(): boolean;
  /** Bytes handed to the transport and not yet sent to the peer (ws's `bufferedAmount`). */
  buffered(): number;
  /** Sends one text message; `done` runs once it has left (or failed), which lets a stalled outbox move again. */
  send(text: string, done: () => void): void;
}

/** Bounds of one client's outbox. */
interface OutboxLimits {
  /** Messages waiting in the outbox before it overflows. */
  maxMessages: number;
  /** Their estimated size, likewise. */
  maxBytes: number;
  /** The transport may hold this much unsent before the outbox stops handing it more. */
  highWater: number;
}

const DEFAULT_OUTBOX_LIMITS: OutboxLimits = { maxMessages: 4096, maxBytes: 1024 * 1024, highWater: 256 * 1024 };

/** What an outbox holds now, for `GET /files/watchers`. */
interface OutboxStatus {
  queued: number;
  queuedBytes: number;
  bufferedBytes: number;
  dropped: number;
}

/** Rough size of a message once serialised; paths dominate, the rest is a constant. */
const estimate = (m: WatchServerMessage) => ('path' in m ? m.path.length : 0) + ('message' in m ? m.message.length : 0) + 96;

/**
 * A bounded queue of watch messages in front of a transport whose peer may read slowly.
 *
 * Invariants: the transport never holds much more than `highWater` bytes from this outbox; the queue never holds
 * more than `maxMessages` messages or about `maxBytes` bytes. A `change` for a path whose `add` or `change` is still
 * queued updates that message instead of adding one. When the queue is full, every queued event is thrown away (a
 * client that must rescan gains nothing from stale events) and further events are dropped, until the transport can
 * take an `overflow` message with the count; from then on events flow again, so what follows the overflow message is
 * complete. A pending `ready` survives an overflow.
 */
export class WatchOutbox {
  private queue: WatchServerMessage[] = [];
  private head = 0;
  private queuedBytes = 0;
  /** Queued add/change events by path, for coalescing. */
  private pendingByPath = new Map<string, Extract<WatchServerMessage, { type: 'event' }>>();
  private overflowed = false;
  private dropped = 0;
  private readonly onSent = () => this.flush();

  constructor(
    private readonly transport: OutboxTransport,
    private readonly limits: OutboxLimits = DEFAULT_OUTBOX_LIMITS,
  ) {}

  push(message: WatchServerMessage): void {
    if (!this.transport.isOpen()) return;
    if (this.overflowed && message.type !== 'ready') {
      this.dropped++;
      return;
    }
    if (message.type === 'event') {
      const pending = this.pendingByPath.get(message.path);
      if (message.event === 'change' && pending) {
        // Keep the earlier message (and so its `add`), with the latest size and mtime.
        pending.size = message.size;
        pending.mtime = message.mtime;
        return;
      }
      this.pendingByPath.delete(message.path);
    }
    const size = estimate(message);
    const count = this.queue.length - this.head;
    if (message.type !== 'ready' && (count >= this.limits.maxMessages || this.queuedBytes + size > this.limits.maxBytes)) {
      this.overflow();
      return;
    }
    this.queue.push(message);
    this.queuedBytes += size;
    if (message.type === 'event' && (message.event === 'add' || message.event === 'change')) {
      this.pendingByPath.set(message.path, message);
    }
    this.flush();
  }

  status(): OutboxStatus {
    return {
      queued: this.queue.length - this.head,
      queuedBytes: this.queuedBytes,
      bufferedBytes: this.transport.isOpen() ? this.transport.buffered() : 0,
      dropped: this.dropped,
    };
  }

  private overflow(): void {
    const ready = this.queue.slice(this.head).filter((m) => m.type === 'ready');
    this.dropped += this.queue.length - this.head - ready.length + 1;
    this.queue = ready;
    this.head = 0;
    this.queuedBytes = ready.reduce((n, m) => n + estimate(m), 0);
    this.pendingByPath.clear();
    this.overflowed = true;
    this.flush();
  }

  /** Hands queued messages to the transport while it has room; called again by each send's completion. */
  private flush(): void {
    while (this.transport.isOpen() && this.transport.buffered() < this.limits.highWater) {
      let message: WatchServerMessage;
      if (this.head < this.queue.length) {
        message = this.queue[this.head++];
        this.queuedBytes -= estimate(message);
        if (message.type === 'event' && this.pendingByPath.get(message.path) === message) this.pendingByPath.delete(message.path);
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
      } else if (this.overflowed) {
        // Everything queued before the loss has left: tell the client now, after it, so that a rescan covers it.
        message = { type: 'overflow', dropped: this.dropped };
        this.overflowed = false;
        this.dropped = 0;
      } else return;
      this.transport.send(JSON.stringify(message), this.onSent);
    }
  }
}
