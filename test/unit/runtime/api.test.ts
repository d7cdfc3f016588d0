import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  IllegalStateError,
  InvalidArgumentError,
  TaskFuture,
  allSettled,
  flow,
  getDefaultOrchestrator,
  getRunContext,
  getRunLogger,
  setDefaultOrchestrator,
  task,
  unmapped,
  wait,
  type Flow,
  type RunContext,
  type Task,
} from '../../../src/index.js';
import { abortableSleep, createFixture, recordEvents, sleep, uniqueName, type Fixture } from './helpers.js';

let fx: Fixture;

beforeEach(() => {
  fx = createFixture();
});

afterEach(async () => {
  await fx.orchestrator.close();
});

describe('task() inside a flow', () => {
  it('returns the task value when the flow awaits the task', async () => {
    const add = task({ name: 'add' }, async (a: number, b: number) => a + b);
    const sum = flow({ name: uniqueName('sum') }, async () => (await add(1, 2)) + (await add(3, 4)));
    await expect(fx.orchestrator.start(sum).result()).resolves.toBe(10);
  });

  it('submit() returns a TaskFuture that can be awaited or asked for its result', async () => {
    const double = task({ name: 'double' }, async (n: number) => n * 2);
    const seen: unknown[] = [];
    const main = flow({ name: uniqueName('submit') }, async () => {
      const a = double.submit(2);
      const b = double.submit(5);
      seen.push(a instanceof TaskFuture, typeof a.id, a.name, a.taskName);
      return [await a, await b.result()];
    });
    await expect(fx.orchestrator.start(main).result()).resolves.toEqual([4, 10]);
    expect(seen).toEqual([true, 'string', 'double-0', 'double']);
  });

  it('map() fans out one task run per element, zipping iterables and passing unmapped() values whole', async () => {
    const calls: unknown[][] = [];
    const combine = task({ name: 'combine' }, async (a: number, b: string, shared: { tag: string }) => {
      calls.push([a, b, shared]);
      return `${shared.tag}:${a}${b}`;
    });
    const shared = { tag: 't' };
    const main = flow({ name: uniqueName('map') }, async () => {
      const futures = combine.map([1, 2, 3], new Set(['x', 'y', 'z']), unmapped(shared));
      return Promise.all(futures.map((f) => f.result()));
    });
    await expect(fx.orchestrator.start(main).result()).resolves.toEqual(['t:1x', 't:2y', 't:3z']);
    expect(calls).toHaveLength(3);
    for (const call of calls) expect(call[2]).toBe(shared);
  });

  it('map() with iterables of different lengths throws InvalidArgumentError', () => {
    const pair = task({ name: 'pair' }, async (a: number, b: number) => a + b);
    expect(() => pair.map([1, 2], [1])).toThrow(InvalidArgumentError);
    try {
      pair.map([1, 2, 3], [1]);
    } catch (error) {
      expect((error as InvalidArgumentError).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('wait() with timeoutMs splits futures into done and notDone', async () => {
    const nap = task({ name: 'nap' }, async (ms: number) => {
      await abortableSleep(ms, getRunContext().signal);
      return ms;
    });
    const main = flow({ name: uniqueName('wait') }, async () => {
      const fast = nap.submit(1);
      const slow = nap.submit(400);
      const { done, notDone } = await wait([fast, slow], { timeoutMs: 100 });
      const split = { done: done.map((f) => f.name), notDone: notDone.map((f) => f.name) };
      slow.cancel();
      return split;
    });
    await expect(fx.orchestrator.start(main).result()).resolves.toEqual({ done: ['nap-0'], notDone: ['nap-1'] });
  });

  it('allSettled() never rejects and reports how each run ended', async () => {
    const maybe = task({ name: 'maybe' }, async (ok: boolean) => {
      if (!ok) throw new Error('nope');
      return 'yes';
    });
    const main = flow({ name: uniqueName('settled') }, async () => {
      const settled = await allSettled([maybe.submit(true), maybe.submit(false)]);
      return settled.map((s) => ({
        status: s.status,
        state: s.state.name,
        value: s.status === 'fulfilled' ? s.value : (s.reason as Error).message,
      }));
    });
    await expect(fx.orchestrator.start(main).result()).resolves.toEqual([
      { status: 'fulfilled', state: 'Completed', value: 'yes' },
      { status: 'rejected', state: 'Failed', value: 'nope' },
    ]);
  });
});

describe('subflows', () => {
  it('a flow called inside a flow is a subflow with its own flow run id and parentFlowRunId', async () => {
    const childName = uniqueName('child');
    const child = flow({ name: childName }, async (n: number) => {
      return { n, id: getRunContext().flowRun?.id };
    });
    const parent = flow({ name: uniqueName('parent') }, async () => child(7));
    const recorder = recordEvents(fx.orchestrator, { kind: 'flow' });
    const run = fx.orchestrator.start(parent);
    const result = await run.result();
    await recorder.untilFlowEnds(run.id);
    const childEvents = recorder.flowEvents().filter((e) => e.flowName === childName);
    expect(result.n).toBe(7);
    expect(result.id).toEqual(expect.any(String));
    expect(result.id).not.toBe(run.id);
    expect(childEvents.map((e) => e.state.name)).toEqual(['Pending', 'Running', 'Completed']);
    for (const event of childEvents) {
      expect(event.flowRunId).toBe(result.id);
      expect(event.parentFlowRunId).toBe(run.id);
    }
    expect(recorder.flowEvents(run.id).every((e) => e.parentFlowRunId === undefined)).toBe(true);
    recorder.close();
  });
});

describe('task() outside any flow', () => {
  let previous: ReturnType<typeof setDefaultOrchestrator>;
  beforeEach(() => {
    previous = setDefaultOrchestrator(fx.orchestrator);
  });
  afterEach(() => {
    setDefaultOrchestrator(previous);
  });

  it('runs as its own task run on the ambient orchestrator and returns its value', async () => {
    expect(getDefaultOrchestrator()).toBe(fx.orchestrator);
    const shout = task({ name: 'shout' }, async (s: string) => {
      const context = getRunContext();
      return { value: s.toUpperCase(), flowRun: context.flowRun, taskRun: context.taskRun?.name };
    });
    const recorder = recordEvents(fx.orchestrator, { kind: 'task' });
    await expect(shout('hi')).resolves.toEqual({ value: 'HI', flowRun: undefined, taskRun: 'shout-0' });
    await recorder.untilTaskEnds();
    expect(recorder.events.map((e) => e.state.name)).toEqual(['Pending', 'Running', 'Completed']);
    for (const event of recorder.events) {
      expect(event.flowRunId).toBeUndefined();
      expect(event.flowName).toBeUndefined();
    }
    recorder.close();
  });
});

describe('getRunContext()', () => {
  it('gives the flow run, the task run, the attempt, a stable idempotency key and a signal inside a task', async () => {
    const contexts: RunContext[] = [];
    const flaky = task({ name: 'flaky', retries: 1 }, async () => {
      const context = getRunContext();
      contexts.push(context);
      if (context.attempt === 1) throw new Error('first attempt fails');
      return 'ok';
    });
    const flowName = uniqueName('context');
    const main = flow({ name: flowName }, async (x: number) => {
      const own = getRunContext();
      expect(own.taskRun).toBeUndefined();
      expect(own.flowRun?.parameters).toEqual([x]);
      return flaky();
    });
    const run = fx.orchestrator.start(main, 3);
    await expect(run.result()).resolves.toBe('ok');
    expect(contexts).toHaveLength(2);
    const [first, second] = contexts as [RunContext, RunContext];
    expect(first.flowRun).toMatchObject({ id: run.id, name: run.name, flowName });
    expect(first.taskRun).toMatchObject({ id: expect.any(String), name: 'flaky-0', taskName: 'flaky' });
    expect(second.taskRun?.id).toBe(first.taskRun?.id);
    expect([first.attempt, second.attempt]).toEqual([1, 2]);
    expect(first.idempotencyKey).toEqual(expect.any(String));
    expect(second.idempotencyKey).toBe(first.idempotencyKey);
    expect(first.signal).toBeInstanceOf(AbortSignal);
    expect(second.signal).toBeInstanceOf(AbortSignal);
    expect(first.orchestrator).toBe(fx.orchestrator);
  });

  it('throws IllegalStateError outside any run, as getRunLogger() does', () => {
    expect(() => getRunContext()).toThrow(IllegalStateError);
    expect(() => getRunLogger()).toThrow(IllegalStateError);
    try {
      getRunLogger();
    } catch (error) {
      expect((error as IllegalStateError).code).toBe('ILLEGAL_STATE');
    }
  });
});

describe('getRunLogger()', () => {
  it('writes records that carry the flow run id and, inside a task, the task run id', async () => {
    let taskRunId: string | undefined;
    const work = task({ name: 'work' }, async () => {
      taskRunId = getRunContext().taskRun?.id;
      getRunLogger().info({ step: 2 }, 'from the task');
    });
    const flowName = uniqueName('logging');
    const main = flow({ name: flowName }, async () => {
      getRunLogger().info({ step: 1 }, 'from the flow');
      await work();
    });
    const run = fx.orchestrator.start(main);
    await run.result();
    const fromFlow = fx.records.find((r) => r.msg === 'from the flow');
    const fromTask = fx.records.find((r) => r.msg === 'from the task');
    expect(fromFlow).toMatchObject({ level: 30, step: 1, flowRunId: run.id, flowRunName: run.name, flowName });
    expect(fromFlow).not.toHaveProperty('taskRunId');
    expect(fromTask).toMatchObject({
      level: 30,
      step: 2,
      flowRunId: run.id,
      flowRunName: run.name,
      taskRunId,
      taskRunName: 'work-0',
      taskName: 'work',
    });
    expect(taskRunId).toEqual(expect.any(String));
  });
});

describe('type inference', () => {
  it('a task keeps its parameter and result types in the callable, submit() and map()', () => {
    const check = task({ name: 'check' }, async (a: number, b: string): Promise<boolean> => a > b.length);
    expectTypeOf(check).toExtend<Task<[a: number, b: string], boolean>>();
    expectTypeOf(check).toBeCallableWith(1, 'x');
    expectTypeOf(check).parameters.toEqualTypeOf<[a: number, b: string]>();
    expectTypeOf(check).returns.toEqualTypeOf<Promise<boolean>>();
    expectTypeOf(check.submit).parameters.toEqualTypeOf<[a: number, b: string]>();
    expectTypeOf(check.submit).returns.toEqualTypeOf<TaskFuture<boolean>>();
    expectTypeOf(check.map).returns.toEqualTypeOf<TaskFuture<boolean>[]>();
    // @ts-expect-error: the second parameter is a string
    void (() => check(1, 2));
  });

  it('a flow with a zod object schema accepts the schema input, defaults optional', () => {
    const withParams = flow({ name: 'typed', params: z.object({ n: z.number().default(1) }) }, async ({ n }) => {
      expectTypeOf(n).toEqualTypeOf<number>();
      return n * 2;
    });
    expectTypeOf(withParams).toExtend<Flow<[params: { n?: number | undefined }], number>>();
    expectTypeOf(withParams).parameters.toEqualTypeOf<[params: { n?: number | undefined }]>();
    expectTypeOf(withParams).toBeCallableWith({});
    expectTypeOf(withParams).toBeCallableWith({ n: 2 });
    expectTypeOf(withParams).returns.toEqualTypeOf<Promise<number>>();
    // @ts-expect-error: n is a number
    void (() => withParams({ n: 'two' }));
  });

  it('a flow without a schema takes its function parameters', async () => {
    const plain = flow({ name: uniqueName('plain') }, async (repo: string, stars?: number) => `${repo}:${stars ?? 0}`);
    expectTypeOf(plain).parameters.toEqualTypeOf<[repo: string, stars?: number]>();
    const run = fx.orchestrator.start(plain, 'a/b', 3);
    expectTypeOf(run.result()).toEqualTypeOf<Promise<string>>();
    await expect(run.result()).resolves.toBe('a/b:3');
    await sleep(0);
  });
});
