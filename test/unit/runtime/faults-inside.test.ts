/**
 * Faults inside tenaz's own path (a throwing delay function, a failing bus, an
 * exception inside a machine action) end the run they touch, never the process.
 */
import { describe, expect, it } from 'vitest';
import type { Bus } from '../../../src/bus/bus.js';
import { createMemoryBus } from '../../../src/bus/memory.js';
import { CrashedError, flow, task } from '../../../src/index.js';
import { createFixture, createMemoryLogger, sleep, uniqueName, watchProcessErrors } from './helpers.js';
import { definitionOf } from '../../../src/runtime/definitions.js';
import { createOrchestrator } from '../../../src/runtime/orchestrator.js';

describe('faults inside the runtime', () => {
  it('a retryDelayMs function that throws retries without delay and logs the error', async () => {
    const fx = createFixture();
    let calls = 0;
    const flaky = task(
      {
        name: 'flaky',
        retries: 1,
        retryDelayMs: () => {
          throw new Error('bad delay');
        },
      },
      async () => (++calls === 1 ? Promise.reject(new Error('first')) : 'ok'),
    );
    const main = flow({ name: uniqueName('delay') }, async () => flaky());
    await expect(fx.orchestrator.start(main).result()).resolves.toBe('ok');
    expect(fx.records.some((r) => r.level === 50 && r.msg.includes('retryDelayMs threw'))).toBe(true);
    await fx.orchestrator.close();
  });

  it('a bus whose publish throws does not stop the runs', async () => {
    const { logger, records } = createMemoryLogger();
    const inner = createMemoryBus();
    const failing: Bus = {
      publish: () => {
        throw new Error('bus down');
      },
      subscribe: (subject, options) => inner.subscribe(subject, options),
      request: (subject, message, options) => inner.request(subject, message, options),
      flush: () => inner.flush(),
      drain: () => inner.drain(),
      close: () => inner.close(),
      get isClosed() {
        return inner.isClosed;
      },
    };
    const orchestrator = createOrchestrator({ logger, bus: failing });
    const double = task({ name: 'double' }, async (n: number) => n * 2);
    const main = flow({ name: uniqueName('bus') }, async (n: number) => double(n));
    await expect(orchestrator.start(main, 21).result()).resolves.toBe(42);
    expect(records.some((r) => r.msg === 'could not publish a run event')).toBe(true);
    await orchestrator.close();
  });

  it('an exception inside a machine action ends that task run Crashed, and its flow sees CrashedError', async () => {
    const fx = createFixture();
    // Make the logger throw once, while the task run's actor enters AwaitingRetry.
    const original = fx.logger.warn;
    let thrown = false;
    fx.logger.warn = function (this: unknown, ...args: unknown[]) {
      if (!thrown && String(args[1]).includes('Retry 1/1')) {
        thrown = true;
        throw new Error('logger exploded');
      }
      return (original as (...a: unknown[]) => void).apply(this, args);
    } as typeof original;
    let attempts = 0;
    const fragile = task({ name: 'fragile', retries: 1 }, async () => (++attempts === 1 ? Promise.reject(new Error('once')) : 'fine'));
    let seen: unknown;
    const main = flow({ name: uniqueName('action') }, async () => {
      try {
        return await fragile();
      } catch (error) {
        seen = error;
        return 'handled';
      }
    });
    await expect(fx.orchestrator.start(main).result()).resolves.toBe('handled');
    expect(seen).toBeInstanceOf(CrashedError);
    expect(attempts).toBe(1);
    expect(fx.records.some((r) => r.level === 50 && r.msg.includes('failed inside tenaz'))).toBe(true);
    await fx.orchestrator.close();
  });

  // Regression: the crash was published under the same name, threw again from the actor's error
  // observer, and XState threw that where nothing caught it: the process died.
  for (const kind of ['flow', 'task'] as const) {
    it(`a ${kind} run whose events cannot be published at all ends Crashed or Failed, and the process goes on`, async () => {
      const fx = createFixture();
      const errors = watchProcessErrors();
      try {
        const leaf = task({ name: uniqueName('leaf') }, async () => 1);
        const main = flow({ name: uniqueName('main') }, async () => leaf());
        // A name no subject can carry, as only a definition changed after the fact can have.
        (definitionOf(kind === 'flow' ? main : leaf)!.options as { name: string }).name = 'cut-\uD83D';
        const state = await fx.orchestrator.start(main).wait();
        await sleep(20);
        expect(['Crashed', 'Failed']).toContain(state.name);
        expect(errors.uncaughtExceptions).toEqual([]);
        expect(fx.records.some((r) => r.level === 50 && r.msg.includes('Could not publish the Crashed state'))).toBe(true);
      } finally {
        errors.stop();
        await fx.orchestrator.close();
      }
    });
  }

  it('an exception while logging a finished run still settles the run with its state', async () => {
    const fx = createFixture();
    const original = fx.logger.info;
    fx.logger.info = function (this: unknown, ...args: unknown[]) {
      if (String(args[1] ?? args[0]).includes('Finished in state Completed()')) throw new Error('logger exploded');
      return (original as (...a: unknown[]) => void).apply(this, args);
    } as typeof original;
    const steady = task({ name: 'steady' }, async () => 7);
    const main = flow({ name: uniqueName('finish') }, async () => (await steady()) * 6);
    const run = fx.orchestrator.start(main);
    await expect(run.result()).resolves.toBe(42);
    expect(run.state?.name).toBe('Completed');
    // The task run's actor shares the orchestrator's actor system (no timer to set): its error still reaches the run.
    await new Promise((resolve) => setImmediate(resolve));
    expect(fx.records.some((r) => r.level === 50 && r.msg === 'An error inside tenaz after the run had finished')).toBe(true);
    await fx.orchestrator.close();
  });
});
