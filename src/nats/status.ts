/**
 * Following a NATS connection's status changes (disconnect, reconnect, errors the server
 * sends), and retrying sends after them: what the parts that talk to the server share.
 */
import type { NatsConnection, Status } from '@nats-io/transport-node';

export interface StatusFollower {
  /** Stops following; the loop ends at once, even while it waits for the next status. */
  stop(): void;
}

/**
 * Calls `onStatus` with each status change of `connection` until `stop()` is called or the
 * connection closes. `onEnd` hears of a loop that ended by an error: `onStatus` threw, or the
 * connection closed under it.
 */
export function followStatus(connection: NatsConnection, onStatus: (status: Status) => void, onEnd?: (err: unknown) => void): StatusFollower {
  // Typed as a plain AsyncIterable, it is a nats.js QueuedIterator, whose stop() removes its
  // listener even while the loop waits on it.
  const statuses = connection.status() as AsyncIterable<Status> & { stop?: () => void };
  void (async () => {
    for await (const status of statuses) onStatus(status);
  })().catch((err: unknown) => onEnd?.(err));
  return { stop: () => statuses.stop?.() };
}

/**
 * The timers of sends to be tried again, each after a delay that doubles from one retry to the
 * next up to a ceiling: all cleared at once when their owner closes.
 */
export class RetryTimers {
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #maxDelayMs: number;

  constructor(maxDelayMs: number) {
    this.#maxDelayMs = maxDelayMs;
  }

  /** Calls `send` after `backoff.ms`, then doubles `backoff.ms` for the retry after it. */
  after(backoff: { ms: number }, send: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      send();
    }, backoff.ms);
    this.#timers.add(timer);
    backoff.ms = Math.min(backoff.ms * 2, this.#maxDelayMs);
  }

  clear(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}
