/**
 * The nesting-depth limit: a flow or task that calls itself without end (directly, inside a
 * task body, or through another flow) fails with NestingDepthError once its chain of runs is
 * MAX_RUN_DEPTH deep, instead of creating runs until the heap runs out and the process dies.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NestingDepthError, flow, setDefaultOrchestrator, task, type FlowRun } from '../../../src/index.js';
import { MAX_RUN_DEPTH } from '../../../src/runtime/context.js';
import type { FlowStateEvent, RunEvent, TaskStateEvent } from '../../../src/events.js';
import { createFixture, recordEvents, uniqueName, type EventRecorder, type Fixture } from './helpers.js';

/** Each shape ends within a few hundred ms; this bounds a regression to a failed test, not a dead process. */
const RECURSION_TEST_TIMEOUT_MS = 10_000;

let fx: Fixture;
let processErrors: unknown[];
const onProcessError = (error: unknown): void => void processErrors.push(error);

beforeEach(() => {
  fx = createFixture();
  processErrors = [];
  process.on('unhandledRejection', onProcessError);
  process.on('uncaughtException', onProcessError);
});

afterEach(async () => {
  process.off('unhandledRejection', onProcessError);
  process.off('uncaughtException', onProcessError);
  await fx.orchestrator.close();
});

/** The last event of each run, by run id. */
function lastEvents<E extends RunEvent>(events: E[], idOf: (event: E) => string): Map<string, E> {
  const last = new Map<string, E>();
  for (const event of events) last.set(idOf(event), event);
  return last;
}

/** The error the flow run `startRun` starts ended with, once every event of its runs is recorded. */
async function failureOf(startRun: () => FlowRun<unknown>): Promise<{ error: NestingDepthError; recorder: EventRecorder }> {
  const recorder = recordEvents(fx.orchestrator);
  const run = startRun();
  const error = (await run.result().then(
    (value) => new Error(`the flow run completed with ${String(value)}`),
    (reason: unknown) => reason,
  )) as NestingDepthError;
  await recorder.untilFlowEnds(run.id);
  recorder.close();
  return { error, recorder };
}

/** What every recursion test ends with: the typed error at the top, no process error, and a process that still runs flows. */
async function expectRecoveredFrom(error: NestingDepthError, calledName: string): Promise<void> {
  expect(error).toBeInstanceOf(NestingDepthError);
  expect(error.code).toBe('NESTING_TOO_DEEP');
  expect(error.retryable).toBe(false);
  expect(error.message).toContain(`'${calledName}'`);
  expect(error.message).toContain(`${MAX_RUN_DEPTH} runs deep`);
  expect(error.message).toContain('calls itself without end');
  const add = task({ name: uniqueName('add') }, async (a: number, b: number) => a + b);
  const normal = flow({ name: uniqueName('normal') }, async () => add(1, 2));
  await expect(fx.orchestrator.start(normal).result()).resolves.toBe(3);
  expect(fx.orchestrator.activeRuns).toBe(0);
  expect(processErrors).toEqual([]);
}

