import { describe, expect, it } from 'vitest';
import { flow, task } from '../../src/api.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { MAX_TIMER_MS, computeRetryDelay } from '../../src/retry.js';

const never = async () => 1;

function refusal(define: () => unknown): InvalidArgumentError {
  try {
    define();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    return error as InvalidArgumentError;
  }
  throw new Error('expected an InvalidArgumentError');
}

// Regression (QA 7a, finding 6): retryJitterFactor: Infinity was accepted; each retry then
// waited 0 ms or 24.8 days at random, and with a 0 ms delay the NaN it gave lost AwaitingRetry.
describe('retryJitterFactor', () => {
  it.each([
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['NaN', Number.NaN],
    ['a negative number', -0.1],
    ['a string', '0.2'],
  ])('is refused at definition when it is %s, for tasks and flows, naming the option', (_, retryJitterFactor) => {
    const options = { retries: 1, retryJitterFactor: retryJitterFactor as number };
    for (const define of [() => task({ name: 'jittery', ...options }, never), () => flow({ name: 'jittery', ...options }, never)]) {
      expect(refusal(define).message).toContain('retryJitterFactor');
    }
  });

  it('accepts a finite factor, also one over 1', () => {
    expect(() => task({ name: 'jittery', retries: 1, retryJitterFactor: 0.2 }, never)).not.toThrow();
    expect(() => flow({ name: 'jittery', retries: 1, retryJitterFactor: 3 }, never)).not.toThrow();
  });
});

describe('computeRetryDelay with jitter that cannot be computed', () => {
  it('gives the un-jittered delay, never NaN, for a non-finite factor that reached it anyway', () => {
    for (const jitterFactor of [Number.POSITIVE_INFINITY, Number.NaN]) {
      expect(computeRetryDelay(0, 1, jitterFactor, () => 0.9)).toBe(0);
      expect(computeRetryDelay(100, 1, jitterFactor, () => 0.9)).toBe(100);
      expect(computeRetryDelay(100, 1, jitterFactor, () => 0.1)).toBe(100);
    }
  });

  it('gives the un-jittered delay when random() is not a number', () => {
    expect(computeRetryDelay(100, 1, 0.5, () => Number.NaN)).toBe(100);
    expect(computeRetryDelay(0, 1, 0.5, () => Number.NaN)).toBe(0);
  });

  it('keeps every result an integer within [0, MAX_TIMER_MS]', () => {
    const delays = [0, 1, 100, MAX_TIMER_MS, Number.POSITIVE_INFINITY, Number.NaN, -5];
    const factors = [0, 0.5, 1e308, Number.POSITIVE_INFINITY, Number.NaN];
    const randoms = [0, 0.5, 0.999, Number.NaN];
    for (const delayMs of delays) {
      for (const jitterFactor of factors) {
        for (const r of randoms) {
          const ms = computeRetryDelay(() => delayMs, 1, jitterFactor, () => r);
          expect(Number.isInteger(ms), `delay ${delayMs}, factor ${jitterFactor}, random ${r} gave ${ms}`).toBe(true);
          expect(ms).toBeGreaterThanOrEqual(0);
          expect(ms).toBeLessThanOrEqual(MAX_TIMER_MS);
        }
      }
    }
  });
});
