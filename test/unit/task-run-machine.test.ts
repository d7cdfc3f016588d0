import { describe, it, expect } from 'vitest';
import { SimulatedClock, createActor } from 'xstate';
import { HEARTBEAT_LOST_ERROR, TASK_CANCELLED_ERROR, TASK_TIMEOUT_ERROR, resumedTaskRunMachine, taskRunMachine, type TaskRunFailure, type TaskRunInput } from '../../actors/task-run.js';
import type { StateError, StateName } from '../../actors/state.js';

const boom: StateError = { name: 'Error', code: 'BOOM', message: 'boom', retryable: true };
const workerLost: StateError = { name: 'WorkerLostError', code: 'WORKER_LOST', message: 'worker lost', retryable: true };

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

interface FailureReport {
  attempt: number;
  failure: TaskRunFailure | undefined;
  failures: number;
  crashes: number;
}

/** Starts a task run whose I/O actions only record their calls, on a simulated clock. */
function startTaskRun(input: Partial<TaskRunInput> & { resumed?: boolean } = {}) {
  const clock = new PendingClock();
  const published: StateName[] = [];
  const started: number[] = [];
  const aborted: string[] = [];
  const lookups: number[] = [];
  const reports: FailureReport[] = [];
  const unclaimed: number[] = [];
  const journal = { lookups: 0, replayed: [] as unknown[] };
  const { resumed = false, ...taskInput } = input;
  const machine = (resumed ? resumedTaskRunMachine : taskRunMachine).provide({
    actions: {
      lookupJournal: () => void (journal.lookups += 1),
      replayed: ({ context }) => void journal.replayed.push(context.result),
      publish: (_, params) => void published.push(params.state),
      startAttempt: ({ context }) => void started.push(context.attempt),
      abortAttempt: (_, params) => void aborted.push(params.reason),
      lookupCache: ({ context }) => void lookups.push(context.attempt),
      reportFailure: ({ context }) =>
        void reports.push({
          attempt: context.attempt,
          failure: context.failure,
          failures: context.failures,
          crashes: context.crashes,
        }),
      warnUnclaimed: ({ context }) => void unclaimed.push(context.attempt),
    },
  });
  const actor = createActor(machine, { input: { taskRunId: 'task-1', ...taskInput }, clock });
  actor.start();
  return { actor, clock, published, started, aborted, lookups, reports, unclaimed, journal };
}

/** A run whose first attempt failed and is now waiting for its second, `delayMs` later. */
function startSecondAttempt(delayMs: number, input: Partial<TaskRunInput> = {}) {
  const run = startTaskRun(input);
  run.actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
  run.actor.send({ type: 'supervisor.restart', delayMs });
  run.clock.increment(delayMs);
  return run;
}

