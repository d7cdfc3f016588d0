/**
 * Counts messages dropped as invalid and warns about them without flooding
 * the log: the first drop is logged, then at most one line per interval with
 * the number dropped since.
 */
import type { Logger } from 'pino';

const WARN_INTERVAL_MS = 5_000;

/** Lets the first event of a flood through, then at most one per interval. */
export class LogThrottle {
  #last = -Infinity;
  #suppressed = 0;

  constructor(
    readonly now: () => number,
    readonly intervalMs: number,
  ) {}

  /** How many events were held back since the last one let through, or -1 if this one is held back too. */
  take(): number {
    const now = this.now();
    if (now - this.#last < this.intervalMs) {
      this.#suppressed++;
      return -1;
    }
    const suppressed = this.#suppressed;
    this.#last = now;
    this.#suppressed = 0;
    return suppressed;
  }
}

export class DropCounter {
  #count = 0;
  readonly #throttle: LogThrottle;

  constructor(
    readonly logger: Logger,
    readonly message: string,
    now: () => number = Date.now,
  ) {
    this.#throttle = new LogThrottle(now, WARN_INTERVAL_MS);
  }

  get count(): number {
    return this.#count;
  }

  /** Counts one drop; `fields` describe it (never the untrusted payload itself, only its subject or type). */
  drop(fields: Record<string, unknown>): void {
    this.#count += 1;
    const suppressed = this.#throttle.take();
    if (suppressed < 0) return;
    this.logger.warn({ ...fields, droppedSinceLastWarning: suppressed + 1, droppedTotal: this.#count }, this.message);
  }
}
