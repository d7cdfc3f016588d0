import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { wait } from '../../src/api.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { resolveFlowOptions, resolveTaskOptions, type FlowOptions, type TaskOptions } from '../../src/options.js';
import { MAX_TIMER_MS } from '../../src/retry.js';

const DAY_MS = 24 * 3600 * 1000;

const resolveTask = (options: Record<string, unknown>) => () => resolveTaskOptions({ name: 'opts', ...options } as TaskOptions<never[]>);
const resolveFlow = (options: Record<string, unknown>) => () => resolveFlowOptions({ name: 'opts', ...options } as FlowOptions<never>);

function thrown(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    return error as InvalidArgumentError;
  }
  throw new Error('expected an InvalidArgumentError');
}

// Regression: a timer over 2^31 - 1 ms fires after 1 ms in Node, so a task with a 30-day
// timeoutMs timed out at once, and a 30-day retryDelayMs retried (and failed) at once.
describe('options that end up in a timer', () => {
  const over = MAX_TIMER_MS + 1;
  const timers: Array<[string, Record<string, unknown>, string]> = [
    ['timeoutMs', { timeoutMs: over }, 'timeoutMs'],
    ['timeoutMs of 30 days', { timeoutMs: 30 * DAY_MS }, 'timeoutMs'],
    ['timeoutMs: Infinity', { timeoutMs: Number.POSITIVE_INFINITY }, 'timeoutMs'],
    ['retryDelayMs', { retries: 1, retryDelayMs: over }, 'retryDelayMs'],
    ['retryDelayMs: Infinity', { retries: 1, retryDelayMs: Number.POSITIVE_INFINITY }, 'retryDelayMs'],
    ['a retryDelayMs list entry', { retries: 2, retryDelayMs: [10, 30 * DAY_MS] }, 'retryDelayMs[1]'],
  ];

  it.each(timers)('refuses %s over 2^31 - 1 ms for tasks and flows, naming it and the limit', (_, options, field) => {
    for (const resolve of [resolveTask, resolveFlow]) {
      const error = thrown(resolve(options));
      expect(error.message).toContain(field);
      expect(error.message).toContain(String(MAX_TIMER_MS));
      expect(error.message).toContain('24.8 days');
    }
  });

  it('refuses a flow cancelGraceMs over the limit', () => {
    expect(thrown(resolveFlow({ cancelGraceMs: over })).message).toContain('cancelGraceMs');
  });

  it('accepts every timer at the limit itself', () => {
    const atLimit = { timeoutMs: MAX_TIMER_MS, retries: 2, retryDelayMs: [MAX_TIMER_MS] };
    expect(resolveTask(atLimit)()).toMatchObject(atLimit);
    expect(resolveFlow({ ...atLimit, cancelGraceMs: MAX_TIMER_MS })).not.toThrow();
    expect(resolveTask({ retryDelayMs: MAX_TIMER_MS })()).toMatchObject({ retryDelayMs: MAX_TIMER_MS });
  });

  it('leaves options that are compared with the clock, not timers, unbounded', () => {
    expect(resolveTask({ cacheKey: () => 'k', cacheExpirationMs: 365 * DAY_MS })()).toMatchObject({ cacheExpirationMs: 365 * DAY_MS });
    expect(resolveFlow({ supervisor: { windowMs: 365 * DAY_MS } })()).toMatchObject({ restartWindowMs: 365 * DAY_MS });
  });
});

// Regression: `retry: 3` (for `retries`) and `tags: 'a'` were accepted and did nothing.
describe('option names and tags', () => {
  it('refuses a task or flow name cut inside an emoji (a lone surrogate) when it is defined, not at its first run', () => {
    const cut = 'report-😀'.slice(0, 8);
    expect(thrown(() => resolveTaskOptions({ name: cut } as TaskOptions<never[]>))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => resolveTaskOptions({ name: cut } as TaskOptions<never[]>)).message).toContain('well-formed unicode');
    expect(thrown(() => resolveFlowOptions({ name: cut } as FlowOptions<never>)).message).toContain('well-formed unicode');
    expect(resolveTaskOptions({ name: 'report-😀' } as TaskOptions<never[]>).name).toBe('report-😀');
  });

  it('refuses an unknown task option, naming it and the closest known one', () => {
    const error = thrown(resolveTask({ retry: 3 }));
    expect(error.message).toContain("unknown task option 'retry'");
    expect(error.message).toContain("did you mean 'retries'?");
  });

  it('refuses an unknown flow option and an unknown supervisor option', () => {
    expect(thrown(resolveFlow({ timeout: 10 })).message).toContain("did you mean 'timeoutMs'?");
    expect(thrown(resolveFlow({ supervisor: { maxRestart: 3 } })).message).toContain("did you mean 'maxRestarts'?");
    expect(thrown(resolveFlow({ supervisor: 3 })).message).toContain('supervisor');
  });

  it('refuses options of the other kind: a flow takes no cacheKey, a task no params', () => {
    expect(thrown(resolveFlow({ cacheKey: () => 'k' })).message).toContain("unknown flow option 'cacheKey'");
    expect(thrown(resolveTask({ cancelGraceMs: 10 })).message).toContain("unknown task option 'cancelGraceMs'");
  });

  it('suggests nothing for a name far from every option', () => {
    expect(thrown(resolveTask({ description: 'x' })).message).not.toContain('did you mean');
  });

  it.each([
    ['a string', 'a'],
    ['a list holding a number', ['a', 1]],
    ['an object', { a: true }],
  ])('refuses tags given as %s', (_, tags) => {
    expect(thrown(resolveTask({ tags })).message).toContain('tags must be a list of strings');
    expect(thrown(resolveFlow({ tags })).message).toContain('tags must be a list of strings');
  });

  it('accepts every option the interfaces declare', () => {
    const hook = () => {};
    const common = { retries: 1, retryDelayMs: [1], retryJitterFactor: 0.1, retryOn: () => true, timeoutMs: 1, onCompletion: hook, onFailure: [hook], tags: ['a'] };
    expect(resolveTask({ ...common, cacheKey: () => 'k', cacheExpirationMs: 1, pool: 'p', crashRestarts: 2 })).not.toThrow();
    expect(resolveFlow({ ...common, runName: 'r', supervisor: { maxRestarts: 1, windowMs: 1 }, cancelGraceMs: 1, params: undefined })).not.toThrow();
  });
});

describe('times given to the API that end up in a timer', () => {
  it('wait({ timeoutMs }) and drain({ graceMs }) over the limit are refused, not fired at once', async () => {
    await expect(wait([], { timeoutMs: MAX_TIMER_MS + 1 })).rejects.toThrow(/wait\(\) timeoutMs must be at most 2147483647 ms/);
    const orchestrator = createOrchestrator({ logger: pino({ level: 'silent' }) });
    await expect(orchestrator.drain({ graceMs: 30 * DAY_MS })).rejects.toThrow(/drain\(\) graceMs must be at most/);
    await orchestrator.close();
  });
});
