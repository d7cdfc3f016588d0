/**
 * The run context: what a flow or task body can reach without threading it
 * through its arguments (AsyncLocalStorage, as Prefect's run context).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';
import { IllegalStateError, NestingDepthError } from '../errors.js';
import type { FlowRunRuntime } from './flow-run.js';
import type { Orchestrator } from './orchestrator.js';
import type { TaskRunRuntime } from './task-run.js';

export interface FlowRunInfo {
  id: string;
  name: string;
  flowName: string;
  parameters: unknown[];
}

export interface TaskRunInfo {
  id: string;
  name: string;
  taskName: string;
}

/** What a running body sees of its run. */
export interface RunContext {
  readonly orchestrator: Orchestrator;
  /** The current flow run; for a task, the flow run that called it (undefined outside flows). */
  readonly flowRun: FlowRunInfo | undefined;
  /** The current task run, inside a task body. */
  readonly taskRun: TaskRunInfo | undefined;
  /** The run-scoped logger: its lines name the run. */
  readonly logger: Logger;
  /** Aborted when the attempt is given up: timeout, cancellation, crash. */
  readonly signal: AbortSignal;
  /** Attempt number, from 1. */
  readonly attempt: number;
  /**
   * Stable across the attempts of one run, and across a resumed flow run:
   * pass it to external systems to make side effects idempotent.
   */
  readonly idempotencyKey: string;
}

/** Internal: the context plus the runtime objects that task and flow calls attach to. */
export interface InternalRunContext extends RunContext {
  /** Whether the attempt was given up, read without creating the `signal`. */
  readonly isAborted: () => boolean;
  readonly flowRunRuntime: FlowRunRuntime | undefined;
  readonly taskRunRuntime: TaskRunRuntime | undefined;
  /**
   * The depth of the run whose body executes, when that run's runtime is in another process
   * (a task body on a worker: the depth comes with the dispatch). Unset where a runtime above
   * says it.
   */
  readonly depth?: number;
}

// Kept on globalThis so that two copies of tenaz loaded in one process share one run context.
const STORAGE_KEY = Symbol.for('tenaz.runContextStorage');
const globals = globalThis as { [STORAGE_KEY]?: AsyncLocalStorage<InternalRunContext> };
export const runContextStorage = (globals[STORAGE_KEY] ??= new AsyncLocalStorage<InternalRunContext>());

/**
 * How many runs deep calls may nest: a chain of flow and task runs, each called from the body
 * of the one before it. Real flows nest a few levels. A flow that calls itself without end
 * reaches this in about 0.1 s and fails, the process's RSS about 15 MB above where it started
 * (measured; 40 MB at 1,000 deep). Without a limit it made thousands of runs a second until
 * the heap ran out and the process died.
 */
export const MAX_RUN_DEPTH = 200;

/**
 * The depth of a flow or task run about to be created by the code executing now: one more
 * than the run whose body makes the call, 1 outside any run. A task body's calls nest below
 * the task run, not beside it in its flow run, so a task that calls itself goes deeper too.
 * On a worker the task run's depth comes with its dispatch: calls made there nest below it too.
 * Read from the run context, so that the callers pass nothing and a run costs one number.
 * @throws NestingDepthError past `MAX_RUN_DEPTH`, before anything of the new run exists.
 */
export function depthOfNewRun(kind: 'flow' | 'task', name: string): number {
  const context = runContextStorage.getStore();
  const callerTask = context?.taskRunRuntime;
  const caller = callerTask ?? context?.flowRunRuntime;
  const depth = (caller?.depth ?? context?.depth ?? 0) + 1;
  if (depth > MAX_RUN_DEPTH) {
    const by = callerTask
      ? `task run '${callerTask.name}'`
      : caller
        ? `flow run '${caller.name}' of flow '${context?.flowRunRuntime?.flowName}'`
        : `task run '${context?.taskRun?.name}' on a worker`;
    throw new NestingDepthError(
      `${kind} '${name}' was called by ${by}, already ${MAX_RUN_DEPTH} runs deep, the most tenaz allows: ` +
        'a flow or task probably calls itself without end, directly or through other flows and tasks',
    );
  }
  return depth;
}

/** The context of the run whose body is executing; throws `IllegalStateError` outside any run. */
export function getRunContext(): RunContext {
  const context = runContextStorage.getStore();
  if (!context) throw new IllegalStateError('getRunContext() was called outside a flow or task run');
  return context;
}

/**
 * The run-scoped logger of the current flow or task run.
 * @example getRunLogger().info(`Stars: ${info.stargazers_count}`)
 */
export function getRunLogger(): Logger {
  const context = runContextStorage.getStore();
  if (!context) throw new IllegalStateError('getRunLogger() was called outside a flow or task run');
  return context.logger;
}

/**
 * Calls a user body so that a synchronous throw becomes a rejection, and a
 * non-promise return value a resolved promise.
 */
export function invokeBody(fn: (...args: unknown[]) => unknown, args: unknown[]): Promise<unknown> {
  try {
    const value = fn(...args);
    return value instanceof Promise ? value : Promise.resolve(value);
  } catch (thrown) {
    return Promise.reject(thrown);
  }
}

/** Runs `start` in a microtask, after the current machine action has returned. */
export function deferBody(start: () => Promise<unknown>): Promise<unknown> {
  return Promise.resolve().then(start);
}
