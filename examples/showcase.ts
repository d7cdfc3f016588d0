/**
 * Fault tolerance in one flow, in a couple of seconds, with no network:
 *
 * - a flaky task that fails twice, then succeeds on its third attempt,
 * - a slow task whose first attempt runs past `timeoutMs` and is aborted,
 * - a fan-out of twenty task runs with `.map()`,
 * - a task that always fails, whose failure the flow catches and survives.
 *
 *   npx tenaz run examples/showcase.ts --log-format pretty
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { exponentialBackoff, flow, getRunContext, getRunLogger, task } from 'tenaz';

/** Fails on its first two attempts, as a service that is briefly down would. */
export const flaky = task(
  { name: 'flaky', retries: 3, retryDelayMs: exponentialBackoff({ baseMs: 100 }) },
  async () => {
    const { attempt } = getRunContext();
    if (attempt < 3) throw new Error(`service unavailable (attempt ${attempt})`);
    return `succeeded on attempt ${attempt}`;
  },
);

/** Hangs on its first attempt; the timeout aborts it and the retry is quick. */
export const slow = task({ name: 'slow', retries: 1, timeoutMs: 300 }, async () => {
  const { attempt, signal } = getRunContext();
  // Passing the signal is what lets the timed-out attempt stop instead of running on unseen.
  await sleep(attempt === 1 ? 5_000 : 20, undefined, { signal });
  return `finished on attempt ${attempt}`;
});

/** One run per item of the fan-out. */
export const square = task({ name: 'square' }, async (n: number) => n * n);

/** Never succeeds, even after its retry. */
export const alwaysFails = task({ name: 'always-fails', retries: 1, retryDelayMs: 50 }, async () => {
  throw new Error('this task always fails');
});

/** Runs each fault-tolerance case and returns what happened. */
export const showcase = flow({ name: 'showcase' }, async () => {
  const logger = getRunLogger();
  const flakyResult = await flaky();
  const slowResult = await slow();

  const squares = await Promise.all(square.map(Array.from({ length: 20 }, (_, i) => i + 1)));
  const sumOfSquares = squares.reduce((sum, n) => sum + n, 0);
  logger.info(`Fan-out of ${squares.length} task runs: sum of squares ${sumOfSquares}`);

  let handled: string;
  try {
    await alwaysFails();
    handled = 'unexpectedly succeeded';
  } catch (error) {
    handled = error instanceof Error ? error.message : String(error);
    logger.warn(`always-fails failed as expected; carrying on: ${handled}`);
  }

  return { flaky: flakyResult, slow: slowResult, fanOut: { runs: squares.length, sumOfSquares }, handled };
});
