/**
 * The task-run machine: one task run across all of its attempts.
 *
 * Pure. The runtime supplies, through `provide()`, the actions that do I/O:
 * - `startAttempt` starts attempt `context.attempt` of the body, wherever it
 *   runs (in this process, or on a worker), and later sends back
 *   `attempt.succeeded` or `attempt.failed` carrying that attempt number;
 * - `abortAttempt` gives the attempt up (its body's `AbortSignal` is aborted);
 * - `lookupCache` answers `cache.hit` or `cache.miss`;
 * - `publish` runs on entry to each published state;
 * - `reportFailure` tells the supervisor an attempt failed; the supervisor
 *   answers `supervisor.restart` or `supervisor.giveUp`.
 *
 * The attempt number is the fencing token: an outcome that names another
 * attempt than the current one (a zombie, a late result) is ignored.
 * Retry decisions are not made here: a failed attempt waits in `Supervised`
 * for its supervisor, one-for-one, as in Erlang/OTP.
 */
import { assign, enqueueActions, setup } from 'xstate';
import type { FailureKind, StateError, StateName } from './state.js';

export interface TaskRunInput {
  taskRunId: string;
  /** Per-attempt time limit in ms; none when undefined. */
  timeoutMs?: number;
  /** Whether the task has a cache key to look up before running. */
  hasCacheKey?: boolean;
  /** First attempt number; above 1 when a run resumes. @default 1 */
  attempt?: number;
}

export interface TaskRunFailure {
  kind: FailureKind;
  error: StateError;
}

export interface TaskRunContext {
  taskRunId: string;
  attempt: number;
  timeoutMs: number | undefined;
  hasCacheKey: boolean;
  /** Delay before the next attempt, as decided by the supervisor. */
  retryDelayMs: number;
  failure: TaskRunFailure | undefined;
  /** Attempts that failed by error or timeout. */
  failures: number;
  /** Attempts lost to a crash. */
  crashes: number;
  result: unknown;
}

export type TaskRunEvent =
  | { type: 'attempt.succeeded'; attempt: number; value: unknown }
  | { type: 'attempt.failed'; attempt: number; error: StateError }
  /** The worker running the attempt was lost (missed heartbeats). */
  | { type: 'attempt.crashed'; attempt: number; error: StateError }
  /** Raised by the machine itself when a timed attempt runs out of time. */
  | { type: 'attempt.timedOut'; attempt: number }
  | { type: 'cache.hit'; value: unknown }
  | { type: 'cache.miss' }
  /** The supervisor decided to run another attempt after `delayMs`. */
  | { type: 'supervisor.restart'; delayMs: number }
  /** The supervisor decided the run has failed for good. */
  | { type: 'supervisor.giveUp' }
  /** Cancel the run wherever it is. */
  | { type: 'cancel'; reason?: string };

/** The machine's output; the final state is the snapshot's `value`. */
export interface TaskRunOutput {
  result: unknown;
  failure: TaskRunFailure | undefined;
}

export const TASK_TIMEOUT_ERROR: StateError = {
  name: 'TaskTimeoutError',
  code: 'TASK_TIMED_OUT',
  message: 'task run timed out',
  retryable: true,
};

export const TASK_CANCELLED_ERROR: StateError = {
  name: 'CancelledError',
  code: 'CANCELLED',
  message: 'task run was cancelled',
  retryable: false,
};

const ATTEMPT_TIMER_ID = 'attemptTimeout';

