/**
 * What a subscription without a callback holds for its `for await` loop:
 * deliveries not yet read, in order, and the loop's pending `next()` calls.
 * Shared by the memory and NATS buses, whose subscriptions iterate alike.
 */
import { IllegalStateError } from '../errors.js';
import type { Delivery } from './bus.js';

export class DeliveryQueue {
  #buffer: Delivery[] = [];
  /** Read index into #buffer: shift() would copy the whole array on large buffers. */
  #head = 0;
  #waiters: Array<(result: IteratorResult<Delivery>) => void> = [];
  #ended = false;
  #iterating = false;

  /**
   * The one iterator of a subscription to `subject`. Leaving its loop early (break,
   * throw) calls `leave`, which ends the subscription, and drops what is buffered.
   * @throws IllegalStateError when the subscription is already being iterated
   */
  iterator(subject: string, leave: () => void): AsyncIterator<Delivery> {
    if (this.#iterating) throw new IllegalStateError(`subscription to '${subject}' is already being iterated`);
    this.#iterating = true;
    return {
      next: () => this.next(),
      return: () => {
        leave();
        this.clear();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  /** Deliveries handed over and not yet read. */
  get size(): number {
    return this.#buffer.length - this.#head;
  }

  push(delivery: Delivery): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter({ done: false, value: delivery });
    else this.#buffer.push(delivery);
  }

  /** No more deliveries: pending reads end; what is buffered is still read. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter({ done: true, value: undefined });
  }

  /** Drops what is buffered (the loop was left early). */
  clear(): void {
    this.#buffer = [];
    this.#head = 0;
  }

  next(): Promise<IteratorResult<Delivery>> {
    const buffer = this.#buffer;
    if (this.#head < buffer.length) {
      const value = buffer[this.#head++]!;
      if (this.#head === buffer.length) {
        buffer.length = 0;
        this.#head = 0;
      } else if (this.#head >= 1024 && this.#head * 2 >= buffer.length) {
        this.#buffer = buffer.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ done: false, value });
    }
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
