/**
 * `flow()` and `task()`: wrap async functions into callables that run as
 * supervised flow runs and task runs, as Prefect's `@flow` and `@task` do.
 */
import type { z } from 'zod';
import type { RunState } from '../actors/state.js';
import { CancelledError, InvalidArgumentError } from './errors.js';
import { resolveFlowOptions, resolveTaskOptions, type FlowOptions, type TaskOptions } from './options.js';
import { assertTimerMs } from './retry.js';
import { getDefaultOrchestrator } from './runtime/ambient.js';
import { runContextStorage } from './runtime/context.js';
import { DEFINITION, registerFlow, registerTask, type FlowDefinition, type TaskDefinition } from './runtime/definitions.js';
import { TaskFuture } from './runtime/handles.js';
import { INTERNAL } from './runtime/orchestrator.js';

/** Marks an argument of `map()` that is passed whole to every task run instead of being iterated. */
export class Unmapped<T> {
  constructor(readonly value: T) {}
}

/** @example fetchAll.map(urls, unmapped(headers)) */
export function unmapped<T>(value: T): Unmapped<T> {
  return new Unmapped(value);
}

/**
 * For each parameter of the task: an iterable to fan out over, `unmapped(value)`, or a value
 * that is not iterable (a number, a string, a plain object), which every task run gets whole.
 */
export type MapArgs<A extends unknown[]> = { [K in keyof A]: Iterable<A[K]> | Unmapped<A[K]> | Exclude<A[K], Iterable<unknown>> | Extract<A[K], string> };

export interface Task<A extends unknown[], R> {
  /** Runs the task and awaits its result: a task run in the current flow run, or on its own outside flows. */
  (...args: A): Promise<R>;
  readonly taskName: string;
  readonly [DEFINITION]: TaskDefinition;
  /** Starts a task run and returns its future at once. */
  submit(...args: A): TaskFuture<R>;
  /** Fans out: one task run per element, zipping the iterables given for each parameter. */
  map(...lists: MapArgs<A>): TaskFuture<R>[];
  /** The same task with some options replaced. */
  withOptions(overrides: Partial<TaskOptions<A>>): Task<A, R>;
}

export interface Flow<A extends unknown[], R> {
  /** Runs the flow and awaits its result: a subflow inside a flow, else on the ambient orchestrator. */
  (...args: A): Promise<R>;
  readonly flowName: string;
  readonly [DEFINITION]: FlowDefinition;
  /** The same flow with some options replaced. */
  withOptions(overrides: Partial<FlowOptions>): Flow<A, R>;
}

/**
 * Defines a task.
 * @example const callApi = task({ name: 'call-api', retries: 3, retryDelayMs: [200, 1000] }, async (url: string) => (await fetch(url)).json());
 */
