import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  CancelledError,
  FlowTimeoutError,
  ParameterValidationError,
  TaskTimeoutError,
  exponentialBackoff,
  flow,
  getRunContext,
  task,
  type HookInfo,
  type RetryDelay,
} from '../../../src/index.js';
import type { TaskStateEvent } from '../../../src/events.js';
import { runHooks } from '../../../src/runtime/run-common.js';
import { abortableSleep, createFixture, isTerminalEvent, names, recordEvents, rejection, runInFlow, sleep, uniqueName, type Fixture } from './helpers.js';

let fx: Fixture;

beforeEach(() => {
  fx = createFixture();
});

afterEach(async () => {
  await fx.orchestrator.close();
});

/** A task body that fails its first `failures` attempts, then returns 'ok'. */
function failingFirst(failures: number) {
  return async () => {
    if (getRunContext().attempt <= failures) throw new Error(`attempt ${getRunContext().attempt} fails`);
    return 'ok';
  };
}

const retryDelays = (events: TaskStateEvent[]): number[] =>
  events.filter((e) => e.state.name === 'AwaitingRetry').map((e) => (e.state.scheduledAt ?? NaN) - e.state.timestamp);

describe('task retries', () => {
  it('a task failing twice with retries 3 publishes Pending, Running, then AwaitingRetry/Retrying twice, then Completed', async () => {
    const flaky = task({ name: 'flaky', retries: 3 }, failingFirst(2));
    const { events, caller, flowResult } = await runInFlow(fx, () => flaky());
    expect(caller).toEqual({ status: 'fulfilled', value: 'ok' });
    expect(flowResult).toEqual({ status: 'fulfilled', value: 'ok' });
    expect(names(events)).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'AwaitingRetry', 'Retrying', 'Completed']);
    expect(events.map((e) => e.state.attempt)).toEqual([1, 1, 1, 2, 2, 3, 3]);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(events.map((e) => e.state.type)).toEqual(['PENDING', 'RUNNING', 'SCHEDULED', 'RUNNING', 'SCHEDULED', 'RUNNING', 'COMPLETED']);
    expect(new Set(events.map((e) => e.taskRunId)).size).toBe(1);
  });

  it('a task that always fails with retries 1 ends Failed and its caller gets the original error instance', async () => {
    const thrown: Error[] = [];
    const broken = task({ name: 'broken', retries: 1 }, async () => {
      const error = new RangeError(`attempt ${getRunContext().attempt}`);
      thrown.push(error);
      throw error;
    });
    const { events, caller } = await runInFlow(fx, () => broken());
    expect(thrown).toHaveLength(2);
    expect(rejection(caller)).toBe(thrown[1]);
    expect(names(events)).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Failed']);
    expect(events.at(-1)?.state).toMatchObject({ type: 'FAILED', attempt: 2, errorName: 'RangeError', errorCode: 'USER_ERROR' });
  });

  it('retryDelayMs as a list schedules each retry by its entry', async () => {
    const flaky = task({ name: 'listed', retries: 2, retryDelayMs: [50, 100] }, failingFirst(2));
    const { events } = await runInFlow(fx, () => flaky());
    expect(retryDelays(events)).toEqual([50, 100]);
    expect(events.at(-1)?.state.name).toBe('Completed');
  });

  it.each<[string, RetryDelay]>([
    ['a function of the attempt', (attempt) => 10 * 2 ** (attempt - 1)],
    ['exponentialBackoff({ baseMs: 10 })', exponentialBackoff({ baseMs: 10 })],
  ])('retryDelayMs as %s gives 10, 20, 40', async (_, retryDelayMs) => {
    const flaky = task({ name: 'backoff', retries: 3, retryDelayMs }, failingFirst(3));
    const { events } = await runInFlow(fx, () => flaky());
    expect(retryDelays(events)).toEqual([10, 20, 40]);
    expect(events.at(-1)?.state).toMatchObject({ name: 'Completed', attempt: 4 });
  });

  it('retryJitterFactor with random() at its top gives the upper bound of the spread', async () => {
    const jittery = createFixture({ random: () => 1 });
    try {
      const flaky = task({ name: 'jitter', retries: 1, retryDelayMs: 20, retryJitterFactor: 0.5 }, failingFirst(1));
      const { events } = await runInFlow(jittery, () => flaky());
      expect(retryDelays(events)).toEqual([30]);
    } finally {
      await jittery.orchestrator.close();
    }
  });

  it('retryOn returning false stops retries after the first failure', async () => {
    class FatalError extends Error {}
    const seen: Error[] = [];
    let calls = 0;
    const fatal = task(
      {
        name: 'fatal',
        retries: 3,
        retryOn: (error) => {
          seen.push(error);
          return !(error instanceof FatalError);
        },
      },
      async () => {
        calls++;
        throw new FatalError('do not retry');
      },
    );
    const { events, caller } = await runInFlow(fx, () => fatal());
    expect(calls).toBe(1);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(FatalError);
    expect(names(events)).toEqual(['Pending', 'Running', 'Failed']);
    expect(rejection(caller)).toBeInstanceOf(FatalError);
  });
});