describe('taskRunMachine', () => {
  describe('a call of a resumed flow run (journal)', () => {
    it('uses the recorded result without publishing or running anything', () => {
      const run = startTaskRun({ resumed: true, hasCacheKey: true });
      expect(run.actor.getSnapshot().value).toBe('CheckingJournal');
      expect(run.journal.lookups).toBe(1);
      run.actor.send({ type: 'journal.hit', value: { rows: 3 } });
      expect(run.actor.getSnapshot().value).toBe('Replayed');
      expect(run.actor.getSnapshot().status).toBe('done');
      expect(run.journal.replayed).toEqual([{ rows: 3 }]);
      expect(run.published).toEqual([]);
      expect(run.started).toEqual([]);
      expect(run.lookups).toEqual([]);
    });

    it('runs as any other call when the journal has no result, cache first', () => {
      const run = startTaskRun({ resumed: true, hasCacheKey: true });
      run.actor.send({ type: 'journal.miss' });
      expect(run.published).toEqual(['Pending']);
      expect(run.actor.getSnapshot().value).toBe('CheckingCache');
      run.actor.send({ type: 'cache.miss' });
      run.actor.send({ type: 'attempt.succeeded', attempt: 1, value: 7 });
      expect(run.published).toEqual(['Pending', 'Running', 'Completed']);
      expect(run.actor.getSnapshot().output).toEqual({ result: 7, failure: undefined });
    });

    it('fails without running when the journal holds another task at this position', () => {
      const run = startTaskRun({ resumed: true });
      const error: StateError = { name: 'NonDeterminismError', code: 'NON_DETERMINISM', message: 'order changed', retryable: false };
      run.actor.send({ type: 'journal.conflict', error });
      expect(run.actor.getSnapshot().value).toBe('Failed');
      expect(run.published).toEqual(['Failed']);
      expect(run.started).toEqual([]);
      expect(run.actor.getSnapshot().output?.failure).toEqual({ kind: 'error', error });
    });

    it('ignores a late journal answer once cancelled, and never looks up without a journal', () => {
      const run = startTaskRun({ resumed: true });
      run.actor.send({ type: 'cancel' });
      run.actor.send({ type: 'journal.hit', value: 1 });
      expect(run.actor.getSnapshot().value).toBe('Cancelled');
      expect(run.journal.replayed).toEqual([]);
      const plain = startTaskRun();
      expect(plain.journal.lookups).toBe(0);
      expect(plain.published).toEqual(['Pending', 'Running']);
    });
  });

  it('publishes Pending, Running, Completed and starts one attempt on the happy path', () => {
    const { actor, published, started, reports } = startTaskRun();
    actor.send({ type: 'attempt.succeeded', attempt: 1, value: 42 });

    expect(published).toEqual(['Pending', 'Running', 'Completed']);
    expect(started).toEqual([1]);
    expect(reports).toEqual([]);
    const snapshot = actor.getSnapshot();
    expect(snapshot.status).toBe('done');
    expect(snapshot.value).toBe('Completed');
    expect(snapshot.output).toEqual({ result: 42, failure: undefined });
  });

  it('reports a failed attempt to its supervisor and waits in Supervised', () => {
    const { actor, published, reports } = startTaskRun();
    actor.send({ type: 'attempt.failed', attempt: 1, error: boom });

    expect(actor.getSnapshot().value).toBe('Supervised');
    expect(reports).toEqual([{ attempt: 1, failure: { kind: 'error', error: boom }, failures: 1, crashes: 0 }]);
    expect(published).toEqual(['Pending', 'Running']);
  });

  it('waits the restart delay exactly before starting the next attempt as Retrying', () => {
    const { actor, clock, published, started } = startTaskRun();
    actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
    actor.send({ type: 'supervisor.restart', delayMs: 100 });
    expect(actor.getSnapshot().value).toBe('AwaitingRetry');
    expect(published.at(-1)).toBe('AwaitingRetry');

    clock.increment(99);
    expect(actor.getSnapshot().value).toBe('AwaitingRetry');
    expect(started).toEqual([1]);

    clock.increment(1);
    expect(actor.getSnapshot().value).toBe('Running');
    expect(actor.getSnapshot().context.attempt).toBe(2);
    expect(started).toEqual([1, 2]);
    expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying']);
  });

  it('starts a retry without delay at once, without waiting for a timer, and leaves none behind', () => {
    const { actor, clock, published, started } = startTaskRun();
    actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
    actor.send({ type: 'supervisor.restart', delayMs: 0 });

    expect(actor.getSnapshot().value).toBe('Running');
    expect(actor.getSnapshot().context.attempt).toBe(2);
    expect(started).toEqual([1, 2]);
    expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying']);
    expect(clock.pending.size).toBe(0);
  });

  it('completes on the second attempt with its result and no failure left', () => {
    const { actor, published } = startSecondAttempt(100);
    actor.send({ type: 'attempt.succeeded', attempt: 2, value: 'ok' });

    expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Completed']);
    expect(actor.getSnapshot().output).toEqual({ result: 'ok', failure: undefined });
  });

  it('counts failures across attempts in what it reports', () => {
    const { actor, reports } = startSecondAttempt(10);
    actor.send({ type: 'attempt.failed', attempt: 2, error: boom });

    expect(reports.map((report) => [report.attempt, report.failures])).toEqual([
      [1, 1],
      [2, 2],
    ]);
  });

  it('ends Failed with the error as output when the supervisor gives up', () => {
    const { actor, published } = startTaskRun();
    actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
    actor.send({ type: 'supervisor.giveUp' });

    expect(published).toEqual(['Pending', 'Running', 'Failed']);
    const snapshot = actor.getSnapshot();
    expect(snapshot.status).toBe('done');
    expect(snapshot.value).toBe('Failed');
    expect(snapshot.output).toEqual({ result: undefined, failure: { kind: 'error', error: boom } });
  });

  it('ignores a zombie outcome carrying a previous attempt number', () => {
    const { actor, published, reports } = startSecondAttempt(100);
    actor.send({ type: 'attempt.succeeded', attempt: 1, value: 'stale' });
    actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
    actor.send({ type: 'attempt.crashed', attempt: 1, error: workerLost });

    expect(actor.getSnapshot().value).toBe('Running');
    expect(actor.getSnapshot().context.result).toBeUndefined();
    expect(reports).toHaveLength(1);
    expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying']);
  });

  it('ignores an outcome carrying a future attempt number', () => {
    const { actor } = startTaskRun();
    actor.send({ type: 'attempt.succeeded', attempt: 2, value: 'from nowhere' });

    expect(actor.getSnapshot().value).toBe('Running');
  });

  describe('timeout', () => {
    it('times the attempt out at timeoutMs exactly and aborts it', () => {
      const { actor, clock, aborted, reports } = startTaskRun({ timeoutMs: 50 });
      clock.increment(49);
      expect(actor.getSnapshot().value).toBe('Running');
      expect(aborted).toEqual([]);

      clock.increment(1);
      expect(actor.getSnapshot().value).toBe('Supervised');
      expect(aborted).toEqual(['attempt.timedOut']);
      expect(reports).toEqual([
        { attempt: 1, failure: { kind: 'timeout', error: { ...TASK_TIMEOUT_ERROR, message: "task run timed out after 50 ms" } }, failures: 1, crashes: 0 },
      ]);
    });

    it('ends TimedOut when the supervisor gives up a timed-out attempt', () => {
      const { actor, clock, published } = startTaskRun({ timeoutMs: 50 });
      clock.increment(50);
      actor.send({ type: 'supervisor.giveUp' });

      expect(published).toEqual(['Pending', 'Running', 'TimedOut']);
      expect(actor.getSnapshot().value).toBe('TimedOut');
      expect(actor.getSnapshot().output?.failure).toEqual({ kind: 'timeout', error: { ...TASK_TIMEOUT_ERROR, message: "task run timed out after 50 ms" } });
    });

    it('ignores a success that arrives after the timeout', () => {
      const { actor, clock } = startTaskRun({ timeoutMs: 50 });
      clock.increment(50);
      actor.send({ type: 'attempt.succeeded', attempt: 1, value: 'late' });
      expect(actor.getSnapshot().value).toBe('Supervised');

      actor.send({ type: 'supervisor.restart', delayMs: 10 });
      clock.increment(10);
      actor.send({ type: 'attempt.succeeded', attempt: 1, value: 'later still' });
      expect(actor.getSnapshot().value).toBe('Running');
      expect(actor.getSnapshot().context.result).toBeUndefined();
    });

    it('gives every attempt its own full time limit', () => {
      const { actor, clock } = startSecondAttempt(10, { timeoutMs: 50 });
      clock.increment(49);
      expect(actor.getSnapshot().value).toBe('Running');

      clock.increment(1);
      expect(actor.getSnapshot().value).toBe('Supervised');
      expect(actor.getSnapshot().context.failure?.kind).toBe('timeout');
    });

    it('clears the timer when the attempt settles in time', () => {
      const { actor, clock, reports } = startTaskRun({ timeoutMs: 50 });
      expect(clock.pending.size).toBe(1);
      actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
      expect(clock.pending.size).toBe(0);

      clock.increment(1_000);
      expect(reports).toHaveLength(1);
      expect(reports[0]?.failure?.kind).toBe('error');
    });

    it('clears the timer of a timed attempt that is cancelled', () => {
      const { actor, clock } = startTaskRun({ timeoutMs: 50 });
      actor.send({ type: 'cancel' });

      expect(clock.pending.size).toBe(0);
    });

    it('sets no timer when timeoutMs is undefined', () => {
      const { actor, clock, aborted } = startTaskRun();
      expect(clock.pending.size).toBe(0);
      clock.increment(24 * 60 * 60 * 1_000);

      expect(actor.getSnapshot().value).toBe('Running');
      expect(aborted).toEqual([]);
    });
  });

  describe('cancel', () => {
    it('aborts a running attempt with reason cancel and ends Cancelled', () => {
      const { actor, published, aborted } = startTaskRun();
      actor.send({ type: 'cancel' });

      expect(aborted).toEqual(['cancel']);
      expect(published).toEqual(['Pending', 'Running', 'Cancelled']);
      expect(actor.getSnapshot().value).toBe('Cancelled');
      expect(actor.getSnapshot().status).toBe('done');
    });

    it('never starts the retry of a run cancelled while AwaitingRetry', () => {
      const { actor, clock, published, started } = startTaskRun();
      actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
      actor.send({ type: 'supervisor.restart', delayMs: 100 });
      actor.send({ type: 'cancel' });
      clock.increment(1_000);

      expect(actor.getSnapshot().value).toBe('Cancelled');
      expect(started).toEqual([1]);
      expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Cancelled']);
      expect(clock.pending.size).toBe(0);
    });

    it('ends Cancelled when cancelled while Supervised', () => {
      const { actor } = startTaskRun();
      actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
      actor.send({ type: 'cancel' });

      expect(actor.getSnapshot().value).toBe('Cancelled');
    });

    // QA round 7, finding 5: the reason a cancel gave was dropped, unlike a flow run's.
    it('ends with the reason the cancel gave in its failure, and without one when it gave none', () => {
      const { actor } = startTaskRun();
      actor.send({ type: 'cancel', reason: 'lost the race' });

      expect(actor.getSnapshot().output?.failure).toEqual({ kind: 'error', error: { ...TASK_CANCELLED_ERROR, message: 'task run was cancelled: lost the race' } });
      for (const reason of [undefined, '', 'cancelled']) {
        const plain = startTaskRun();
        plain.actor.send({ type: 'cancel', reason });
        expect(plain.actor.getSnapshot().output?.failure).toEqual({ kind: 'error', error: TASK_CANCELLED_ERROR });
      }
    });

    it("publishes Cancelled with the cancel's reason, not the failure of the attempt before it", () => {
      const messages: Array<string | undefined> = [];
      const machine = taskRunMachine.provide({
        actions: {
          publish: ({ context }, params) => {
            if (params.state === 'Cancelled') messages.push(context.failure?.error.message);
          },
        },
      });
      const actor = createActor(machine, { input: { taskRunId: 'task-1' } }).start();
      actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
      actor.send({ type: 'cancel', reason: 'flow run timed out' });

      expect(messages).toEqual(['task run was cancelled: flow run timed out']);
      expect(actor.getSnapshot().output?.failure?.error.code).toBe(TASK_CANCELLED_ERROR.code);
    });
  });

  describe('cache', () => {
    it('looks the cache up before running when the task has a cache key', () => {
      const { actor, lookups, started, published } = startTaskRun({ hasCacheKey: true });

      expect(actor.getSnapshot().value).toBe('CheckingCache');
      expect(lookups).toEqual([1]);
      expect(started).toEqual([]);
      expect(published).toEqual(['Pending']);
    });

    it('ends Cached with the cached value as its result on a hit', () => {
      const { actor, published, started } = startTaskRun({ hasCacheKey: true });
      actor.send({ type: 'cache.hit', value: { rows: 3 } });

      expect(published).toEqual(['Pending', 'Cached']);
      expect(started).toEqual([]);
      expect(actor.getSnapshot().value).toBe('Cached');
      expect(actor.getSnapshot().output).toEqual({ result: { rows: 3 }, failure: undefined });
    });

    it('runs the first attempt on a miss', () => {
      const { actor, published, started } = startTaskRun({ hasCacheKey: true });
      actor.send({ type: 'cache.miss' });

      expect(actor.getSnapshot().value).toBe('Running');
      expect(started).toEqual([1]);
      expect(published).toEqual(['Pending', 'Running']);
    });

    it('skips the lookup when the task has no cache key', () => {
      const { lookups } = startTaskRun();
      expect(lookups).toEqual([]);
    });
  });

  describe('crash', () => {
    it('reports a crash of the current attempt with kind crash and counts it apart from failures', () => {
      const { actor, reports } = startTaskRun();
      actor.send({ type: 'attempt.crashed', attempt: 1, error: workerLost });

      expect(actor.getSnapshot().value).toBe('Supervised');
      expect(reports).toEqual([{ attempt: 1, failure: { kind: 'crash', error: workerLost }, failures: 0, crashes: 1 }]);
    });

    it('ends Crashed when the supervisor gives up a crashed attempt', () => {
      const { actor, published } = startTaskRun();
      actor.send({ type: 'attempt.crashed', attempt: 1, error: workerLost });
      actor.send({ type: 'supervisor.giveUp' });

      expect(published).toEqual(['Pending', 'Running', 'Crashed']);
      expect(actor.getSnapshot().value).toBe('Crashed');
      expect(actor.getSnapshot().output?.failure).toEqual({ kind: 'crash', error: workerLost });
    });
  });

  it('treats a negative restart delay as zero', () => {
    const { actor, clock, started } = startTaskRun();
    actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
    actor.send({ type: 'supervisor.restart', delayMs: -500 });
    expect(actor.getSnapshot().context.retryDelayMs).toBe(0);

    clock.increment(0);
    expect(actor.getSnapshot().value).toBe('Running');
    expect(actor.getSnapshot().context.attempt).toBe(2);
    expect(started).toEqual([1, 2]);
  });

  it('starts from the given attempt when a run resumes', () => {
    const { actor, published, started } = startTaskRun({ attempt: 3 });
    actor.send({ type: 'attempt.succeeded', attempt: 3, value: 'resumed' });

    expect(started).toEqual([3]);
    expect(published).toEqual(['Pending', 'Retrying', 'Completed']);
  });
});

