/**
 * The flow-run machine: one flow run across its attempts.
 *
 * Pure. The runtime supplies, through `provide()`:
 * - `startBody` starts attempt `context.attempt` of the flow function (which
 *   validates parameters first and settles only once the attempt's task runs
 *   have settled), and later sends `body.succeeded` or `body.failed` with that
 *   attempt number;
 * - `abortBody` aborts the attempt's `AbortSignal`;
 * - `publish` runs on entry to each published state;
 * - `cancelChildren` aborts the body's signal and cancels the task runs and
 *   subflows still running;
 * - `decideRetryDelay`, an `assign` of `retryDelayMs`: the flow's retry policy
 *   (which may add jitter) for the attempt that just failed.
 *
 * A retry without delay starts at once, not after a timer of 0 ms, which a
 * busy event loop serves only on its next turn.
 *
 * The body keeps running while the run is `Cancelling`, so that the run ends
 * `Cancelled` once the body has seen its signal and settled, or once the grace
 * period is over.
 */
import { assign, enqueueActions, setup } from 'xstate';
import { cancelledFailure, type FailureKind, type StateError, type StateName } from './state.js';

export interface FlowRunInput {
  flowRunId: string;
  /** Retries after the first attempt. @default 0 */
  retries?: number;
  /** Per-attempt time limit in ms; none when undefined. */
  timeoutMs?: number;
  /** How long a cancelled run waits for its body to settle, in ms. */
  cancelGraceMs: number;
  /** First attempt number; above 1 when a run resumes. @default 1 */
  attempt?: number;
}

export interface FlowRunFailure {
  kind: FailureKind;
  error: StateError;
}

export interface FlowRunContext {
  flowRunId: string;
  attempt: number;
  retries: number;
  timeoutMs: number | undefined;
  cancelGraceMs: number;
  /** Delay before the next attempt, as the retry policy decided. */
  retryDelayMs: number;
  failure: FlowRunFailure | undefined;
  result: unknown;
}

export type FlowRunEvent =
  | { type: 'body.succeeded'; attempt: number; value: unknown }
  | { type: 'body.failed'; attempt: number; error: StateError }
  /** Raised by the machine itself when a timed attempt runs out of time. */
  | { type: 'attempt.timedOut'; attempt: number }
  | { type: 'cancel'; reason?: string }
  /** The flow run's supervisor hit its restart-intensity limit. */
  | { type: 'supervisor.escalated'; error: StateError }
  /** Said by the runtime once the runs an attempt started, cancelled, have all ended. */
  | { type: 'children.settled'; attempt: number }
  /** The process running the flow is going away (forced close). */
  | { type: 'crash'; error: StateError };

export interface FlowRunOutput {
  result: unknown;
  failure: FlowRunFailure | undefined;
}

const ATTEMPT_TIMER_ID = 'attemptTimeout';

/** How much longer than its own `cancelGraceMs` a given-up attempt waits for its runs to end, in ms. */
export const CHILDREN_GRACE_MARGIN_MS = 1_000;

export const FLOW_TIMEOUT_ERROR: StateError = {
  name: 'FlowTimeoutError',
  code: 'FLOW_TIMED_OUT',
  message: 'flow run timed out',
  retryable: true,
};

export const FLOW_CANCELLED_ERROR: StateError = {
  name: 'CancelledError',
  code: 'CANCELLED',
  message: 'flow run was cancelled',
  retryable: false,
};

/** The failure of a run ended by a cancel, with the cancel's reason when it gave one. */
const cancelledBy = (reason: string | undefined): FlowRunFailure => cancelledFailure(FLOW_CANCELLED_ERROR, reason);

