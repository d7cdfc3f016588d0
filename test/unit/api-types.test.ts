/**
 * The types `task()` and `flow()` give their callables, checked by `npm run typecheck`
 * (`@ts-expect-error` fails the typecheck when the error it expects is gone).
 */
import { describe, expectTypeOf, it } from 'vitest';
import { flow, task, type TaskFuture } from '../../src/index.js';

describe('the types of task and flow callables', () => {
  it('take their parameters and result from the function, annotated', () => {
    const add = task({ name: 'types-add' }, async (a: number, c: number = 3) => a + c);
    expectTypeOf(add).parameters.toEqualTypeOf<[a: number, c?: number]>();
    expectTypeOf(add).returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf(add.submit).returns.toEqualTypeOf<TaskFuture<number>>();
  });

  // Regression (QA round 8): a typing by the function itself gave such a parameter the contextual
  // type never, and `= {}` did not compile.
  it('take a destructured parameter with a default object', () => {
    const options = task({ name: 'types-options' }, async ({ a = 1, b = 'q' } = {}) => `${a}${b}`);
    const optionsFlow = flow({ name: 'types-options-flow' }, async ({ a = 1 } = {}) => a);
    expectTypeOf(options).returns.toEqualTypeOf<Promise<string>>();
    expectTypeOf(optionsFlow).returns.toEqualTypeOf<Promise<number>>();
  });

  it('type a cacheKey by the task parameters, and refuse wrong arguments', () => {
    const keyed = task({ name: 'types-keyed', cacheKey: (url) => url.toUpperCase() }, async (url: string) => url.length);
    expectTypeOf(keyed).parameters.toEqualTypeOf<[url: string]>();
    const wrongCalls = () => {
      // @ts-expect-error a string parameter
      void keyed(1);
      // @ts-expect-error a cacheKey whose parameter is not the task's
      task({ name: 'types-bad-key', cacheKey: (n: number) => String(n) }, async (url: string) => url);
    };
    expectTypeOf(wrongCalls).toBeFunction();
  });
});