describe('taskRunMachine on a worker (remote attempts)', () => {
  const remote = { remote: true };

  it('dispatches once, shows Pending until a worker claims the attempt, then Running', () => {
    const { actor, published, started, aborted } = startTaskRun(remote);
    expect(actor.getSnapshot().value).toBe('Dispatched');
    expect(started).toEqual([1]);
    expect(published).toEqual(['Pending']);

    actor.send({ type: 'attempt.claimed', attempt: 1 });
    expect(actor.getSnapshot().value).toBe('Running');
    expect(started).toEqual([1]);
    expect(aborted).toEqual([]);

    actor.send({ type: 'attempt.succeeded', attempt: 1, value: 'done' });
    expect(published).toEqual(['Pending', 'Running', 'Completed']);
    expect(actor.getSnapshot().output?.result).toBe('done');
  });

  it('waits for a worker as long as it takes, warning each time the runtime says it waited long, and sets no timer', () => {
    const { actor, clock, unclaimed, aborted, started } = startTaskRun(remote);
    clock.increment(60_000);
    expect(unclaimed).toEqual([]);
    expect(clock.pending.size).toBe(0);
    actor.send({ type: 'attempt.unclaimed', attempt: 1 });
    actor.send({ type: 'attempt.unclaimed', attempt: 1 });
    // One about another attempt says nothing.
    actor.send({ type: 'attempt.unclaimed', attempt: 2 });
    expect(unclaimed).toEqual([1, 1]);
    expect(actor.getSnapshot().value).toBe('Dispatched');
    expect(aborted).toEqual([]);
    expect(started).toEqual([1]);
  });

  it('ignores a claim of another attempt', () => {
    const { actor } = startTaskRun(remote);
    actor.send({ type: 'attempt.claimed', attempt: 2 });
    expect(actor.getSnapshot().value).toBe('Dispatched');
  });

  it('crashes the attempt when the runtime says its heartbeats stopped, and ignores it for another attempt', () => {
    const { actor, clock, aborted, reports } = startTaskRun(remote);
    actor.send({ type: 'attempt.claimed', attempt: 1 });
    clock.increment(60_000);
    expect(actor.getSnapshot().value).toBe('Running');
    expect(clock.pending.size).toBe(0);
    actor.send({ type: 'attempt.crashed', attempt: 0, error: HEARTBEAT_LOST_ERROR });
    expect(actor.getSnapshot().value).toBe('Running');
    actor.send({ type: 'attempt.crashed', attempt: 1, error: HEARTBEAT_LOST_ERROR });
    expect(actor.getSnapshot().value).toBe('Supervised');
    expect(aborted).toEqual(['attempt.crashed']);
    expect(reports).toEqual([{ attempt: 1, failure: { kind: 'crash', error: HEARTBEAT_LOST_ERROR }, failures: 0, crashes: 1 }]);
  });

  it('restarts a crashed attempt as a new dispatch, shown Pending again, and fences the old one out', () => {
    const { actor, clock, published, started } = startTaskRun(remote);
    actor.send({ type: 'attempt.claimed', attempt: 1 });
    actor.send({ type: 'attempt.crashed', attempt: 1, error: HEARTBEAT_LOST_ERROR });
    actor.send({ type: 'supervisor.restart', delayMs: 0 });
    expect(actor.getSnapshot().value).toBe('Dispatched');
    expect(started).toEqual([1, 2]);

    // The zombie of attempt 1 answers late: ignored.
    actor.send({ type: 'attempt.succeeded', attempt: 1, value: 'zombie' });
    expect(actor.getSnapshot().value).toBe('Dispatched');

    actor.send({ type: 'attempt.claimed', attempt: 2 });
    actor.send({ type: 'attempt.succeeded', attempt: 2, value: 'fresh' });
    expect(actor.getSnapshot().output?.result).toBe('fresh');
    expect(published).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Pending', 'Retrying', 'Completed']);
  });

  it('starts the time limit at the claim, not at the dispatch', () => {
    const { actor, clock } = startTaskRun({ ...remote, timeoutMs: 100 });
    clock.increment(500);
    expect(actor.getSnapshot().value).toBe('Dispatched');
    actor.send({ type: 'attempt.claimed', attempt: 1 });
    clock.increment(99);
    expect(actor.getSnapshot().value).toBe('Running');
    clock.increment(1);
    expect(actor.getSnapshot().value).toBe('Supervised');
    expect(actor.getSnapshot().context.failure?.kind).toBe('timeout');
  });

  it('fails the attempt when the dispatch itself fails', () => {
    const { actor, reports, aborted } = startTaskRun(remote);
    actor.send({ type: 'attempt.failed', attempt: 1, error: boom });
    expect(actor.getSnapshot().value).toBe('Supervised');
    expect(reports[0]?.failure).toEqual({ kind: 'error', error: boom });
    expect(aborted).toEqual(['attempt.failed']);
  });

  it('gives up a dispatched attempt on cancel and leaves no timer behind', () => {
    const { actor, clock, aborted, published } = startTaskRun(remote);
    actor.send({ type: 'cancel' });
    expect(aborted).toEqual(['cancel']);
    expect(published).toEqual(['Pending', 'Cancelled']);
    expect(clock.pending.size).toBe(0);
  });

  it('leaves no timer behind once a claimed attempt completes', () => {
    const { actor, clock } = startTaskRun({ ...remote, timeoutMs: 1_000 });
    actor.send({ type: 'attempt.claimed', attempt: 1 });
    actor.send({ type: 'attempt.succeeded', attempt: 1, value: 1 });
    expect(clock.pending.size).toBe(0);
  });
});