describe('flow retries', () => {
  it('flow-level retries re-run the flow body', async () => {
    let bodies = 0;
    const main = flow({ name: uniqueName('flow-retries'), retries: 2 }, async () => {
      bodies++;
      if (getRunContext().attempt < 3) throw new Error('flow body fails');
      return getRunContext().attempt;
    });
    const recorder = recordEvents(fx.orchestrator, { kind: 'flow' });
    const run = fx.orchestrator.start(main);
    await expect(run.result()).resolves.toBe(3);
    await recorder.untilFlowEnds(run.id);
    expect(bodies).toBe(3);
    expect(names(recorder.flowEvents(run.id))).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'AwaitingRetry', 'Retrying', 'Completed']);
    recorder.close();
  });

  it('a flow retry waits the delay its policy gives, which its AwaitingRetry event schedules', async () => {
    const main = flow({ name: uniqueName('flow-retry-delays'), retries: 2, retryDelayMs: [0, 60] }, async () => {
      if (getRunContext().attempt < 3) throw new Error('flow body fails');
      return 'done';
    });
    const recorder = recordEvents(fx.orchestrator, { kind: 'flow' });
    const run = fx.orchestrator.start(main);
    await expect(run.result()).resolves.toBe('done');
    await recorder.untilFlowEnds(run.id);
    const events = recorder.flowEvents(run.id);
    const waits = events.filter((e) => e.state.name === 'AwaitingRetry').map((e) => (e.state.scheduledAt ?? NaN) - e.state.timestamp);
    expect(waits).toEqual([0, 60]);
    const retries = events.filter((e) => e.state.name === 'Retrying');
    expect(retries[1]!.state.timestamp - events.findLast((e) => e.state.name === 'AwaitingRetry')!.state.timestamp).toBeGreaterThanOrEqual(55);
    recorder.close();
  });
});

describe('the error a failed flow run rejects with', () => {
  // Bug: FlowRunRuntime.#runAttempt calls cancelChildren() when the body throws, which aborts the
  // attempt's own AbortController; startBody's rejection handler then sees `signal.aborted` and
  // never records the error, so result() rejects with `new Error(state.message)` instead.
  it('bug: a flow body that rethrows a task error rejects result() with a plain Error, not the original instance', async () => {
    const original = new RangeError('the original');
    const broken = task({ name: 'broken-once' }, async () => {
      throw original;
    });
    const { caller, flowResult } = await runInFlow(fx, () => broken());
    expect(rejection(caller)).toBe(original);
    expect(rejection(flowResult)).toBe(original);
  });

  it('bug: a flow whose task timed out rejects result() with a plain Error, losing TaskTimeoutError and its code', async () => {
    const slow = task({ name: 'slow-in-flow', timeoutMs: 10 }, async () => abortableSleep(1000, getRunContext().signal));
    const { caller, flowResult } = await runInFlow(fx, () => slow());
    expect(rejection(caller)).toBeInstanceOf(TaskTimeoutError);
    const reason = rejection(flowResult) as TaskTimeoutError;
    expect(reason).toBeInstanceOf(TaskTimeoutError);
    expect(reason.code).toBe('TASK_TIMED_OUT');
  });

  it('bug: a flow body that throws on its own rejects result() with a plain Error, not the thrown instance', async () => {
    class DomainError extends Error {}
    const thrown = new DomainError('flow body says no');
    const main = flow({ name: uniqueName('body-throws') }, async () => {
      throw thrown;
    });
    await expect(fx.orchestrator.start(main).result()).rejects.toBe(thrown);
  });
});

