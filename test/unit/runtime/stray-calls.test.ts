/**
 * Calls a flow body makes that it should not (a forgotten `await`, a call after the flow
 * returned), `map()` arguments that are not lists, and orchestrator options that are not
 * options: each ends in a clear error or a sound state, never in a crashed process.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IllegalStateError, InvalidArgumentError, createOrchestrator, flow, task, unmapped } from '../../../src/index.js';
import { createFixture, names, recordEvents, sleep, uniqueName, watchProcessErrors, type Fixture } from './helpers.js';

let fx: Fixture;

beforeEach(() => {
  fx = createFixture();
});

afterEach(async () => {
  await fx.orchestrator.close();
});

describe('a task call the flow forgot to await', () => {
  it('fails its task run, logged, without an unhandled rejection; the flow goes on', async () => {
    const fails = task({ name: uniqueName('fails') }, async () => {
      throw new Error('nobody awaits me');
    });
    const child = flow({ name: uniqueName('child') }, async () => {
      throw new Error('nobody awaits me either');
    });
    const forgets = flow({ name: uniqueName('forgets') }, async () => {
      void fails();
      void child();
      await sleep(50);
      return 'ok';
    });
    const errors = watchProcessErrors();
    try {
      const recorder = recordEvents(fx.orchestrator);
      expect(await fx.orchestrator.start(forgets).result()).toBe('ok');
      await sleep(20);
      expect(errors.unhandledRejections).toEqual([]);
      expect(names(recorder.taskEvents())).toEqual(['Pending', 'Running', 'Failed']);
      recorder.close();
    } finally {
      errors.stop();
    }
    expect(fx.records.some((r) => r.level === 50 && /Finished in state Failed/.test(r.msg))).toBe(true);
  });

  it('still rejects for the caller that does await it', async () => {
    const fails = task({ name: uniqueName('fails') }, async () => {
      throw new Error('awaited');
    });
    const awaits = flow({ name: uniqueName('awaits') }, async () => fails());
    await expect(fx.orchestrator.start(awaits).result()).rejects.toThrow('awaited');
  });
});

describe('a call made after its flow run ended', () => {
  it('is refused with IllegalStateError, and no task run starts under the finished run', async () => {
    const late = task({ name: uniqueName('late') }, async () => 'ran');
    let refusal: unknown;
    const leavesATimer = flow({ name: uniqueName('leaves-a-timer') }, async () => {
      setTimeout(() => late().then((value) => (refusal = value), (error: unknown) => (refusal = error)), 20);
      return 'returned';
    });
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(leavesATimer);
    expect(await run.result()).toBe('returned');
    await sleep(60);
    expect(refusal).toBeInstanceOf(IllegalStateError);
    expect((refusal as Error).message).toMatch(/after that run had ended Completed/);
    expect(recorder.taskEvents()).toEqual([]);
    recorder.close();
  });
});

describe('map() arguments', () => {
  const add = task({ name: uniqueName('add') }, async (a: number, b: number) => a + b);
  const label = task({ name: uniqueName('label') }, async (prefix: string, n: number, options: { upper: boolean }) =>
    options.upper ? `${prefix}${n}`.toUpperCase() : `${prefix}${n}`,
  );

  it('fans out over iterables and gives values that are not iterable whole to every run', async () => {
    const fanOut = flow({ name: uniqueName('fan-out') }, async () => ({
      sums: await Promise.all(add.map([1, 2, 3], 10)),
      fromSet: await Promise.all(add.map(new Set([1, 2]), unmapped(100))),
      // A string is one value, not its characters; a plain object is one value too.
      labels: await Promise.all(label.map('x', [1, 2], { upper: true })),
    }));
    expect(await fx.orchestrator.start(fanOut).result()).toEqual({ sums: [11, 12, 13], fromSet: [101, 102], labels: ['X1', 'X2'] });
  });

  it.each([
    ['a number', [5]],
    ['null', [null]],
    ['an array-like object that is not iterable', [{ length: 2 }]],
    ['only unmapped values', [unmapped([1, 2])]],
  ])('refuses %s with no iterable beside it, naming the task', async (_, args) => {
    const refused = flow({ name: uniqueName('refused') }, async () => (add.map as (...a: unknown[]) => unknown)(...args));
    const error = await fx.orchestrator.start(refused).result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/map\(\) of task '.*add.*' needs at least one iterable argument/);
  });
});

describe('orchestrator options', () => {
  it('refuses a clock that is not a function before any run could trip on it', () => {
    expect(() => createOrchestrator({ now: Date.now() as unknown as () => number })).toThrow(InvalidArgumentError);
    expect(() => createOrchestrator({ random: 0.5 as unknown as () => number })).toThrow(/random must be a function/);
  });

  it('refuses an unknown option, naming the nearest known one', () => {
    expect(() => createOrchestrator({ namespce: 'x' } as never)).toThrow(/unknown orchestrator option 'namespce'; did you mean 'namespace'\?/);
    expect(() => createOrchestrator({ durable: { leasMs: 500 } } as never)).toThrow(/unknown durable option 'leasMs'; did you mean 'leaseMs'\?/);
  });

  it('refuses a watch() filter with a misspelt key rather than watching everything', () => {
    expect(() => fx.orchestrator.watch({ flowname: 'etl' } as never)).toThrow(/unknown watch\(\) option 'flowname'; did you mean 'flowName'\?/);
  });
});

describe('a cancel with a reason', () => {
  it('says it in the Cancelled state and in the error the caller gets', async () => {
    const waits = flow({ name: uniqueName('waits'), cancelGraceMs: 50 }, async () => new Promise((resolve) => setTimeout(resolve, 5_000)));
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(waits);
    await recorder.until((event) => event.state.name === 'Running');
    run.cancel('the operator stopped it');
    const error = await run.result().catch((e: unknown) => e);
    expect((error as Error).message).toBe(`flow run '${run.name}' was cancelled: the operator stopped it`);
    const ended = await recorder.untilFlowEnds(run.id);
    expect(ended.state).toMatchObject({ name: 'Cancelled', message: 'flow run was cancelled: the operator stopped it' });
    recorder.close();
  });
});
