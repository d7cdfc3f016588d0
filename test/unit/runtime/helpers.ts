/**
 * Fixtures for the runtime tests: an orchestrator with an in-memory pino
 * destination whose records can be parsed, and an event recorder over `watch()`.
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { flow } from '../../../src/api.js';
import type { RunEvent, EventFilter, FlowStateEvent, TaskStateEvent } from '../../../src/events.js';
import { createOrchestrator, type Orchestrator, type OrchestratorOptions } from '../../../src/runtime/orchestrator.js';

export type LogRecord = Record<string, unknown> & { level: number; msg: string };

/** A debug-level pino logger writing JSON lines into `records`. */
export function createMemoryLogger(level: pino.LevelWithSilent = 'debug'): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  let partial = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      partial += chunk.toString();
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') records.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  return { logger: pino({ level }, stream), records };
}

export interface Fixture {
  orchestrator: Orchestrator;
  logger: Logger;
  records: LogRecord[];
}

/** An orchestrator of its own, logging into memory. Close it in `afterEach`. */
export function createFixture(options: Omit<OrchestratorOptions, 'logger'> = {}): Fixture {
  const { logger, records } = createMemoryLogger();
  const orchestrator = createOrchestrator({ ...options, logger });
  return { orchestrator, logger, records };
}

export interface EventRecorder {
  readonly events: RunEvent[];
  /** Resolves with the first recorded event matching `predicate` (already recorded or later). */
  until(predicate: (event: RunEvent) => boolean, timeoutMs?: number): Promise<RunEvent>;
  /** Resolves once a root flow run (or the one given) has published a terminal state. */
  untilFlowEnds(flowRunId?: string): Promise<FlowStateEvent>;
  /** Resolves once a task run (or the one given) has published a terminal state. */
  untilTaskEnds(taskRunId?: string): Promise<TaskStateEvent>;
  flowEvents(flowRunId?: string): FlowStateEvent[];
  taskEvents(taskRunId?: string): TaskStateEvent[];
  close(): void;
}

const TERMINAL = new Set(['Completed', 'Cached', 'Failed', 'TimedOut', 'Crashed', 'Cancelled']);

export function isTerminalEvent(event: RunEvent): boolean {
  return TERMINAL.has(event.state.name);
}

/** Starts watching at once (before the flow starts) and records every event. */
export function recordEvents(orchestrator: Orchestrator, filter: EventFilter = {}): EventRecorder {
  const stream = orchestrator.watch(filter);
  const events: RunEvent[] = [];
  const waiters = new Set<{ predicate: (e: RunEvent) => boolean; resolve: (e: RunEvent) => void }>();
  void (async () => {
    for await (const event of stream) {
      events.push(event);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(event)) {
          waiters.delete(waiter);
          waiter.resolve(event);
        }
      }
    }
  })();
  const until = (predicate: (event: RunEvent) => boolean, timeoutMs = 5000): Promise<RunEvent> => {
    const found = events.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no matching event within ${timeoutMs} ms; got ${describe(events)}`));
      }, timeoutMs);
      const waiter = {
        predicate,
        resolve: (event: RunEvent) => {
          clearTimeout(timer);
          resolve(event);
        },
      };
      waiters.add(waiter);
    });
  };
  return {
    events,
    until,
    untilFlowEnds: (flowRunId) =>
      until(
        (e) =>
          e.type === 'flow.state' &&
          isTerminalEvent(e) &&
          (flowRunId === undefined ? e.parentFlowRunId === undefined : e.flowRunId === flowRunId),
      ) as Promise<FlowStateEvent>,
    untilTaskEnds: (taskRunId) =>
      until(
        (e) => e.type === 'task.state' && isTerminalEvent(e) && (taskRunId === undefined || e.taskRunId === taskRunId),
      ) as Promise<TaskStateEvent>,
    flowEvents: (flowRunId) =>
      events.filter((e): e is FlowStateEvent => e.type === 'flow.state' && (flowRunId === undefined || e.flowRunId === flowRunId)),
    taskEvents: (taskRunId) =>
      events.filter((e): e is TaskStateEvent => e.type === 'task.state' && (taskRunId === undefined || e.taskRunId === taskRunId)),
    close: () => stream.close(),
  };
}

function describe(events: RunEvent[]): string {
  return JSON.stringify(events.map((e) => `${e.type === 'task.state' ? e.taskRunName : e.flowRunName}:${e.state.name}`));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves after `ms`, or rejects with the signal's reason once it is aborted. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The state names of a list of events, in order. */
export const names = (events: RunEvent[]): string[] => events.map((e) => e.state.name);

let flowCounter = 0;
/** A unique name so concurrent tests never share a subject. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${++flowCounter}`;
}

export interface TaskOutcome {
  events: TaskStateEvent[];
  /** What the task's caller (the flow body) got: the value, or the error it caught. */
  caller: PromiseSettledResult<unknown>;
  /** What the flow run's caller got from `result()`. */
  flowResult: PromiseSettledResult<unknown>;
}

/** Runs `call` (a task call) in a one-task flow; returns the task's events once the flow has ended. */
export async function runInFlow(fixture: Fixture, call: () => Promise<unknown>): Promise<TaskOutcome> {
  let caller: PromiseSettledResult<unknown> | undefined;
  const main = flow({ name: uniqueName('in-flow') }, async () => {
    try {
      const value = await call();
      caller = { status: 'fulfilled', value };
      return value;
    } catch (reason) {
      caller = { status: 'rejected', reason };
      throw reason;
    }
  });
  const recorder = recordEvents(fixture.orchestrator);
  const run = fixture.orchestrator.start(main);
  const [flowResult] = await Promise.allSettled([run.result()]);
  await recorder.untilFlowEnds(run.id);
  recorder.close();
  return { events: recorder.taskEvents(), caller: caller!, flowResult: flowResult! };
}

export const rejection = (result: PromiseSettledResult<unknown>): unknown =>
  result.status === 'rejected' ? result.reason : `fulfilled with ${String(result.value)}`;

/** Listens for unhandled rejections and uncaught exceptions until `stop()`. */
export function watchProcessErrors() {
  const unhandledRejections: unknown[] = [];
  const uncaughtExceptions: unknown[] = [];
  const onRejection = (reason: unknown) => void unhandledRejections.push(reason);
  const onException = (error: unknown) => void uncaughtExceptions.push(error);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    unhandledRejections,
    uncaughtExceptions,
    stop() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}
