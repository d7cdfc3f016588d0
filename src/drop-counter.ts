/**
 * Counts messages dropped as invalid and warns about them without flooding
 * the log: the first drop is logged, then at most one line per interval with
 * the number dropped since.
 */
import type { Logger } from 'pino';

const WARN_INTERVAL_MS = 5_000;

export class DropCounter {
  #count = 0;
  #unreported = 0;
  #lastWarnAt = -Infinity;

  constructor(
    readonly logger: Logger,
    readonly message: string,
    readonly now: () => number = Date.now,
  ) {}

  get count(): number {
    return this.#count;
  }

  /** Counts one drop; `fields` describe it (never the untrusted payload itself, only its subject or type). */
  drop(fields: Record<string, unknown>): void {
    this.#count += 1;
    this.#unreported += 1;
    const now = this.now();
    if (now - this.#lastWarnAt < WARN_INTERVAL_MS) return;
    this.#lastWarnAt = now;
    this.logger.warn({ ...fields, droppedSinceLastWarning: this.#unreported, droppedTotal: this.#count }, this.message);
    this.#unreported = 0;
  }
}