describe('runs that call themselves without end', () => {
  it(
    'a flow that calls itself fails at depth MAX_RUN_DEPTH: every one of its runs ends Failed with NestingDepthError',
    async () => {
      const name = uniqueName('self-calling');
      const selfCalling: (n: number) => Promise<number> = flow({ name }, async (n: number) => selfCalling(n + 1));
      const { error, recorder } = await failureOf(() => fx.orchestrator.start(selfCalling, 0));
      const ends = lastEvents(recorder.flowEvents(), (event: FlowStateEvent) => event.flowRunId);
      // The runs at depths 1 to MAX_RUN_DEPTH; the call that would have been one deeper made no run.
      expect(ends.size).toBe(MAX_RUN_DEPTH);
      for (const end of ends.values()) expect(end.state).toMatchObject({ name: 'Failed', errorName: 'NestingDepthError', errorCode: 'NESTING_TOO_DEEP' });
      await expectRecoveredFrom(error, name);
    },
    RECURSION_TEST_TIMEOUT_MS,
  );

  it(
    'a task that calls itself inside a flow fails at depth MAX_RUN_DEPTH, its runs not retried',
    async () => {
      const name = uniqueName('self-calling-task');
      const selfCalling: (n: number) => Promise<number> = task({ name, retries: 2 }, async (n: number) => selfCalling(n + 1));
      const { error, recorder } = await failureOf(() => fx.orchestrator.start(flow({ name: uniqueName('host') }, async () => selfCalling(0))));
      const taskEvents = recorder.taskEvents();
      const ends = lastEvents(taskEvents, (event: TaskStateEvent) => event.taskRunId);
      // The flow run is depth 1; its task runs nest below one another, not beside each other.
      expect(ends.size).toBe(MAX_RUN_DEPTH - 1);
      for (const end of ends.values()) expect(end.state).toMatchObject({ name: 'Failed', errorCode: 'NESTING_TOO_DEEP' });
      expect(taskEvents.filter((event) => event.state.name === 'AwaitingRetry')).toEqual([]);
      await expectRecoveredFrom(error, name);
    },
    RECURSION_TEST_TIMEOUT_MS,
  );

  it(
    'a task that calls itself outside any flow fails at depth MAX_RUN_DEPTH',
    async () => {
      const name = uniqueName('self-calling-lone-task');
      const selfCalling: (n: number) => Promise<number> = task({ name }, async (n: number) => selfCalling(n + 1));
      // Outside flows a task runs on the ambient orchestrator: make it the test's.
      const previous = setDefaultOrchestrator(fx.orchestrator);
      try {
        const error = (await selfCalling(0).catch((reason: unknown) => reason)) as NestingDepthError;
        await expectRecoveredFrom(error, name);
      } finally {
        setDefaultOrchestrator(previous);
      }
    },
    RECURSION_TEST_TIMEOUT_MS,
  );

  it(
    'two flows that call each other without end fail at depth MAX_RUN_DEPTH',
    async () => {
      const pingName = uniqueName('ping');
      const pongName = uniqueName('pong');
      const ping: (n: number) => Promise<number> = flow({ name: pingName }, async (n: number) => pong(n + 1));
      const pong: (n: number) => Promise<number> = flow({ name: pongName }, async (n: number) => ping(n + 1));
      const { error, recorder } = await failureOf(() => fx.orchestrator.start(ping, 0));
      const ends = lastEvents(recorder.flowEvents(), (event: FlowStateEvent) => event.flowRunId);
      expect(ends.size).toBe(MAX_RUN_DEPTH);
      expect(new Set([...ends.values()].map((end) => end.flowName))).toEqual(new Set([pingName, pongName]));
      for (const end of ends.values()) expect(end.state).toMatchObject({ name: 'Failed', errorCode: 'NESTING_TOO_DEEP' });
      // Depth MAX_RUN_DEPTH (even) is a pong run: the refused call was to ping.
      await expectRecoveredFrom(error, pingName);
    },
    RECURSION_TEST_TIMEOUT_MS,
  );

  it('a body may catch the error: its run goes on as with any failed call', async () => {
    const selfCalling: (n: number) => Promise<number> = flow({ name: uniqueName('catching') }, async (n: number) => {
      try {
        return await selfCalling(n + 1);
      } catch (error) {
        if (error instanceof NestingDepthError) return n;
        throw error;
      }
    });
    // The run at depth MAX_RUN_DEPTH got n = MAX_RUN_DEPTH - 1 and its call was refused.
    await expect(fx.orchestrator.start(selfCalling, 0).result()).resolves.toBe(MAX_RUN_DEPTH - 1);
    expect(processErrors).toEqual([]);
  });
});

describe('deep but finite nesting', () => {
  it('subflows 50 deep, each calling a task that calls a task, complete', async () => {
    const double = task({ name: 'double' }, async (n: number) => n * 2);
    const viaTask = task({ name: 'via-task' }, async (n: number) => double(n));
    const descend: (remaining: number) => Promise<number> = flow({ name: uniqueName('descend') }, async (remaining: number) => {
      const doubled = await viaTask(remaining);
      return remaining === 1 ? doubled : doubled + (await descend(remaining - 1));
    });
    // 2 * (1 + 2 + ... + 50); the deepest chain is 50 flow runs and two task runs below them.
    await expect(fx.orchestrator.start(descend, 50).result()).resolves.toBe(2550);
    expect(processErrors).toEqual([]);
  });

  it('a chain of exactly MAX_RUN_DEPTH runs completes; one run more is refused', async () => {
    const chain: (length: number) => Promise<number> = flow({ name: uniqueName('chain') }, async (length: number) =>
      length === 1 ? 1 : 1 + (await chain(length - 1)),
    );
    await expect(fx.orchestrator.start(chain, MAX_RUN_DEPTH).result()).resolves.toBe(MAX_RUN_DEPTH);
    await expect(fx.orchestrator.start(chain, MAX_RUN_DEPTH + 1).result()).rejects.toBeInstanceOf(NestingDepthError);
  });
});
