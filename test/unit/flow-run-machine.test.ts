import { describe, it, expect } from 'vitest';
import { SimulatedClock, assign, createActor } from 'xstate';
import {
  CHILDREN_GRACE_MARGIN_MS,
  FLOW_CANCELLED_ERROR,
  FLOW_TIMEOUT_ERROR,
  flowRunMachine,
  type FlowRunInput,
} from '../../actors/flow-run.js';
import type { StateError, StateName } from '../../actors/state.js';

const RETRY_DELAY_MS = 200;
const CANCEL_GRACE_MS = 500;

const retryable: StateError = { name: 'Error', code: 'BOOM', message: 'boom', retryable: true };
const fatal: StateError = { name: 'ValidationError', code: 'INVALID', message: 'bad parameters', retryable: false };
const escalation: StateError = {
  name: 'RestartIntensityError',
  code: 'RESTART_INTENSITY',
  message: 'more than 3 task restarts within 1000 ms',
  retryable: false,
};
const processGone: StateError = { name: 'CrashedError', code: 'CRASHED', message: 'process closed', retryable: true };

/** A simulated clock that also knows which timers are still pending, to catch leaked timers. */
class PendingClock extends SimulatedClock {
  readonly pending = new Set<number>();

  override setTimeout(fn: (...args: any[]) => void, timeout: number): number {
    const id = super.setTimeout((...args: any[]) => {
      this.pending.delete(id);
      fn(...args);
    }, timeout);
    this.pending.add(id);
    return id;
  }

  override clearTimeout(id: number): void {
    this.pending.delete(id);
    super.clearTimeout(id);
  }
}

/** Starts a flow run whose I/O actions only record their calls, on a simulated clock. */
function startFlowRun(input: Partial<FlowRunInput> = {}, retryDelayMs = RETRY_DELAY_MS) {
  const clock = new PendingClock();
  const published: StateName[] = [];
  const started: number[] = [];
  const aborted: string[] = [];
  const cancelled: string[] = [];
  /** Every I/O call in order, as `action:reason`. */
  const io: string[] = [];
  const machine = flowRunMachine.provide({
    actions: {
      publish: (_, params) => void published.push(params.state),
      startBody: ({ context }) => void started.push(context.attempt),
      abortBody: (_, params) => {
        aborted.push(params.reason);
        io.push(`abortBody:${params.reason}`);
      },
      cancelChildren: (_, params) => {
        cancelled.push(params.reason);
        io.push(`cancelChildren:${params.reason}`);
      },
      decideRetryDelay: assign({ retryDelayMs: retryDelayMs }),
    },
  });
  const actor = createActor(machine, {
    input: { flowRunId: 'flow-1', cancelGraceMs: CANCEL_GRACE_MS, ...input },
    clock,
  });
  actor.start();
  return { actor, clock, published, started, aborted, cancelled, io };
}

/** A run whose first attempt failed with a retryable error and whose second attempt is running. */
function startSecondAttempt(input: Partial<FlowRunInput> = {}) {
  const run = startFlowRun({ retries: 1, ...input });
  run.actor.send({ type: 'body.failed', attempt: 1, error: retryable });
  run.clock.increment(RETRY_DELAY_MS);
  return run;
}

