/**
 * The task-run machine: one task run across all of its attempts.
 *
 * Pure. The runtime supplies, through `provide()`, the actions that do I/O:
 * - `startAttempt` starts attempt `context.attempt` of the body, wherever it
 *   runs (in this process, or on a worker), and later sends back
 *   `attempt.succeeded` or `attempt.failed` carrying that attempt number;
 *   a remote attempt is first dispatched (`Dispatched`, shown as `Pending`)
 *   and runs once a worker claims it (`attempt.claimed`). The runtime watches
 *   the heartbeats of remote attempts, one sweep for all of them rather than a
 *   timer each, and says when they stop (`attempt.crashed`) or when an attempt
 *   has waited long for a worker (`attempt.unclaimed`);
 * - `warnUnclaimed` says a dispatched attempt has waited for a worker;
 * - `abortAttempt` gives the attempt up (its body's `AbortSignal` is aborted);
 * - `lookupJournal` answers `journal.hit`, `journal.miss` or `journal.conflict`
 *   (only in `resumedTaskRunMachine`, for a call of a resumed flow run);
 *   `replayed` runs on entry to `Replayed`, the final state of a call whose
 *   result was recorded before;
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
import { cancelledFailure, type FailureKind, type StateError, type StateName } from './state.js';

export interface TaskRunInput {
  taskRunId: string;
  /** Per-attempt time limit in ms; none when undefined. */
  timeoutMs?: number;
  /** Whether the task has a cache key to look up before running. */
  hasCacheKey?: boolean;
  /** First attempt number; above 1 when a run resumes. @default 1 */
  attempt?: number;
  /**
   * Whether attempts run on workers: each is dispatched, and runs once claimed.
   * The runtime watches their heartbeats and says when they stop (`attempt.crashed`).
   */
  remote?: boolean;
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
  remote: boolean;
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
  /** A worker took the dispatched attempt and runs it. */
  | { type: 'attempt.claimed'; attempt: number }
  /** Said by the runtime when a dispatched attempt has waited long for a worker. */
  | { type: 'attempt.unclaimed'; attempt: number }
  /** Raised by the machine itself when a timed attempt runs out of time. */
  | { type: 'attempt.timedOut'; attempt: number }
  /** The journal holds this call's result from before the flow run resumed. */
  | { type: 'journal.hit'; value: unknown }
  | { type: 'journal.miss' }
  /** The journal holds another task at this call's position: the flow's calls changed order. */
  | { type: 'journal.conflict'; error: StateError }
  | { type: 'cache.hit'; value: unknown }
  | { type: 'cache.miss' }
  /** The supervisor decided to run another attempt after `delayMs`. */
  | { type: 'supervisor.restart'; delayMs: number }
  /** The supervisor decided the run has failed for good. */
  | { type: 'supervisor.giveUp' }
  /** Cancel the run wherever it is; the reason, if any, ends up in the `Cancelled` state's message. */
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

/** The failure of a run ended by a cancel, with the cancel's reason when it gave one. */
export const cancelledBy = (reason: string | undefined): TaskRunFailure => cancelledFailure(TASK_CANCELLED_ERROR, reason);

export const HEARTBEAT_LOST_ERROR: StateError = {
  name: 'CrashedError',
  code: 'CRASHED',
  message: 'the worker running the task stopped sending heartbeats',
  retryable: true,
};

const ATTEMPT_TIMER_ID = 'attemptTimeout';

/** Where an attempt starts: on a worker, after dispatch, or here at once. */
const START_ATTEMPT = [{ guard: 'isRemote', target: 'Dispatched' }, { target: 'Running' }] as const;

const taskRunSetup = setup({
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
    lookupJournal: () => {},
    replayed: () => {},
    publish: (_, _params: { state: StateName }) => {},
    reportFailure: () => {},
    warnUnclaimed: () => {},
    /** The current attempt threw (or, remote, could not even be dispatched): its supervisor decides. */
    recordError: assign({
      failure: ({ context, event }) => (event.type === 'attempt.failed' ? { kind: 'error' as const, error: event.error } : context.failure),
      failures: ({ context }) => context.failures + 1,
    }),
    /** A cancel names why, when it says more than the word itself: the run's end message carries it, as a flow run's does. */
    recordCancel: assign({ failure: ({ event }) => cancelledBy(event.type === 'cancel' ? event.reason : undefined) }),
  },
  delays: {
    retryDelay: ({ context }) => context.retryDelayMs,
  },
  guards: {
    isCurrentAttempt: ({ context, event }) => 'attempt' in event && event.attempt === context.attempt,
    isRemote: ({ context }) => context.remote,
  },
});

/**
 * The machine starts where its runtime says: `Pending` for a new call, `CheckingJournal`
 * for a call of a resumed flow run. Two machines rather than a choice on entry, which
 * would cost every task run a step.
 */
