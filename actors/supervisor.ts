/**
 * The supervisor machine: owns the task runs of one flow run, one-for-one, as
 * an Erlang/OTP supervisor owns its children.
 *
 * When a child's attempt fails, the supervisor restarts it (a new attempt
 * after the child's retry delay) while the child's budget lasts: `retries` for
 * errors and timeouts, a separate `crashRestarts` for crashes (the worker died).
 * A restart-intensity limit, at most `maxRestarts` restarts within
 * `windowMs`, stops a crash loop: the supervisor escalates to its flow run and
 * gives up every child that fails after that.
 *
 * Pure: time arrives in the events (`at`, from the runtime's clock), and the
 * runtime supplies `restartChild`, `giveUpChild` and `escalate` through `provide()`.
 * Its cost per failure does not depend on how many children it has.
 */
import { assign, not, setup } from 'xstate';
import type { FailureKind, StateError } from './state.js';

export interface SupervisorInput {
  /** Who is supervised: the flow run's id, passed back to the runtime's actions. */
  id: string;
  /** Restart-intensity limit: at most this many restarts... */
  maxRestarts: number;
  /** ...within this many ms. */
  windowMs: number;
}

export interface SupervisorContext extends SupervisorInput {
  /** Times of the restarts inside the current window, oldest first. */
  restartTimes: number[];
  escalation: string | undefined;
}

export interface ChildFailedEvent {
  type: 'child.failed';
  childId: string;
  kind: FailureKind;
  error: StateError;
  /** Whether the task's retry policy allows retrying this error. */
  retryable: boolean;
  /** Failures by error or timeout so far, this one included. */
  failures: number;
  /** Crashes so far, this one included. */
  crashes: number;
  /** The child's budget for errors and timeouts. */
  retries: number;
  /** The child's budget for crashes. */
  crashRestarts: number;
  /** Delay before the next attempt, from the child's retry policy. */
  delayMs: number;
  /** When the failure happened, ms since the epoch. */
  at: number;
}

export type SupervisorEvent = ChildFailedEvent;

export const supervisorMachine = setup({
  types: {
    input: {} as SupervisorInput,
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
  },
  actions: {
    restartChild: (_, _params: { childId: string; delayMs: number }) => {},
    giveUpChild: (_, _params: { childId: string }) => {},
    escalate: (_, _params: { reason: string }) => {},
  },
  guards: {
    withinBudget: ({ event }) =>
      event.kind === 'crash' ? event.crashes <= event.crashRestarts : event.retryable && event.failures <= event.retries,
    intensityExceeded: ({ context, event }) => restartsInWindow(context, event.at).length >= context.maxRestarts,
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({ ...input, restartTimes: [], escalation: undefined }),
  initial: 'Supervising',
  states: {
    Supervising: {
      on: {
        'child.failed': [
          {
            // Out of budget: the child fails for good. Not a restart, so not counted.
            guard: not('withinBudget'),
            actions: { type: 'giveUpChild', params: ({ event }) => ({ childId: event.childId }) },
          },
          {
            guard: 'intensityExceeded',
            target: 'Escalated',
            // The child is given up first: escalating fails the flow run, which cancels
            // whatever is still running, and this child must end Failed, not Cancelled.
            actions: [
              assign({ escalation: ({ context }) => intensityReason(context) }),
              { type: 'giveUpChild', params: ({ event }) => ({ childId: event.childId }) },
              { type: 'escalate', params: ({ context }) => ({ reason: intensityReason(context) }) },
            ],
          },
          {
            actions: [
              assign({ restartTimes: ({ context, event }) => [...restartsInWindow(context, event.at), event.at] }),
              { type: 'restartChild', params: ({ event }) => ({ childId: event.childId, delayMs: event.delayMs }) },
            ],
          },
        ],
      },
    },
    Escalated: {
      on: {
        'child.failed': {
          actions: { type: 'giveUpChild', params: ({ event }) => ({ childId: event.childId }) },
        },
      },
    },
  },
});

function restartsInWindow(context: SupervisorContext, at: number): number[] {
  const since = at - context.windowMs;
  const times = context.restartTimes;
  let first = 0;
  while (first < times.length && (times[first] as number) <= since) first++;
  return first === 0 ? times : times.slice(first);
}

function intensityReason(context: SupervisorContext): string {
  return `more than ${context.maxRestarts} task restarts within ${context.windowMs} ms`;
}
