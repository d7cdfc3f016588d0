/**
 * What a worker asks the owners of its attempts: claims and outcomes. Those for
 * the same owner in one turn of the worker's event loop go as one `task.batch`
 * request; a lone one goes as it is. Under load a worker takes and finishes
 * dozens of attempts in a turn, and each message costs the owner, the server and
 * the worker far more than its few bytes: one request carries them all. Each
 * caller gets the reply its own item would have had alone.
 */
import type { Bus, BusMessage } from '../bus/bus.js';
import { PayloadTooLargeError } from '../errors.js';
import { MAX_BATCH_ITEMS, wire, type TaskBatch, type TaskClaim, type TaskOutcome } from './messages.js';
import { parseBatchReply } from './parse-messages.js';

type OwnerItem = TaskClaim | TaskOutcome;

interface Waiting {
  readonly item: OwnerItem;
  resolve(reply: BusMessage): void;
  reject(error: unknown): void;
}

export class OwnerRequests {
  readonly #bus: Bus;
  readonly #timeoutMs: number;
  /** Items waiting for the end of this turn, by owner subject, in order. */
  #queued = new Map<string, Waiting[]>();
  #scheduled = false;

  constructor(bus: Bus, timeoutMs: number) {
    this.#bus = bus;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Sends `item` to `owner` with whatever else goes there in this turn; resolves with the
   * owner's reply to it, rejects as a request of its own would (timeout, no owner, closed).
   */
  request(owner: string, item: OwnerItem): Promise<BusMessage> {
    return new Promise<BusMessage>((resolve, reject) => {
      let queue = this.#queued.get(owner);
      if (queue === undefined) this.#queued.set(owner, (queue = []));
      queue.push({ item, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      // After I/O and the microtasks it starts: what this turn produces goes together.
      setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const queued = this.#queued;
    this.#queued = new Map();
    for (const [owner, waiting] of queued) {
      for (let i = 0; i < waiting.length; i += MAX_BATCH_ITEMS) this.#send(owner, waiting.slice(i, i + MAX_BATCH_ITEMS));
    }
  }

  #send(owner: string, waiting: Waiting[]): void {
    if (waiting.length === 1) return this.#sendAlone(owner, waiting[0]!);
    const batch = wire<TaskBatch>({ type: 'task.batch', items: waiting.map((w) => w.item) });
    this.#bus.request(owner, batch, { timeoutMs: this.#timeoutMs }).then(
      (delivery) => {
        const reply = parseBatchReply(delivery.message);
        if (reply === null || reply.replies.length !== waiting.length) {
          const error = new Error('the owner answered a batch of claims and outcomes with something else');
          for (const w of waiting) w.reject(error);
          return;
        }
        for (let i = 0; i < waiting.length; i++) waiting[i]!.resolve(reply.replies[i]!);
      },
      (error: unknown) => {
        // Too large together: each goes alone, and only one too large by itself fails.
        if (error instanceof PayloadTooLargeError) {
          for (const w of waiting) this.#sendAlone(owner, w);
          return;
        }
        for (const w of waiting) w.reject(error);
      },
    );
  }

  #sendAlone(owner: string, waiting: Waiting): void {
    this.#bus.request(owner, waiting.item, { timeoutMs: this.#timeoutMs }).then(
      (delivery) => waiting.resolve(delivery.message),
      (error: unknown) => waiting.reject(error),
    );
  }
}