function createTaskRunMachine(id: string, initial: 'Pending' | 'CheckingJournal') {
  return taskRunSetup.createMachine({
    id,
    context: ({ input }) => ({
      taskRunId: input.taskRunId,
      attempt: input.attempt ?? 1,
      timeoutMs: input.timeoutMs,
      hasCacheKey: input.hasCacheKey ?? false,
      remote: input.remote ?? false,
      retryDelayMs: 0,
      failure: undefined,
      failures: 0,
      crashes: 0,
      result: undefined,
    }),
    initial,
    on: {
      cancel: { target: '.Cancelled', actions: 'recordCancel' },
    },
    states: {
      /** Where `resumedTaskRunMachine` starts. */
      CheckingJournal: {
        entry: 'lookupJournal',
        on: {
          'journal.hit': { target: 'Replayed', actions: assign({ result: ({ event }) => event.value }) },
          'journal.miss': { target: 'Pending' },
          'journal.conflict': {
            target: 'Failed',
            actions: assign({ failure: ({ event }) => ({ kind: 'error' as const, error: event.error }), failures: ({ context }) => context.failures + 1 }),
          },
        },
      },
      Pending: {
        entry: { type: 'publish', params: { state: 'Pending' } },
        always: [{ guard: ({ context }) => context.hasCacheKey, target: 'CheckingCache' }, ...START_ATTEMPT],
      },
      CheckingCache: {
        entry: 'lookupCache',
        on: {
          'cache.hit': { target: 'Cached', actions: assign({ result: ({ event }) => event.value }) },
          'cache.miss': START_ATTEMPT,
        },
      },
      Dispatched: {
        entry: [
          // The first attempt was just published as Pending; a later one waits for a worker again.
          enqueueActions(({ context, enqueue }) => {
            if (context.attempt > 1) enqueue({ type: 'publish', params: { state: 'Pending' } });
            enqueue('startAttempt');
          }),
        ],
        exit: [
          enqueueActions(({ event, enqueue }) => {
            // A claimed attempt goes on running; any other way out gives it up.
            if (event.type !== 'attempt.claimed') enqueue({ type: 'abortAttempt', params: { reason: event.type } });
          }),
        ],
        on: {
          'attempt.claimed': { guard: 'isCurrentAttempt', target: 'Running' },
          // Said by the runtime while nobody takes the attempt; the attempt itself waits on.
          'attempt.unclaimed': { guard: 'isCurrentAttempt', actions: 'warnUnclaimed' },
          // The dispatch itself failed (arguments too large, ...).
          'attempt.failed': { guard: 'isCurrentAttempt', target: 'Supervised', actions: 'recordError' },
        },
      },
      Running: {
        entry: [
          { type: 'publish', params: ({ context }) => ({ state: context.attempt > 1 ? 'Retrying' : 'Running' }) },
          enqueueActions(({ context, enqueue }) => {
            // A remote attempt was started on entry to Dispatched.
            if (!context.remote) enqueue('startAttempt');
            // Only timed attempts carry a timer: most tasks have no timeout and pay nothing for it.
            if (context.timeoutMs === undefined) return;
            enqueue.raise({ type: 'attempt.timedOut', attempt: context.attempt }, { id: ATTEMPT_TIMER_ID, delay: context.timeoutMs });
          }),
        ],
        exit: [
          // Only timed attempts have a timer to cancel.
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
          'attempt.failed': { guard: 'isCurrentAttempt', target: 'Supervised', actions: 'recordError' },
          'attempt.timedOut': {
            guard: 'isCurrentAttempt',
            target: 'Supervised',
            actions: assign({
              // The limit in the message, as the TaskTimeoutError the caller gets says it.
              failure: ({ context }) => ({ kind: 'timeout' as const, error: { ...TASK_TIMEOUT_ERROR, message: `task run timed out after ${context.timeoutMs} ms` } }),
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
        // A retry without delay (and a restart after a crash) starts at once, not on the next
        // turn of a busy event loop, which a timer of 0 ms waits for.
        always: { guard: ({ context }) => context.retryDelayMs === 0, target: 'NextAttempt' },
        after: { retryDelay: 'NextAttempt' },
      },
      // Transient: the next attempt's number, then where it starts. Transition actions run
      // before the next state's entry, which sees the new attempt number.
      NextAttempt: {
        always: START_ATTEMPT.map((transition) => ({ ...transition, actions: assign({ attempt: ({ context }) => context.attempt + 1 }) })),
      },
      Completed: { type: 'final', entry: { type: 'publish', params: { state: 'Completed' } } },
      /** Not published: the run completed before its flow run resumed, and said so then. */
      Replayed: { type: 'final', entry: 'replayed' },
      Cached: { type: 'final', entry: { type: 'publish', params: { state: 'Cached' } } },
      Failed: { type: 'final', entry: { type: 'publish', params: { state: 'Failed' } } },
      TimedOut: { type: 'final', entry: { type: 'publish', params: { state: 'TimedOut' } } },
      Crashed: { type: 'final', entry: { type: 'publish', params: { state: 'Crashed' } } },
      // Entered only by a cancel, whose failure (with its reason) `recordCancel` has set.
      Cancelled: { type: 'final', entry: { type: 'publish', params: { state: 'Cancelled' } } },
    },
    output: ({ context }) => ({ result: context.result, failure: context.failure }),
  });
}

export const taskRunMachine = createTaskRunMachine('taskRun', 'Pending');

/**
 * The same machine for a call of a resumed flow run, which may have been made before the
 * run resumed: its journal entry is looked up first, and a result recorded there is used
 * as it is (`Replayed`, not published: it was when it completed).
 */
export const resumedTaskRunMachine = createTaskRunMachine('resumedTaskRun', 'CheckingJournal');