describe('timeouts', () => {
  it('a task past its timeoutMs ends TimedOut, its signal is aborted with TaskTimeoutError and its late result is ignored', async () => {
    let signal: AbortSignal | undefined;
    let lateResultReturned = false;
    const slow = task({ name: 'slow', timeoutMs: 20 }, async () => {
      signal = getRunContext().signal;
      await sleep(60);
      lateResultReturned = true;
      return 'too late';
    });
    const { events, caller } = await runInFlow(fx, () => slow());
    const reason = rejection(caller) as TaskTimeoutError;
    expect(reason).toBeInstanceOf(TaskTimeoutError);
    expect(reason.code).toBe('TASK_TIMED_OUT');
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(TaskTimeoutError);
    await sleep(70);
    expect(lateResultReturned).toBe(true);
    expect(names(events)).toEqual(['Pending', 'Running', 'TimedOut']);
    expect(events.at(-1)?.state).toMatchObject({ type: 'FAILED', errorName: 'TaskTimeoutError', errorCode: 'TASK_TIMED_OUT' });
  });

  it('a timed-out task with retries 1 runs a second attempt, and the first attempt\'s late result is ignored', async () => {
    const attempts: number[] = [];
    const slowOnce = task({ name: 'slow-once', timeoutMs: 25, retries: 1 }, async () => {
      const { attempt } = getRunContext();
      attempts.push(attempt);
      if (attempt === 1) await sleep(60);
      return `attempt ${attempt}`;
    });
    const { events, caller } = await runInFlow(fx, () => slowOnce());
    await sleep(60);
    expect(caller).toEqual({ status: 'fulfilled', value: 'attempt 2' });
    expect(attempts).toEqual([1, 2]);
    expect(names(events)).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Completed']);
    expect(events[2]?.state.errorName).toBe('TaskTimeoutError');
  });

  it('a flow past its timeoutMs ends TimedOut and its caller gets FlowTimeoutError', async () => {
    const main = flow({ name: uniqueName('slow-flow'), timeoutMs: 30 }, async () => {
      await abortableSleep(2000, getRunContext().signal);
    });
    const recorder = recordEvents(fx.orchestrator, { kind: 'flow' });
    const run = fx.orchestrator.start(main);
    const error = (await run.result().catch((e: unknown) => e)) as FlowTimeoutError;
    expect(error).toBeInstanceOf(FlowTimeoutError);
    expect(error.code).toBe('FLOW_TIMED_OUT');
    await recorder.untilFlowEnds(run.id);
    expect(names(recorder.flowEvents(run.id))).toEqual(['Pending', 'Running', 'TimedOut']);
    expect(run.state).toMatchObject({ name: 'TimedOut', type: 'FAILED' });
    recorder.close();
  });
});

describe('a flow timeout and its task runs', () => {
  it("a flow past its timeoutMs cancels its running task runs: their signals abort, they end Cancelled, not Completed later", async () => {
    const signals: AbortSignal[] = [];
    const long = task({ name: uniqueName('long') }, async () => {
      const { signal } = getRunContext();
      signals.push(signal);
      await abortableSleep(2000, signal);
      return 'slept full';
    });
    const main = flow({ name: uniqueName('timed-flow'), timeoutMs: 100 }, async () => Promise.all([long.submit(), long.submit()]));
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(main);
    await expect(run.result()).rejects.toBeInstanceOf(FlowTimeoutError);
    const taskEnds = () => recorder.events.filter((e) => e.type === 'task.state' && e.flowRunId === run.id && isTerminalEvent(e));
    // Without the cancel they would end too, Completed, once their 2 s are up.
    await recorder.until(() => taskEnds().length === 2, 5000);
    expect(taskEnds().map((e) => e.state.name)).toEqual(['Cancelled', 'Cancelled']);
    expect(signals).toHaveLength(2);
    expect(signals.every((signal) => signal.aborted)).toBe(true);
    recorder.close();
  });

  it('a flow whose first attempt timed out runs its second attempt to the end: the first attempt\'s cancelling does not reach it', async () => {
    const long = task({ name: uniqueName('long') }, async () => abortableSleep(2000, getRunContext().signal));
    const quick = task({ name: uniqueName('quick') }, async () => 'quick');
    const main = flow({ name: uniqueName('retried-timed-flow'), timeoutMs: 150, retries: 1 }, async () => {
      const { attempt, signal } = getRunContext();
      if (attempt === 1) return long();
      await abortableSleep(50, signal);
      return quick();
    });
    const recorder = recordEvents(fx.orchestrator, { kind: 'flow' });
    const run = fx.orchestrator.start(main);
    await expect(run.result()).resolves.toBe('quick');
    await recorder.untilFlowEnds(run.id);
    expect(names(recorder.flowEvents(run.id))).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Completed']);
    recorder.close();
  });
});

