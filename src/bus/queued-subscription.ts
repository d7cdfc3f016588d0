/**
 * What the memory bus's and the NATS bus's subscriptions share: a delivery goes
 * to the callback (a throw is logged, never passed on) or, without one, to the
 * queue a `for await` loop reads; ending resolves `closed()` once.
 */
import type { Logger } from 'pino';
import { IllegalStateError } from '../errors.js';
import type { Delivery, Subscription } from './bus.js';
import { DeliveryQueue } from './delivery-queue.js';

export abstract class QueuedSubscription implements Subscription {
  readonly subject: string;
  readonly #callback: ((delivery: Delivery) => void) | undefined;
  readonly #logger: Logger | undefined;
  readonly #onEnd: (sub: QueuedSubscription) => void;
  #ended = false;
  readonly #queue = new DeliveryQueue();
  #resolveClosed!: () => void;
  readonly #closedPromise = new Promise<void>((resolve) => (this.#resolveClosed = resolve));

  constructor(subject: string, callback: ((delivery: Delivery) => void) | undefined, logger: Logger | undefined, onEnd: (sub: QueuedSubscription) => void) {
    this.subject = subject;
    this.#callback = callback;
    this.#logger = logger;
    this.#onEnd = onEnd;
  }

  abstract unsubscribe(): void;

  get ended(): boolean {
    return this.#ended;
  }

  /** Hands a delivery over: to the callback, or to the iterator's queue. */
  protected hand(delivery: Delivery): void {
    if (this.#callback === undefined) return this.#queue.push(delivery);
    try {
      this.#callback(delivery);
    } catch (err) {
      // Caught here: a throw would unwind into the bus (for NATS, into the protocol parser).
      this.#logger?.warn({ err, subject: this.subject }, 'subscription callback threw');
    }
  }

  /**
   * Stops deliveries. Deliveries already buffered for an iterator are still yielded:
   * they were handed over, and `drain()` promises not to lose them.
   */
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
