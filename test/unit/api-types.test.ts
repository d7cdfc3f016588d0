/**
 * The types `task()` and `flow()` give their callables, checked by `npm run typecheck`
 * (`@ts-expect-error` fails the typecheck when the error it expects is gone).
 */
import { describe, expectTypeOf, it } from 'vitest';
import { flow, task, type TaskFuture } from '../../src/index.js';

describe('the types of task and flow callables', () => {
  // Regression: a parameter with a default and no annotation was typed `unknown` in the body,
  // so `a + c` did not compile.
  it('type a parameter with a default by its default', () => {
    const add = task({ name: 'types-add' }, async (a: number, c = 3) => a + c);
    const addFlow = flow({ name: 'types-add-flow' }, async (a: number, c = 3) => a + c);
    expectTypeOf(add).parameters.toEqualTypeOf<[a: number, c?: number]>();
    expectTypeOf(add).returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf(addFlow).parameters.toEqualTypeOf<[a: number, c?: number]>();
    expectTypeOf(addFlow).returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf(add.submit).returns.toEqualTypeOf<TaskFuture<number>>();
  });

  it('type a cacheKey by the task parameters, and refuse wrong arguments and results', () => {
    const keyed = task({ name: 'types-keyed', cacheKey: (url) => url.toUpperCase() }, async (url: string) => url.length);
    expectTypeOf(keyed).parameters.toEqualTypeOf<[url: string]>();
    const wrongCalls = () => {
      // @ts-expect-error a string parameter
      void keyed(1);
      // @ts-expect-error the result is a number
      const text: string = await_(keyed('x'));
      // @ts-expect-error a cacheKey whose parameter is not the task's
      task({ name: 'types-bad-key', cacheKey: (n: number) => String(n) }, async (url: string) => url);
      return text;
    };
    expectTypeOf(wrongCalls).toBeFunction();
  });
});

/** The value a promise resolves with, for the type checks above (never called). */
declare function await_<T>(promise: Promise<T>): T;
