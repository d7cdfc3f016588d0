/**
 * One subscription of the NATS bus: iterable unless it has a callback, and
 * deliveries keep the server's order.
 */
import type { Subscription as RawSubscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { IllegalStateError } from '../errors.js';
import type { Delivery, Subscription } from './bus.js';
import { DeliveryQueue } from './delivery-queue.js';

/** One subscription; iterable unless it has a callback. Deliveries keep the server's order. */
export class NatsSubscription implements Subscription {
  readonly subject: string;
  readonly #callback: ((delivery: Delivery) => void) | undefined;
  readonly #logger: Logger;
  readonly #onEnd: (sub: NatsSubscription) => void;
  #raw: RawSubscription | undefined;
  #ended = false;
  readonly #queue = new DeliveryQueue();
  #resolveClosed!: () => void;
  readonly #closedPromise = new Promise<void>((resolve) => (this.#resolveClosed = resolve));

  constructor(subject: string, callback: ((delivery: Delivery) => void) | undefined, logger: Logger, onEnd: (sub: NatsSubscription) => void) {
    this.subject = subject;
    this.#callback = callback;
    this.#logger = logger;
    this.#onEnd = onEnd;
  }

  attach(raw: RawSubscription): void {
    this.#raw = raw;
  }

  deliver(delivery: Delivery): void {
    if (this.#ended) return;
    if (this.#callback !== undefined) {
      try {
        this.#callback(delivery);
      } catch (err) {
        // Caught here: a throw would unwind into the nats.js protocol parser.
        this.#logger.warn({ err, subject: this.subject }, 'subscription callback threw');
      }
      return;
    }
    this.#queue.push(delivery);
  }

  unsubscribe(): void {
    if (this.#ended) return;
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

  /** Stops deliveries; deliveries already buffered for an iterator are still yielded. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd(this);
    this.#queue.end();
    this.#resolveClosed();
  }

  closed(): Promise<void> {
    return this.#closedPromise;
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    if (this.#callback !== undefined) throw new IllegalStateError(`subscription to '${this.subject}' has a callback and cannot be iterated`);
    return this.#queue.iterator(this.subject, () => this.unsubscribe());
  }

}
