/**
 * Retry delays: a number, a list (one entry per retry, the last repeated), or a
 * function of the attempt that just failed; then optional jitter.
 */
import { InvalidArgumentError } from './errors.js';

/** Delay before the retry that follows `attempt` (1 = the first attempt failed). */
export type RetryDelayFn = (attempt: number) => number;

/** A retry delay: fixed ms, one ms value per retry (the last repeats), or a function of the failed attempt. */
export type RetryDelay = number | readonly number[] | RetryDelayFn;

export interface ExponentialBackoffOptions {
  /** Delay before the first retry, in ms. */
  baseMs: number;
  /** Growth per retry. @default 2 */
  factor?: number;
  /**
   * Upper bound on the delays this function gives, in ms. A task's `retryJitterFactor` spreads
   * them afterwards, as Prefect's does: with a factor j a delay may reach `maxMs * (1 + j)`.
   * @default Infinity
   */
  maxMs?: number;
}

/**
 * Exponential back-off: `baseMs * factor^(attempt-1)`, capped at `maxMs`.
 * @example task({ name: 'fetch', retries: 5, retryDelayMs: exponentialBackoff({ baseMs: 100 }) }, fetchIt)
 */
export function exponentialBackoff(options: ExponentialBackoffOptions): RetryDelayFn {
  const { baseMs, factor = 2, maxMs = Number.POSITIVE_INFINITY } = options;
  assertNonNegative('exponentialBackoff.baseMs', baseMs);
  if (!(factor >= 1)) throw new InvalidArgumentError(`exponentialBackoff.factor must be >= 1, got ${factor}`);
  assertNonNegative('exponentialBackoff.maxMs', maxMs);
  return (attempt) => Math.min(maxMs, baseMs * factor ** Math.max(0, attempt - 1));
}

/** Checks a retry delay option when a task or flow is defined. */
export function validateRetryDelay(field: string, delay: RetryDelay): void {
  if (typeof delay === 'function') return;
  if (typeof delay === 'number') return assertNonNegative(field, delay);
  if (!Array.isArray(delay) || delay.length === 0) {
    throw new InvalidArgumentError(`${field} must be a number, a non-empty list of numbers or a function`);
  }
  delay.forEach((ms, i) => assertNonNegative(`${field}[${i}]`, ms));
}

/**
 * The delay after a failed `attempt`. `jitterFactor` j spreads the delay
 * uniformly over [d * (1 - j), d * (1 + j)], as Prefect's `retry_jitter_factor`.
 * A delay function that throws counts as 0 ms and is reported to `onError`.
 */
export function computeRetryDelay(
  delay: RetryDelay,
  attempt: number,
  jitterFactor: number,
  random: () => number,
  onError: (error: unknown) => void = () => {},
): number {
  let ms: number;
  if (typeof delay === 'number') ms = delay;
  else if (typeof delay === 'function') {
    // A user's delay function that throws must not break supervision: retry at once, and say so.
    try {
      ms = Number(delay(attempt));
    } catch (error) {
      onError(error);
      ms = 0;
    }
  }
  else ms = delay[Math.min(attempt - 1, delay.length - 1)] ?? 0;
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  if (jitterFactor > 0) ms = Math.max(0, ms * (1 + jitterFactor * (2 * random() - 1)));
  return Math.round(ms);
}

export function assertNonNegative(field: string, value: unknown): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new InvalidArgumentError(`${field} must be a non-negative number, got ${describeValue(value)}`);
  }
}

export function assertNonNegativeInteger(field: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${field} must be a non-negative integer, got ${describeValue(value)}`);
  }
}

/** A bad option's value as the user wrote it: a string in quotes, so that '3' is not shown as 3. */
function describeValue(value: unknown): string {
  return typeof value === 'string' ? `${JSON.stringify(value)} (a string)` : String(value);
}