describe('flow parameter validation', () => {
  const schema = z.object({ repoName: z.string(), limit: z.number().default(5), page: z.coerce.number() });

  it('bad parameters fail the run with ParameterValidationError naming the field, before any task runs', async () => {
    let taskCalls = 0;
    const fetchRepo = task({ name: 'fetch-repo' }, async () => void taskCalls++);
    const main = flow({ name: uniqueName('params'), params: schema }, async () => fetchRepo());
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(main, { repoName: 42 as unknown as string, page: 1 });
    const error = (await run.result().catch((e: unknown) => e)) as ParameterValidationError;
    expect(error).toBeInstanceOf(ParameterValidationError);
    expect(error.code).toBe('PARAMETER_VALIDATION');
    expect(error.message).toContain('repoName');
    await recorder.untilFlowEnds(run.id);
    expect(taskCalls).toBe(0);
    expect(recorder.taskEvents()).toEqual([]);
    expect(recorder.flowEvents(run.id).at(-1)?.state).toMatchObject({ name: 'Failed', errorCode: 'PARAMETER_VALIDATION' });
    recorder.close();
  });

  it('good parameters reach the body with defaults and coercion applied', async () => {
    const main = flow({ name: uniqueName('params-ok'), params: schema }, async (params) => params);
    const run = fx.orchestrator.start(main, { repoName: 'a/b', page: '3' });
    await expect(run.result()).resolves.toEqual({ repoName: 'a/b', limit: 5, page: 3 });
  });
});

describe('hooks', () => {
  it('onCompletion and onFailure are called with the run info', async () => {
    const calls: HookInfo[] = [];
    const good = task({ name: 'good', onCompletion: (info) => void calls.push(info) }, async () => 41);
    const bad = task({ name: 'bad', onFailure: (info) => void calls.push(info) }, async () => {
      throw new Error('bad task');
    });
    const flowName = uniqueName('hooks');
    const main = flow({ name: flowName, onFailure: [(info) => void calls.push(info)] }, async () => {
      await good();
      await bad();
    });
    const run = fx.orchestrator.start(main);
    await run.wait();
    expect(calls.map((c) => [c.kind, c.name, c.state.name])).toEqual([
      ['task', 'good', 'Completed'],
      ['task', 'bad', 'Failed'],
      ['flow', flowName, 'Failed'],
    ]);
    expect(calls[0]).toMatchObject({ runName: 'good-0', runId: expect.any(String), result: 41, error: undefined });
    expect(calls[1]?.error?.message).toBe('bad task');
    expect(calls[2]).toMatchObject({ runId: run.id, runName: run.name });
    expect(calls[2]?.error).toBeInstanceOf(Error);
  });

  it('a hook that throws is logged as an error and does not change the run state', async () => {
    const main = flow(
      {
        name: uniqueName('hook-throws'),
        onCompletion: () => {
          throw new Error('hook broke');
        },
      },
      async () => 'done',
    );
    const run = fx.orchestrator.start(main);
    await expect(run.result()).resolves.toBe('done');
    expect(run.state?.name).toBe('Completed');
    const record = fx.records.find((r) => r.level === 50 && (r.err as { message?: string } | undefined)?.message === 'hook broke');
    expect(record).toMatchObject({ flowRunId: run.id, err: { type: 'Error', message: 'hook broke' } });
  });
});

describe('a hook that never settles', () => {
  it('is left behind after its time limit, with a warning: the next hook runs and the run settles', async () => {
    const calls: string[] = [];
    const info: HookInfo = { kind: 'task', runId: 'id', runName: 'hung-0', name: 'hung', state: { type: 'COMPLETED', name: 'Completed', timestamp: 0, attempt: 1 } };
    const hung = () => new Promise<void>(() => calls.push('hung'));
    await runHooks([hung, () => void calls.push('next')], info, fx.orchestrator.logger, 50);
    expect(calls).toEqual(['hung', 'next']);
    expect(fx.records.find((r) => r.level === 40)?.msg).toBe("A hook of task run 'hung-0' did not settle within 50 ms; the run goes on without waiting for it");
  });
});

