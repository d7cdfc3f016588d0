/**
 * Retry delays: a number, a list (one entry per retry, the last repeated), or a
 * function of the attempt that just failed; then optional jitter.
 */
import { InvalidArgumentError } from './errors.js';

/**
 * The longest delay a timer can wait, in ms (2^31 - 1, about 24.8 days). Node's `setTimeout`,
 * and XState's delays on top of it, fire after 1 ms when given more.
 */
export const MAX_TIMER_MS = 2_147_483_647;

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
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('exponentialBackoff() needs its options, at least the first delay: exponentialBackoff({ baseMs: 1000 })');
  }
  const { baseMs, factor = 2, maxMs = Number.POSITIVE_INFINITY } = options;
  // A first delay of Infinity waits the longest timer (24.8 days) on every retry: surely a slip.
  assertFiniteNonNegative('exponentialBackoff.baseMs', baseMs);
  if (!(factor >= 1) || !Number.isFinite(factor)) throw new InvalidArgumentError(`exponentialBackoff.factor must be a finite number >= 1, got ${factor}`);
  assertNonNegative('exponentialBackoff.maxMs', maxMs);
  return (attempt) => Math.min(maxMs, baseMs * factor ** Math.max(0, attempt - 1));
}

/** Checks a retry delay option when a task or flow is defined. */
export function validateRetryDelay(field: string, delay: RetryDelay): void {
  if (typeof delay === 'function') return;
  if (typeof delay === 'number') return assertTimerMs(field, delay);
  if (!Array.isArray(delay) || delay.length === 0) {
    throw new InvalidArgumentError(`${field} must be a number, a non-empty list of numbers or a function`);
  }
  delay.forEach((ms, i) => assertTimerMs(`${field}[${i}]`, ms));
}

/**
 * The delay after a failed `attempt`. `jitterFactor` j spreads the delay
 * uniformly over [d * (1 - j), d * (1 + j)], as Prefect's `retry_jitter_factor`.
 * A delay function that throws counts as 0 ms and is reported to `onError`.
 * A delay over `MAX_TIMER_MS` (a function's, or one that jitter stretched) is
 * cut to it and reported to `onClamped` with the delay asked for. The result is always an
 * integer in [0, MAX_TIMER_MS]: a jitter factor that is not finite, or jitter that yields NaN,
 * leaves the delay un-jittered.
 */
export function computeRetryDelay(
  delay: RetryDelay,
  attempt: number,
  jitterFactor: number,
  random: () => number,
  onError: (error: unknown) => void = () => {},
  onClamped: (requestedMs: number) => void = () => {},
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
  // Infinity is a delay too long, as an unbounded exponentialBackoff reaches: not a retry at once.
  if (Number.isNaN(ms) || ms < 0) ms = 0;
  if (jitterFactor > 0 && Number.isFinite(jitterFactor) && Number.isFinite(ms)) {
    const jittered = ms * (1 + jitterFactor * (2 * random() - 1));
    // A NaN here (a random() that is not a number) would reach the machine as a delay and lose
    // the AwaitingRetry state: keep the delay un-jittered instead.
    if (!Number.isNaN(jittered)) ms = Math.max(0, jittered);
  }
  ms = Math.round(ms);
  if (ms > MAX_TIMER_MS) {
    // A longer timer would fire after 1 ms.
    onClamped(ms);
    return MAX_TIMER_MS;
  }
  return ms;
}

/**
 * Checks a delay that ends up in a timer: a non-negative number of ms no longer
 * than `MAX_TIMER_MS`. `positive` also refuses 0.
 */
export function assertTimerMs(field: string, value: unknown, { positive = false } = {}): void {
  if (typeof value !== 'number' || Number.isNaN(value) || (positive ? !(value > 0) : value < 0)) {
    throw new InvalidArgumentError(`${field} must be a ${positive ? 'positive' : 'non-negative'} number of ms, got ${describeValue(value)}`);
  }
  if (value > MAX_TIMER_MS) {
    throw new InvalidArgumentError(`${field} must be at most ${MAX_TIMER_MS} ms (about 24.8 days, the longest a timer can wait), got ${value}`);
  }
}

/** Checks a factor or count that must be a finite number >= 0 (Infinity and NaN are refused). */
export function assertFiniteNonNegative(field: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError(`${field} must be a finite non-negative number, got ${describeValue(value)}`);
  }
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
