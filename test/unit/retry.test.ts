import { describe, expect, it } from 'vitest';
import { MAX_TIMER_MS, computeRetryDelay, exponentialBackoff } from '../../src/retry.js';

const DAY_MS = 24 * 3600 * 1000;

// Regression: a computed delay over 2^31 - 1 ms went to a timer that Node fires after 1 ms.
describe('computeRetryDelay', () => {
  it('cuts a delay function’s result over the timer limit to the limit and reports what was asked', () => {
    const clamped: number[] = [];
    expect(computeRetryDelay(() => 30 * DAY_MS, 1, 0, Math.random, undefined, (ms) => clamped.push(ms))).toBe(MAX_TIMER_MS);
    expect(clamped).toEqual([30 * DAY_MS]);
  });

  it('cuts an unbounded exponential back-off at the limit, also once it reaches Infinity', () => {
    const backoff = exponentialBackoff({ baseMs: 1_000 });
    expect(computeRetryDelay(backoff, 40, 0, Math.random)).toBe(MAX_TIMER_MS);
    expect(backoff(2_000)).toBe(Number.POSITIVE_INFINITY);
    expect(computeRetryDelay(backoff, 2_000, 0, Math.random)).toBe(MAX_TIMER_MS);
  });

  it('cuts a delay that jitter stretched over the limit', () => {
    const clamped: number[] = [];
    expect(computeRetryDelay(MAX_TIMER_MS, 1, 0.5, () => 0.999, undefined, (ms) => clamped.push(ms))).toBe(MAX_TIMER_MS);
    expect(clamped).toHaveLength(1);
    expect(clamped[0]).toBeGreaterThan(MAX_TIMER_MS);
  });

  it('leaves delays within the limit as they are, and reads NaN and negative delays as 0', () => {
    const clamped: number[] = [];
    const onClamped = (ms: number) => clamped.push(ms);
    expect(computeRetryDelay(() => 1_500, 1, 0, Math.random, undefined, onClamped)).toBe(1_500);
    expect(computeRetryDelay([10, 20], 5, 0, Math.random, undefined, onClamped)).toBe(20);
    expect(computeRetryDelay(() => Number.NaN, 1, 0, Math.random, undefined, onClamped)).toBe(0);
    expect(computeRetryDelay(() => -5, 1, 0, Math.random, undefined, onClamped)).toBe(0);
    expect(clamped).toEqual([]);
  });
});

describe('exponentialBackoff', () => {
  it('without its options is refused with InvalidArgumentError saying what it needs, not a TypeError', () => {
    const call = exponentialBackoff as (options?: unknown) => unknown;
    expect(() => call()).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', message: expect.stringContaining('exponentialBackoff({ baseMs: 1000 })') }));
    expect(() => call({})).toThrow(/exponentialBackoff.baseMs/);
  });

  it('refuses a first delay or a factor that is not finite: every retry would wait the longest timer', () => {
    expect(() => exponentialBackoff({ baseMs: Number.POSITIVE_INFINITY })).toThrow(/exponentialBackoff.baseMs must be a finite non-negative number/);
    expect(() => exponentialBackoff({ baseMs: 100, factor: Number.POSITIVE_INFINITY })).toThrow(/exponentialBackoff.factor must be a finite number >= 1/);
    expect(exponentialBackoff({ baseMs: 100, maxMs: Number.POSITIVE_INFINITY })(3)).toBe(400);
  });
});