describe('cancellation', () => {
  it('cancelling a flow run aborts every running task body, ends the tasks and the flow Cancelled', async () => {
    const signals: AbortSignal[] = [];
    const wait = task({ name: 'wait' }, async () => {
      const { signal } = getRunContext();
      signals.push(signal);
      await abortableSleep(5000, signal);
    });
    const main = flow({ name: uniqueName('cancel') }, async () => {
      await Promise.all([wait.submit(), wait.submit()]);
    });
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(main);
    await recorder.until((e) => e.type === 'task.state' && e.taskRunName === 'wait-1' && e.state.name === 'Running');
    run.cancel();
    const error = (await run.result().catch((e: unknown) => e)) as CancelledError;
    expect(error).toBeInstanceOf(CancelledError);
    expect(error.code).toBe('CANCELLED');
    await recorder.untilFlowEnds(run.id);
    expect(signals).toHaveLength(2);
    for (const signal of signals) {
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toBeInstanceOf(CancelledError);
    }
    for (const runName of ['wait-0', 'wait-1']) {
      expect(names(recorder.taskEvents().filter((e) => e.taskRunName === runName))).toEqual(['Pending', 'Running', 'Cancelled']);
    }
    expect(recorder.taskEvents()).toHaveLength(6);
    expect(names(recorder.flowEvents(run.id))).toEqual(['Pending', 'Running', 'Cancelling', 'Cancelled']);
    expect(run.state?.type).toBe('CANCELLED');
    recorder.close();
  });
  // Bug: FlowRunRuntime.onState copies `context.failure` into every state but Completed, Running and
  // Retrying, and the machine keeps the failure of an earlier attempt, so Cancelling names its error.
  it("a body's abort listener runs in its run's context, wherever the cancel comes from", async () => {
    let listenerSaw: string | undefined;
    const listening = task({ name: uniqueName('listening') }, async () => {
      const { signal } = getRunContext();
      await new Promise<void>((resolve) =>
        signal.addEventListener('abort', () => {
          try {
            listenerSaw = getRunContext().taskRun?.name;
          } catch (error) {
            listenerSaw = String(error);
          }
          resolve();
        }),
      );
    });
    const main = flow({ name: uniqueName('cancelled-listening') }, async () => listening());
    const run = fx.orchestrator.start(main);
    await sleep(30);
    run.cancel();
    await run.wait();
    expect(listenerSaw).toMatch(/^listening-.*-0$/);
  });

  it("bug: the Cancelling event of a retried flow run carries the earlier attempt's error", async () => {
    const main = flow({ name: uniqueName('cancel-after-retry'), retries: 1 }, async () => {
      if (getRunContext().attempt === 1) throw new Error('first attempt');
      await abortableSleep(5000, getRunContext().signal);
    });
    const recorder = recordEvents(fx.orchestrator, { kind: 'flow' });
    const run = fx.orchestrator.start(main);
    await recorder.until((e) => e.state.name === 'Retrying');
    run.cancel();
    await recorder.untilFlowEnds(run.id);
    const cancelling = recorder.flowEvents(run.id).find((e) => e.state.name === 'Cancelling');
    expect(cancelling?.state).toMatchObject({ type: 'CANCELLING', attempt: 2 });
    expect(cancelling?.state.errorName).toBeUndefined();
    expect(cancelling?.state.message).toBeUndefined();
    recorder.close();
  });
});

describe('caching', () => {
  it('a run with the same cacheKey ends Cached with the first result, until cacheExpirationMs has passed', async () => {
    let clock = 1_000_000;
    const cached = createFixture({ now: () => clock });
    try {
      let bodies = 0;
      const lookup = task({ name: 'lookup', cacheKey: (id: string) => id, cacheExpirationMs: 1000 }, async (id: string) => {
        bodies++;
        return { id, n: bodies };
      });
      const main = flow({ name: uniqueName('cache') }, async (id: string) => lookup(id));
      const recorder = recordEvents(cached.orchestrator, { kind: 'task' });
      const runOnce = async () => {
        const value = await cached.orchestrator.start(main, 'k1').result();
        const last = await recorder.untilTaskEnds();
        recorder.events.length = 0;
        return { value, state: last.state.name };
      };
      expect(await runOnce()).toEqual({ value: { id: 'k1', n: 1 }, state: 'Completed' });
      expect(await runOnce()).toEqual({ value: { id: 'k1', n: 1 }, state: 'Cached' });
      expect(bodies).toBe(1);
      clock += 1001;
      expect(await runOnce()).toEqual({ value: { id: 'k1', n: 2 }, state: 'Completed' });
      expect(bodies).toBe(2);
      recorder.close();
    } finally {
      await cached.orchestrator.close();
    }
  });
});