export const taskRunMachine = setup({
  types: {
    input: {} as TaskRunInput,
    context: {} as TaskRunContext,
    events: {} as TaskRunEvent,
    output: {} as TaskRunOutput,
  },
  actions: {
    startAttempt: () => {},
    abortAttempt: (_, _params: { reason: string }) => {},
    lookupCache: () => {},
    publish: (_, _params: { state: StateName }) => {},
    reportFailure: () => {},
  },
  delays: {
    retryDelay: ({ context }) => context.retryDelayMs,
  },
  guards: {
    isCurrentAttempt: ({ context, event }) => 'attempt' in event && event.attempt === context.attempt,
  },
}).createMachine({
  id: 'taskRun',
  context: ({ input }) => ({
    taskRunId: input.taskRunId,
    attempt: input.attempt ?? 1,
    timeoutMs: input.timeoutMs,
    hasCacheKey: input.hasCacheKey ?? false,
    retryDelayMs: 0,
    failure: undefined,
    failures: 0,
    crashes: 0,
    result: undefined,
  }),
  initial: 'Pending',
  on: {
    cancel: { target: '.Cancelled' },
  },
  states: {
    Pending: {
      entry: { type: 'publish', params: { state: 'Pending' } },
      always: [{ guard: ({ context }) => context.hasCacheKey, target: 'CheckingCache' }, { target: 'Running' }],
    },
    CheckingCache: {
      entry: 'lookupCache',
      on: {
        'cache.hit': { target: 'Cached', actions: assign({ result: ({ event }) => event.value }) },
        'cache.miss': { target: 'Running' },
      },
    },
    Running: {
      entry: [
        { type: 'publish', params: ({ context }) => ({ state: context.attempt > 1 ? 'Retrying' : 'Running' }) },
        'startAttempt',
        // Only timed attempts carry a timer: most tasks have no timeout and pay nothing for it.
        enqueueActions(({ context, enqueue }) => {
          if (context.timeoutMs === undefined) return;
          enqueue.raise({ type: 'attempt.timedOut', attempt: context.attempt }, { id: ATTEMPT_TIMER_ID, delay: context.timeoutMs });
        }),
      ],
      exit: [
        // Only a timed attempt has a timer to cancel.
        enqueueActions(({ context, enqueue }) => {
          if (context.timeoutMs !== undefined) enqueue.cancel(ATTEMPT_TIMER_ID);
        }),
        // Giving up an attempt that already settled is harmless: the runtime ignores it.
        // The reason is what ended the attempt (`attempt.timedOut`, `cancel`, ...).
        { type: 'abortAttempt', params: ({ event }) => ({ reason: event.type }) },
      ],
      on: {
        'attempt.succeeded': {
          guard: 'isCurrentAttempt',
          target: 'Completed',
          actions: assign({ result: ({ event }) => event.value, failure: undefined }),
        },
        'attempt.failed': {
          guard: 'isCurrentAttempt',
          target: 'Supervised',
          actions: assign({
            failure: ({ event }) => ({ kind: 'error' as const, error: event.error }),
            failures: ({ context }) => context.failures + 1,
          }),
        },
        'attempt.timedOut': {
          guard: 'isCurrentAttempt',
          target: 'Supervised',
          actions: assign({
            failure: { kind: 'timeout', error: TASK_TIMEOUT_ERROR },
            failures: ({ context }) => context.failures + 1,
          }),
        },
        'attempt.crashed': {
          guard: 'isCurrentAttempt',
          target: 'Supervised',
          actions: assign({
            failure: ({ event }) => ({ kind: 'crash' as const, error: event.error }),
            crashes: ({ context }) => context.crashes + 1,
          }),
        },
      },
    },
    Supervised: {
      entry: 'reportFailure',
      on: {
        'supervisor.restart': {
          target: 'AwaitingRetry',
          actions: assign({ retryDelayMs: ({ event }) => Math.max(0, event.delayMs) }),
        },
        'supervisor.giveUp': [
          { guard: ({ context }) => context.failure?.kind === 'timeout', target: 'TimedOut' },
          { guard: ({ context }) => context.failure?.kind === 'crash', target: 'Crashed' },
          { target: 'Failed' },
        ],
      },
    },
    AwaitingRetry: {
      entry: { type: 'publish', params: { state: 'AwaitingRetry' } },
      after: {
        retryDelay: { target: 'Running', actions: assign({ attempt: ({ context }) => context.attempt + 1 }) },
      },
    },
    Completed: { type: 'final', entry: { type: 'publish', params: { state: 'Completed' } } },
    Cached: { type: 'final', entry: { type: 'publish', params: { state: 'Cached' } } },
    Failed: { type: 'final', entry: { type: 'publish', params: { state: 'Failed' } } },
    TimedOut: { type: 'final', entry: { type: 'publish', params: { state: 'TimedOut' } } },
    Crashed: { type: 'final', entry: { type: 'publish', params: { state: 'Crashed' } } },
    Cancelled: {
      type: 'final',
      entry: [assign({ failure: { kind: 'error', error: TASK_CANCELLED_ERROR } }), { type: 'publish', params: { state: 'Cancelled' } }],
    },
  },
  output: ({ context }) => ({ result: context.result, failure: context.failure }),
});