export const flowRunMachine = setup({
  types: {
    input: {} as FlowRunInput,
    context: {} as FlowRunContext,
    events: {} as FlowRunEvent,
    output: {} as FlowRunOutput,
  },
  actions: {
    startBody: () => {},
    abortBody: (_, _params: { reason: string }) => {},
    publish: (_, _params: { state: StateName }) => {},
    cancelChildren: (_, _params: { reason: string }) => {},
    decideRetryDelay: assign({ retryDelayMs: 0 }),
    nextAttempt: assign({ attempt: ({ context }) => context.attempt + 1 }),
    /** A cancel names why, when it says more than the word itself: the run's end message carries it. */
    recordCancel: assign({ failure: ({ context, event }) => (event.type === 'cancel' ? cancelledBy(event.reason) : context.failure) }),
  },
  delays: {
    retryDelay: ({ context }) => context.retryDelayMs,
    cancelGrace: ({ context }) => context.cancelGraceMs,
    // A subflow's own grace starts a moment after this run's (it is cancelled once the action
    // that cancels it has returned): the wait for it must outlast it.
    childrenGrace: ({ context }) => context.cancelGraceMs + CHILDREN_GRACE_MARGIN_MS,
  },
  guards: {
    isCurrentAttempt: ({ context, event }) => 'attempt' in event && event.attempt === context.attempt,
    canRetry: ({ context }) =>
      context.failure !== undefined && context.failure.error.retryable && context.attempt <= context.retries,
  },
}).createMachine({
  id: 'flowRun',
  context: ({ input }) => ({
    flowRunId: input.flowRunId,
    attempt: input.attempt ?? 1,
    retries: input.retries ?? 0,
    timeoutMs: input.timeoutMs,
    cancelGraceMs: input.cancelGraceMs,
    retryDelayMs: 0,
    failure: undefined,
    result: undefined,
  }),
  initial: 'Pending',
  on: {
    crash: {
      target: '.Crashed',
      actions: [
        assign({ failure: ({ event }) => ({ kind: 'crash' as const, error: event.error }) }),
        { type: 'cancelChildren', params: { reason: 'crashed' } },
      ],
    },
  },
  states: {
    Pending: {
      entry: { type: 'publish', params: { state: 'Pending' } },
      always: 'Active',
    },
    Active: {
      entry: [
        // Published before the body starts, so the run's Running precedes its task runs' events.
        { type: 'publish', params: ({ context }) => ({ state: context.attempt > 1 ? 'Retrying' : 'Running' }) },
        'startBody',
        enqueueActions(({ context, enqueue }) => {
          if (context.timeoutMs === undefined) return;
          enqueue.raise({ type: 'attempt.timedOut', attempt: context.attempt }, { id: ATTEMPT_TIMER_ID, delay: context.timeoutMs });
        }),
      ],
      // The reason is what ended the attempt (`attempt.timedOut`, `crash`, ...): the runtime picks the abort error by it.
      exit: [
        enqueueActions(({ context, enqueue }) => {
          if (context.timeoutMs !== undefined) enqueue.cancel(ATTEMPT_TIMER_ID);
        }),
        { type: 'abortBody', params: ({ event }) => ({ reason: event.type }) },
      ],
      initial: 'Running',
      states: {
        Running: {
          on: {
            'body.succeeded': {
              guard: 'isCurrentAttempt',
              target: '#flowRun.Completed',
              actions: assign({ result: ({ event }) => event.value }),
            },
            'body.failed': {
              guard: 'isCurrentAttempt',
              target: '#flowRun.Judging',
              actions: assign({ failure: ({ event }) => ({ kind: 'error' as const, error: event.error }) }),
            },
            'attempt.timedOut': {
              guard: 'isCurrentAttempt',
              target: '#flowRun.Stopping',
              actions: [
                assign({ failure: { kind: 'timeout', error: FLOW_TIMEOUT_ERROR } }),
                { type: 'cancelChildren', params: { reason: 'flow run timed out' } },
              ],
            },
            cancel: { target: 'Cancelling', actions: 'recordCancel' },
            'supervisor.escalated': {
              target: '#flowRun.Stopping',
              actions: [
                assign({ failure: ({ event }) => ({ kind: 'error' as const, error: event.error }) }),
                { type: 'cancelChildren', params: { reason: 'supervisor escalated' } },
              ],
            },
          },
        },
        Cancelling: {
          entry: [
            { type: 'publish', params: { state: 'Cancelling' } },
            // The reason this run was given, passed on: its task runs and subflows say why, as it does.
            { type: 'cancelChildren', params: ({ event }) => ({ reason: (event.type === 'cancel' ? event.reason : undefined) || 'cancelled' }) },
          ],
          after: { cancelGrace: '#flowRun.Cancelled' },
          on: {
            'body.succeeded': { guard: 'isCurrentAttempt', target: '#flowRun.Cancelled' },
            'body.failed': { guard: 'isCurrentAttempt', target: '#flowRun.Cancelled' },
          },
        },
      },
    },
    /**
     * The attempt was given up (timed out, escalated) and its runs cancelled: they end first, so
     * that observers see the run end after them, as a cancelled run does. Not for ever: a subflow
     * whose body ignores its signal is waited for as long as a cancel waits for this run's body.
     */
    Stopping: {
      after: { childrenGrace: 'Judging' },
      on: {
        'children.settled': { guard: 'isCurrentAttempt', target: 'Judging' },
        // Cancelled once its runs have ended, as any cancel: a second cancel changes nothing.
        cancel: {
          guard: ({ context }) => context.failure?.error.code !== FLOW_CANCELLED_ERROR.code,
          actions: ['recordCancel', { type: 'publish', params: { state: 'Cancelling' } }],
        },
      },
    },
    // Transient: a failed attempt is retried or fails the run for good (an escalation is not retryable).
    Judging: {
      always: [
        { guard: ({ context }) => context.failure?.error.code === FLOW_CANCELLED_ERROR.code, target: 'Cancelled' },
        { guard: 'canRetry', target: 'AwaitingRetry', actions: 'decideRetryDelay' },
        { guard: ({ context }) => context.failure?.kind === 'timeout', target: 'TimedOut' },
        { target: 'Failed' },
      ],
    },
    AwaitingRetry: {
      entry: { type: 'publish', params: { state: 'AwaitingRetry' } },
      always: { guard: ({ context }) => context.retryDelayMs === 0, target: 'Active', actions: 'nextAttempt' },
      after: { retryDelay: { target: 'Active', actions: 'nextAttempt' } },
      on: { cancel: { target: 'Cancelled', actions: 'recordCancel' } },
    },
    Completed: { type: 'final', entry: { type: 'publish', params: { state: 'Completed' } } },
    Failed: { type: 'final', entry: { type: 'publish', params: { state: 'Failed' } } },
    TimedOut: { type: 'final', entry: { type: 'publish', params: { state: 'TimedOut' } } },
    Crashed: { type: 'final', entry: { type: 'publish', params: { state: 'Crashed' } } },
    Cancelled: {
      type: 'final',
      entry: [
        // The cancel's own failure, with its reason, when a cancel led here (not a stale one of an earlier attempt).
        assign({ failure: ({ context }) => (context.failure?.error.code === FLOW_CANCELLED_ERROR.code ? context.failure : cancelledBy(undefined)) }),
        { type: 'publish', params: { state: 'Cancelled' } },
      ],
    },
  },
  output: ({ context }) => ({ result: context.result, failure: context.failure }),
});
