/**
 * One subscription of the NATS bus: iterable unless it has a callback, and
 * deliveries keep the server's order.
 */
import type { Subscription as RawSubscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Delivery } from './bus.js';
import { QueuedSubscription } from './queued-subscription.js';

/** One subscription; iterable unless it has a callback. Deliveries keep the server's order. */
export class NatsSubscription extends QueuedSubscription {
  readonly #logger: Logger;
  #raw: RawSubscription | undefined;

  constructor(subject: string, callback: ((delivery: Delivery) => void) | undefined, logger: Logger, onEnd: (sub: NatsSubscription) => void) {
    super(subject, callback, logger, onEnd as (sub: QueuedSubscription) => void);
    this.#logger = logger;
  }

  attach(raw: RawSubscription): void {
    this.#raw = raw;
  }

  deliver(delivery: Delivery): void {
    if (!this.ended) this.hand(delivery);
  }

  unsubscribe(): void {
    if (this.ended) return;
    const raw = this.#raw;
    if (raw !== undefined && !raw.isClosed()) {
      try {
        raw.unsubscribe();
      } catch (err) {
        this.#logger.debug({ err, subject: this.subject }, 'unsubscribe failed');
      }
    }
    this.end();
  }

  /** Lets the server's in-flight messages arrive, then ends. */
  async drain(): Promise<void> {
    const raw = this.#raw;
    if (raw !== undefined && !raw.isClosed() && !raw.isDraining()) await raw.drain();
    this.end();
  }
}