export function task<A extends unknown[], R>(options: TaskOptions<A>, fn: (...args: A) => R | Promise<R>): Task<A, Awaited<R>> {
  if (typeof fn !== 'function') throw new InvalidArgumentError('task() needs a function as its second argument');
  const definition: TaskDefinition = {
    kind: 'task',
    options: resolveTaskOptions(options as TaskOptions<never[]>),
    fn: fn as (...args: unknown[]) => unknown,
  };
  registerTask(definition);
  const submit = (...args: A): TaskFuture<Awaited<R>> => {
    const context = runContextStorage.getStore();
    if (context?.isAborted()) {
      throw new CancelledError(`task '${definition.options.name}' was called after its caller was cancelled`);
    }
    const orchestrator = context?.orchestrator ?? getDefaultOrchestrator();
    return new TaskFuture(orchestrator[INTERNAL].submitTask(definition, args, context?.flowRunRuntime));
  };
  const callable = (...args: A): Promise<Awaited<R>> => {
    try {
      return observed(submit(...args).result());
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return Object.assign(callable, {
    taskName: definition.options.name,
    [DEFINITION]: definition,
    submit,
    map: (...lists: MapArgs<A>) => zipArguments(definition.options.name, lists).map((args) => submit(...(args as A))),
    withOptions: (overrides: Partial<TaskOptions<A>>) => task({ ...options, ...overrides }, fn),
  });
}

/**
 * Defines a flow. With a zod object schema as `params`, the flow takes one
 * object of parameters, validated before any task runs.
 * @example const getRepoInfo = flow({ name: 'get-repo-info' }, async (repo: string) => { ... });
 */
export function flow<S extends z.ZodObject, R>(
  options: FlowOptions<z.output<S>> & { params: S },
  fn: (params: z.output<S>) => R | Promise<R>,
): Flow<[params: z.input<S>], Awaited<R>>;
export function flow<S extends z.ZodTuple, R>(
  options: FlowOptions<z.output<S>> & { params: S },
  fn: (...args: z.output<S>) => R | Promise<R>,
): Flow<z.input<S>, Awaited<R>>;
export function flow<A extends unknown[], R>(options: FlowOptions, fn: (...args: A) => R | Promise<R>): Flow<A, Awaited<R>>;
export function flow(options: FlowOptions, fn: (...args: unknown[]) => unknown): Flow<unknown[], unknown> {
  if (typeof fn !== 'function') throw new InvalidArgumentError('flow() needs a function as its second argument');
  const definition: FlowDefinition = { kind: 'flow', options: resolveFlowOptions(options as FlowOptions<never>), fn };
  registerFlow(definition);
  const callable = (...args: unknown[]): Promise<unknown> => {
    try {
      const context = runContextStorage.getStore();
      if (context?.isAborted()) {
        throw new CancelledError(`flow '${definition.options.name}' was called after its caller was cancelled`);
      }
      const orchestrator = context?.orchestrator ?? getDefaultOrchestrator();
      return observed(orchestrator[INTERNAL].startFlow(definition, args, context?.flowRunRuntime).result());
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return Object.assign(callable, {
    flowName: definition.options.name,
    [DEFINITION]: definition,
    withOptions: (overrides: Partial<FlowOptions>) => flow({ ...options, ...overrides }, fn),
  });
}

/**
 * The argument rows of `map()`: iterables are fanned out, everything else (numbers, plain
 * objects, `null`, strings, and anything wrapped in `unmapped()`) goes whole to every run, as
 * Prefect's `map` does.
 */
function zipArguments(taskName: string, lists: readonly unknown[]): unknown[][] {
  const columns = lists.map((list) => (isMappable(list) ? Array.from(list) : new Unmapped(list instanceof Unmapped ? list.value : list)));
  const lengths = new Set(columns.filter((c): c is unknown[] => Array.isArray(c)).map((c) => c.length));
  if (lengths.size === 0) {
    throw new InvalidArgumentError(`map() of task '${taskName}' needs at least one iterable argument (an array, a Set, a generator, ...) to fan out over`);
  }
  if (lengths.size > 1) {
    throw new InvalidArgumentError(`map() of task '${taskName}' got iterables of different lengths: ${[...lengths].join(', ')}`);
  }
  const count = lengths.values().next().value as number;
  const rows: unknown[][] = new Array(count);
  for (let i = 0; i < count; i++) rows[i] = columns.map((c) => (c instanceof Unmapped ? c.value : c[i]));
  return rows;
}

/** An argument `map()` fans out over: an iterable object. A string is one value, not its characters. */
function isMappable(value: unknown): value is Iterable<unknown> {
  return typeof value === 'object' && value !== null && !(value instanceof Unmapped) && typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function';
}

/**
 * A run's result promise, marked as observed: a call the body forgot to await must not end the
 * process with an unhandled rejection when the run fails. The run's failure is logged as it
 * ends, and whoever awaits the promise still gets the error.
 */
function observed<T>(result: Promise<T>): Promise<T> {
  result.catch(() => {});
  return result;
}

export interface WaitOptions {
  /** Stop waiting after this many ms. @default no limit */
  timeoutMs?: number;
}

/** Waits for futures to finish; with a timeout, reports which did and which did not (Prefect's `wait`). */
export async function wait<F extends TaskFuture<unknown>>(
  futures: readonly F[],
  options: WaitOptions = {},
): Promise<{ done: F[]; notDone: F[] }> {
  if (options.timeoutMs !== undefined) assertTimerMs('wait() timeoutMs', options.timeoutMs);
  const done = new Set<F>();
  const all = Promise.all(futures.map((future) => future.wait().then(() => void done.add(future))));
  if (options.timeoutMs === undefined) await all;
  else {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, options.timeoutMs)))]);
    clearTimeout(timer);
  }
  return { done: futures.filter((f) => done.has(f)), notDone: futures.filter((f) => !done.has(f)) };
}

export type SettledResult<R> =
  | { status: 'fulfilled'; value: R; state: RunState }
  | { status: 'rejected'; reason: unknown; state: RunState };

/** Settles futures together: never rejects; each entry says how its run ended. */
export async function allSettled<R>(futures: readonly TaskFuture<R>[]): Promise<SettledResult<R>[]> {
  return Promise.all(
    futures.map(async (future): Promise<SettledResult<R>> => {
      const state = await future.wait();
      try {
        return { status: 'fulfilled', value: await future.result(), state };
      } catch (reason) {
        return { status: 'rejected', reason, state };
      }
    }),
  );
}