describe('flowRunMachine', () => {
  it('publishes Pending, Running, Completed and outputs the body result on the happy path', () => {
    const { actor, published, started, cancelled } = startFlowRun();
    actor.send({ type: 'body.succeeded', attempt: 1, value: { total: 7 } });

    expect(published).toEqual(['Pending', 'Running', 'Completed']);
    expect(started).toEqual([1]);
    expect(cancelled).toEqual([]);
    const snapshot = actor.getSnapshot();
    expect(snapshot.status).toBe('done');
    expect(snapshot.value).toBe('Completed');
    expect(snapshot.output).toEqual({ result: { total: 7 }, failure: undefined });
  });

  describe('retries', () => {
    it('waits the retry delay exactly after a retryable failure, then runs attempt 2 as Retrying', () => {
      const { actor, clock, published, started } = startFlowRun({ retries: 2 });
      actor.send({ type: 'body.failed', attempt: 1, error: retryable });
      expect(actor.getSnapshot().value).toBe('AwaitingRetry');

      clock.increment(RETRY_DELAY_MS - 1);
      expect(actor.getSnapshot().value).toBe('AwaitingRetry');
      expect(started).toEqual([1]);

      clock.increment(1);
      expect(actor.getSnapshot().value).toEqual({ Active: 'Running' });
      expect(actor.getSnapshot().context.attempt).toBe(2);
      expect(started).toEqual([1, 2]);
      expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying']);
    });

    it('starts a retry without delay at once, without waiting for a timer', () => {
      const { actor, clock, published, started } = startFlowRun({ retries: 1 }, 0);
      actor.send({ type: 'body.failed', attempt: 1, error: retryable });

      // No clock.increment: nothing is scheduled.
      expect(actor.getSnapshot().value).toEqual({ Active: 'Running' });
      expect(actor.getSnapshot().context.attempt).toBe(2);
      expect(started).toEqual([1, 2]);
      expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying']);
      expect(clock.pending.size).toBe(0);
    });

    it('keeps the delay its retry policy decided for the attempt that failed', () => {
      const { actor } = startFlowRun({ retries: 2 });
      actor.send({ type: 'body.failed', attempt: 1, error: retryable });
      expect(actor.getSnapshot().context.retryDelayMs).toBe(RETRY_DELAY_MS);
    });

    it('completes on a later attempt with that attempt result', () => {
      const { actor, published } = startSecondAttempt();
      actor.send({ type: 'body.succeeded', attempt: 2, value: 'second time lucky' });

      expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Completed']);
      expect(actor.getSnapshot().output?.result).toBe('second time lucky');
    });

    it('fails at once on a non-retryable error, whatever the retries left', () => {
      const { actor, clock, published, started } = startFlowRun({ retries: 5 });
      actor.send({ type: 'body.failed', attempt: 1, error: fatal });
      clock.increment(10 * RETRY_DELAY_MS);

      expect(published).toEqual(['Pending', 'Running', 'Failed']);
      expect(started).toEqual([1]);
      expect(actor.getSnapshot().value).toBe('Failed');
      expect(actor.getSnapshot().output?.failure).toEqual({ kind: 'error', error: fatal });
    });

    it('fails once its retries are spent', () => {
      const { actor, clock, published, started } = startFlowRun({ retries: 2 });
      for (const attempt of [1, 2]) {
        actor.send({ type: 'body.failed', attempt, error: retryable });
        clock.increment(RETRY_DELAY_MS);
      }
      actor.send({ type: 'body.failed', attempt: 3, error: retryable });

      expect(started).toEqual([1, 2, 3]);
      expect(published).toEqual([
        'Pending',
        'Running',
        'AwaitingRetry',
        'Retrying',
        'AwaitingRetry',
        'Retrying',
        'Failed',
      ]);
      expect(actor.getSnapshot().output?.failure).toEqual({ kind: 'error', error: retryable });
    });

    it('does not retry by default', () => {
      const { actor, published } = startFlowRun();
      actor.send({ type: 'body.failed', attempt: 1, error: retryable });

      expect(published).toEqual(['Pending', 'Running', 'Failed']);
    });

    it('ignores a stale body outcome from attempt 1 while attempt 2 runs', () => {
      const { actor, published } = startSecondAttempt();
      actor.send({ type: 'body.succeeded', attempt: 1, value: 'zombie' });
      actor.send({ type: 'body.failed', attempt: 1, error: fatal });

      expect(actor.getSnapshot().value).toEqual({ Active: 'Running' });
      expect(actor.getSnapshot().context.result).toBeUndefined();
      expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying']);
    });
  });

  describe('timeout', () => {
    it('cancels the children, aborts the body at timeoutMs, and ends TimedOut once its children have, without retries', () => {
      const { actor, clock, published, aborted, cancelled } = startFlowRun({ timeoutMs: 300 });
      clock.increment(299);
      expect(aborted).toEqual([]);

      clock.increment(1);
      expect(cancelled).toEqual(['flow run timed out']);
      expect(aborted).toEqual(['attempt.timedOut']);
      // Its task runs and subflows end first: observers see the run end after them.
      expect(published).toEqual(['Pending', 'Running']);
      actor.send({ type: 'children.settled', attempt: 1 });
      expect(published).toEqual(['Pending', 'Running', 'TimedOut']);
      expect(actor.getSnapshot().value).toBe('TimedOut');
      expect(actor.getSnapshot().output?.failure).toEqual({ kind: 'timeout', error: FLOW_TIMEOUT_ERROR });
    });

    it('ends TimedOut a while after cancelGraceMs when its children are slow to end: longer than a subflow of the same grace waits', () => {
      const { actor, clock, published } = startFlowRun({ timeoutMs: 300, cancelGraceMs: CANCEL_GRACE_MS });
      clock.increment(300);
      clock.increment(CANCEL_GRACE_MS + CHILDREN_GRACE_MARGIN_MS - 1);
      expect(published).toEqual(['Pending', 'Running']);

      clock.increment(1);
      expect(published).toEqual(['Pending', 'Running', 'TimedOut']);
      expect(actor.getSnapshot().value).toBe('TimedOut');
      expect(clock.pending.size).toBe(0);
    });

    it('ends Cancelled, once its children have ended, when cancelled while its timed-out attempt waits for them', () => {
      const { actor, clock, published } = startFlowRun({ timeoutMs: 300, retries: 2 });
      clock.increment(300);
      actor.send({ type: 'cancel', reason: 'enough' });
      actor.send({ type: 'cancel', reason: 'really' });
      expect(published).toEqual(['Pending', 'Running', 'Cancelling']);

      actor.send({ type: 'children.settled', attempt: 1 });
      expect(published).toEqual(['Pending', 'Running', 'Cancelling', 'Cancelled']);
      expect(actor.getSnapshot().output?.failure?.error.message).toBe('flow run was cancelled: enough');
      expect(clock.pending.size).toBe(0);
    });

    it('aborts the body with the timeout before cancelling the children, so the body sees why it stopped', () => {
      const { clock, io } = startFlowRun({ timeoutMs: 300 });
      clock.increment(300);

      expect(io).toEqual(['abortBody:attempt.timedOut', 'cancelChildren:flow run timed out']);
    });

    it('retries a timed-out attempt when retries remain', () => {
      const { actor, clock, published, aborted, started } = startFlowRun({ timeoutMs: 300, retries: 1 });
      clock.increment(300);
      actor.send({ type: 'children.settled', attempt: 1 });
      expect(actor.getSnapshot().value).toBe('AwaitingRetry');
      expect(aborted).toEqual(['attempt.timedOut']);

      clock.increment(RETRY_DELAY_MS);
      expect(started).toEqual([1, 2]);
      expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying']);
    });

    it('clears the attempt timer when the attempt settles in time', () => {
      const { actor, clock } = startFlowRun({ timeoutMs: 300, retries: 1 });
      actor.send({ type: 'body.failed', attempt: 1, error: retryable });

      // Only the retry delay is left.
      expect(clock.pending.size).toBe(1);
    });

    it('ignores a body outcome that arrives after the timeout', () => {
      const { actor, clock } = startFlowRun({ timeoutMs: 300, retries: 1 });
      clock.increment(300);
      actor.send({ type: 'body.succeeded', attempt: 1, value: 'late' });
      actor.send({ type: 'children.settled', attempt: 1 });
      clock.increment(RETRY_DELAY_MS);
      actor.send({ type: 'body.succeeded', attempt: 1, value: 'later still' });

      expect(actor.getSnapshot().value).toEqual({ Active: 'Running' });
      expect(actor.getSnapshot().context.result).toBeUndefined();
    });

    it('sets no timer when timeoutMs is undefined', () => {
      const { actor, clock, aborted } = startFlowRun();
      clock.increment(24 * 60 * 60 * 1_000);

      expect(actor.getSnapshot().value).toEqual({ Active: 'Running' });
      expect(aborted).toEqual([]);
    });
  });

  describe('cancel', () => {
    // Regression: a subflow cancelled for a reason cancelled its own runs for none.
    it('passes the reason it was cancelled for on to its children', () => {
      const { actor, cancelled } = startFlowRun();
      actor.send({ type: 'cancel', reason: 'flow run timed out' });

      expect(cancelled).toEqual(['flow run timed out']);
    });

    it('publishes Cancelling and cancels the children but lets the body run on', () => {
      const { actor, published, aborted, cancelled } = startFlowRun();
      actor.send({ type: 'cancel' });

      expect(actor.getSnapshot().value).toEqual({ Active: 'Cancelling' });
      expect(published).toEqual(['Pending', 'Running', 'Cancelling']);
      expect(cancelled).toEqual(['cancelled']);
      expect(aborted).toEqual([]);
    });

    it.each([
      { type: 'body.failed', attempt: 1, error: FLOW_CANCELLED_ERROR },
      { type: 'body.succeeded', attempt: 1, value: 'finished anyway' },
    ] as const)('ends Cancelled once the body settles with $type', (settled) => {
      const { actor, published } = startFlowRun();
      actor.send({ type: 'cancel' });
      actor.send(settled);

      expect(published).toEqual(['Pending', 'Running', 'Cancelling', 'Cancelled']);
      const snapshot = actor.getSnapshot();
      expect(snapshot.value).toBe('Cancelled');
      expect(snapshot.output?.failure).toEqual({ kind: 'error', error: FLOW_CANCELLED_ERROR });
    });

    it('ends with the reason the cancel gave in its failure, and without one when it gave none', () => {
      const { actor } = startFlowRun();
      actor.send({ type: 'cancel', reason: 'the operator stopped it' });
      actor.send({ type: 'body.succeeded', attempt: 1, value: 'late' });
      expect(actor.getSnapshot().output?.failure?.error).toEqual({ ...FLOW_CANCELLED_ERROR, message: 'flow run was cancelled: the operator stopped it' });

      const { actor: plain } = startSecondAttempt();
      plain.send({ type: 'cancel' });
      plain.send({ type: 'body.failed', attempt: 2, error: retryable });
      expect(plain.getSnapshot().output?.failure).toEqual({ kind: 'error', error: FLOW_CANCELLED_ERROR });
    });

    it('ends Cancelled after cancelGraceMs exactly when the body never settles', () => {
      const { actor, clock, published, aborted } = startFlowRun();
      actor.send({ type: 'cancel' });
      clock.increment(CANCEL_GRACE_MS - 1);
      expect(actor.getSnapshot().value).toEqual({ Active: 'Cancelling' });
      expect(aborted).toEqual([]);

      clock.increment(1);
      expect(actor.getSnapshot().value).toBe('Cancelled');
      expect(published).toEqual(['Pending', 'Running', 'Cancelling', 'Cancelled']);
      // The body is given up once the grace is over.
      expect(aborted).toHaveLength(1);
      expect(clock.pending.size).toBe(0);
    });

    it('ignores a stale body outcome while cancelling attempt 2', () => {
      const { actor } = startSecondAttempt();
      actor.send({ type: 'cancel' });
      actor.send({ type: 'body.failed', attempt: 1, error: retryable });

      expect(actor.getSnapshot().value).toEqual({ Active: 'Cancelling' });
    });

    it('keeps cancelling when the attempt timer fires during the grace period', () => {
      const { actor, clock, published } = startFlowRun({ timeoutMs: 100, retries: 3 });
      actor.send({ type: 'cancel' });
      clock.increment(100);
      expect(actor.getSnapshot().value).toEqual({ Active: 'Cancelling' });

      clock.increment(CANCEL_GRACE_MS - 100);
      expect(actor.getSnapshot().value).toBe('Cancelled');
      expect(published).toEqual(['Pending', 'Running', 'Cancelling', 'Cancelled']);
    });

    it('ends Cancelled without starting the retry when cancelled while AwaitingRetry', () => {
      const { actor, clock, published, started } = startFlowRun({ retries: 1 });
      actor.send({ type: 'body.failed', attempt: 1, error: retryable });
      actor.send({ type: 'cancel' });
      clock.increment(10 * RETRY_DELAY_MS);

      expect(actor.getSnapshot().value).toBe('Cancelled');
      expect(started).toEqual([1]);
      expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Cancelled']);
      expect(clock.pending.size).toBe(0);
    });
  });

  it('fails with the escalation error and cancels its children when its supervisor escalates', () => {
    const { actor, published, aborted, cancelled } = startFlowRun({ retries: 3 });
    actor.send({ type: 'supervisor.escalated', error: escalation });
    expect(published).toEqual(['Pending', 'Running']);
    actor.send({ type: 'children.settled', attempt: 1 });

    expect(cancelled).toEqual(['supervisor escalated']);
    expect(aborted).toEqual(['supervisor.escalated']);
    expect(published).toEqual(['Pending', 'Running', 'Failed']);
    expect(actor.getSnapshot().value).toBe('Failed');
    expect(actor.getSnapshot().output?.failure).toEqual({ kind: 'error', error: escalation });
  });

  describe('crash', () => {
    it('ends Crashed, cancelling its children and aborting a running body', () => {
      const { actor, published, aborted, cancelled } = startFlowRun({ retries: 3 });
      actor.send({ type: 'crash', error: processGone });

      expect(cancelled).toEqual(['crashed']);
      expect(aborted).toEqual(['crash']);
      expect(published).toEqual(['Pending', 'Running', 'Crashed']);
      expect(actor.getSnapshot().value).toBe('Crashed');
      expect(actor.getSnapshot().output?.failure).toEqual({ kind: 'crash', error: processGone });
    });

    it('ends Crashed from AwaitingRetry without starting the retry', () => {
      const { actor, clock, started } = startFlowRun({ retries: 1 });
      actor.send({ type: 'body.failed', attempt: 1, error: retryable });
      actor.send({ type: 'crash', error: processGone });
      clock.increment(RETRY_DELAY_MS);

      expect(actor.getSnapshot().value).toBe('Crashed');
      expect(started).toEqual([1]);
    });

    it('ends Crashed from Cancelling', () => {
      const { actor } = startFlowRun();
      actor.send({ type: 'cancel' });
      actor.send({ type: 'crash', error: processGone });

      expect(actor.getSnapshot().value).toBe('Crashed');
    });
  });
});
