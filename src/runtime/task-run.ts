/**
 * The runtime side of one task run: it owns the task-run actor, runs the
 * user's body for each attempt, publishes each transition and settles the
 * caller's future. The machine decides; this object does the I/O.
 */
import { createActor, type Actor, type EventFromLogic } from 'xstate';
import type { Logger } from 'pino';
import { formatState, isTerminal, type RunState, type StateName } from '../../actors/state.js';
import { hooksFor, makeCrashedState, makeRunState, publishCrash, retryDelayOf, runHooks } from './run-common.js';
import { HEARTBEAT_LOST_ERROR, cancelledBy, type TaskRunContext, type taskRunMachine } from '../../actors/task-run.js';
import type { RemoteTaskRun } from '../remote/dispatcher.js';
import { WIRE_VERSION, type TaskOutcome } from '../remote/messages.js';
import { findUnserializable, toWireValue } from '../codec.js';
import {
  CancelledError,
  CrashedError,
  TaskTimeoutError,
  UnserializableResultError,
  InvalidArgumentError,
  NonDeterminismError,
  fromWireError,
  toError,
  toWireError,
} from '../errors.js';
import type { TaskStateEvent } from '../events.js';
import type { RecordedTaskRun } from '../durable/run-recorder.js';
import type { RecordedError } from '../durable/records.js';
import { CACHE_BUCKET } from '../store/store.js';
import { deferBody, depthOfNewRun, invokeBody, runContextStorage, type FlowRunInfo, type InternalRunContext, type TaskRunInfo } from './context.js';
import { createDeferred } from './deferred.js';
import { LazyAbort } from './lazy-abort.js';
import type { TaskDefinition } from './definitions.js';
import type { Engine, SupervisorActor } from './engine.js';
import { DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW_MS, type RunHook } from '../options.js';
import type { FlowRunRuntime } from './flow-run.js';
import type { Orchestrator } from './orchestrator.js';

export class TaskRunRuntime implements RemoteTaskRun, RecordedTaskRun {
  readonly id: string;
  readonly name: string;
  readonly definition: TaskDefinition;
  readonly flowRun: FlowRunRuntime | undefined;
  /** The call's position in its flow run: where its journal entry is. */
  readonly position: number | undefined;
  /** How many runs deep it was called: 1 when called outside any run, else one more than the run whose body called it. */
  readonly depth: number;
  state: RunState | undefined;
  /** The revision of this call's journal entry, found when the flow run resumed (0: none). */
  journalRevision = 0;
  /** The worker that claimed the current attempt. */
  workerId: string | undefined;

  readonly #engine: Engine;
  readonly #args: unknown[];
  readonly #settled = createDeferred<RunState>();
  readonly #actor: Actor<typeof taskRunMachine>;
  #seq = 0;
  #finished = false;
  #subject: string | undefined;
  #cacheKey: string | undefined;
  #lastError: Error | undefined;
  #result: unknown;
  #ownSupervisor: SupervisorActor | undefined;
  #replayedState: RunState | undefined;
  #attemptController: LazyAbort | undefined;
  /** Why the run was cancelled: the attempt is aborted before the machine has recorded it. */
  #cancelReason: string | undefined;
  #logger: Logger | undefined;
  readonly #index: number;

  constructor(engine: Engine, definition: TaskDefinition, args: unknown[], flowRun: FlowRunRuntime | undefined) {
    // First: a call refused for its depth must leave no trace (no name index, no journal position).
    this.depth = depthOfNewRun('task', definition.options.name);
    this.#engine = engine;
    this.definition = definition;
    this.#args = args;
    this.flowRun = flowRun;
    this.id = crypto.randomUUID();
    const taskName = definition.options.name;
    const index = flowRun ? flowRun.nextTaskIndex(taskName) : 0;
    this.position = flowRun?.nextPosition();
    this.name = `${taskName}-${index}`;
    this.#index = index;
    this.#cacheKey = this.#computeCacheKey();
    // A run that can never set a timer: no time limit, no retry delay (heartbeats are watched by the dispatcher).
    const untimed = definition.options.timeoutMs === undefined && definition.options.retries === 0;
    // A call of a resumed flow run may have been made before: its machine looks it up in the journal first.
    const resumed = engine.durable !== undefined && flowRun?.resumed === true;
    this.#actor = createActor(resumed ? engine.machines.resumedTask : engine.machines.task, {
      // In the shared system the actor's id is its run's: its errors reach the run through the parent.
      ...(untimed ? { parent: engine.actorParent, id: this.id } : {}),
      input: {
        taskRunId: this.id,
        timeoutMs: definition.options.timeoutMs,
        hasCacheKey: this.#cacheKey !== undefined,
        remote: engine.remote !== undefined,
      },
    });
    // Without an error observer (or a parent) XState rethrows an action's error asynchronously
    // and the process dies; a bug in one run must end that run, not the process.
    if (!untimed) this.#actor.subscribe({ error: (err) => this.failedInside(err) });
  }

  /** Stable across attempts: the flow run, the task and the call's position in the flow run. */
  get idempotencyKey(): string {
    return this.flowRun ? `${this.flowRun.id}:${this.definition.options.name}:${this.#index}` : this.id;
  }

  get taskName(): string {
    return this.definition.options.name;
  }

  get tags(): string[] {
    return this.definition.options.tags;
  }

  get orchestrator(): Orchestrator {
    return this.#engine.orchestrator;
  }

  /** The run-scoped logger, made on first use: most task runs log one line or none. */
  get logger(): Logger {
    this.#logger ??= (this.flowRun?.logger ?? this.#engine.logger).child({
      taskRunId: this.id,
      taskRunName: this.name,
      taskName: this.definition.options.name,
    });
    return this.#logger;
  }

  /** Resolves with the terminal state once the run has settled (hooks done). Never rejects. */
  get settled(): Promise<RunState> {
    return this.#settled.promise;
  }

  start(): void {
    this.#engine.taskRuns.set(this.id, this);
    const logger = this.flowRun?.logger ?? this.#engine.engineLogger;
    if (logger.isLevelEnabled('debug')) {
      logger.debug({ taskRunId: this.id }, `Created task run '${this.name}' for task '${this.definition.options.name}'`);
    }
    this.#actor.start();
  }

  cancel(reason = 'cancelled'): void {
    // The first cancel ends the run: its attempt is aborted with that cancel's reason.
    this.#cancelReason ??= reason;
    this.#send({ type: 'cancel', reason });
  }

  /** The supervisor's decision: another attempt after `delayMs`. */
  restart(delayMs: number): void {
    this.#send({ type: 'supervisor.restart', delayMs });
  }

  /** The supervisor's decision: the run has failed for good. */
  giveUp(): void {
    this.#send({ type: 'supervisor.giveUp' });
  }

  /** The result, or the error the run ended with. */
  result(): Promise<unknown> {
    return this.#settled.promise.then((state) => {
      if (state.type === 'COMPLETED') return this.#result;
      throw this.#errorFor(state);
    });
  }

  /** Called by the machine's `startAttempt` action: runs the body, reports its outcome as an event. */
  startAttempt(attempt: number): void {
    // After the machine's action returns: until then the actor's snapshot is the one before
    // this transition, and the dispatch checks that the run still waits for this attempt.
    if (this.#engine.remote) return queueMicrotask(() => this.#dispatch(attempt));
    const controller = new LazyAbort();
    this.#attemptController = controller;
    const context = new TaskAttemptContext(this, attempt, controller);
    controller.within(context);
    // The body runs after the machine's action returns, never inside it: a body that
    // starts other runs synchronously must not nest their actors in this one's action.
    deferBody(() => runContextStorage.run(context, invokeBody, this.definition.fn, this.#args)).then(
      (value) => {
        if (controller.aborted) return;
        this.#attemptController = undefined;
        const where = findUnserializable(value);
        const error =
          where === null
            ? this.#engine.durable?.checkResult(value, `task run '${this.name}'`)
            : new UnserializableResultError(`task '${this.definition.options.name}' returned a value that cannot be serialised: ${where}`);
        if (error === undefined) return this.#send({ type: 'attempt.succeeded', attempt, value });
        this.#attemptFailed(attempt, controller, error);
      },
      (thrown: unknown) => this.#attemptFailed(attempt, controller, toError(thrown)),
    );
  }

  /** Called by the machine's `abortAttempt` action: the attempt is given up, for the reason named. */
  abortAttempt(reason: string): void {
    const remote = this.#engine.remote;
    if (remote) return remote.dispatcher.abort(this.id, this.#actor.getSnapshot().context.attempt, reason);
    const controller = this.#attemptController;
    if (!controller || controller.aborted) return;
    const options = this.definition.options;
    controller.abort(
      reason === 'attempt.timedOut'
        ? new TaskTimeoutError(`task run '${this.name}' timed out after ${options.timeoutMs} ms`)
        : reason === 'cancel'
          ? this.#cancelledError(cancelledBy(this.#cancelReason).error.message)
          : new CancelledError(`task run '${this.name}' was given up`),
    );
  }

  /** Sends the attempt to the workers of the task's pool. */
  #dispatch(attempt: number): void {
    const remote = this.#engine.remote!;
    const where = findUnserializable(this.#args, 'args');
    if (where !== null) {
      const error = new InvalidArgumentError(`task '${this.definition.options.name}' was called with arguments that cannot be sent to a worker: ${where}`);
      return this.dispatchFailed(attempt, error);
    }
    const flowRun = this.flowRun;
    remote.dispatcher.dispatch(
      this,
      {
        v: WIRE_VERSION,
        type: 'task.dispatch',
        owner: remote.dispatcher.ownerSubject,
        taskRunId: this.id,
        taskRunName: this.name,
        taskName: this.definition.options.name,
        attempt,
        args: toWireValue(this.#args),
        heartbeatMs: remote.heartbeatMs,
        idempotencyKey: this.idempotencyKey,
        flowRunId: flowRun?.id,
        flowRunName: flowRun?.name,
        flowName: flowRun?.flowName,
      },
      this.definition.options.pool,
    );
  }

  acceptClaim(attempt: number, workerId?: string): boolean {
    if (!this.wants(attempt)) return false;
    this.workerId = workerId;
    this.#send({ type: 'attempt.claimed', attempt });
    return true;
  }

  attemptCrashed(attempt: number): void {
    this.#send({ type: 'attempt.crashed', attempt, error: HEARTBEAT_LOST_ERROR });
  }

  attemptUnclaimed(attempt: number): void {
    this.#send({ type: 'attempt.unclaimed', attempt });
  }

  acceptOutcome(outcome: TaskOutcome): boolean {
    const snapshot = this.#actor.getSnapshot();
    if (snapshot.status !== 'active' || snapshot.value !== 'Running' || snapshot.context.attempt !== outcome.attempt) return false;
    // Only the worker whose claim was accepted reports the attempt.
    if (this.workerId !== undefined && outcome.workerId !== this.workerId) return false;
    const tooLarge = outcome.ok ? this.#engine.durable?.checkResult(outcome.value, `task run '${this.name}'`) : undefined;
    if (tooLarge !== undefined) {
      this.#lastError = tooLarge;
      this.#send({ type: 'attempt.failed', attempt: outcome.attempt, error: toWireError(tooLarge) });
    } else if (outcome.ok) {
      this.#send({ type: 'attempt.succeeded', attempt: outcome.attempt, value: outcome.value });
    } else if (outcome.error.code === 'CRASHED') {
      // The worker stopped and handed the attempt back: a crash, restarted within the crash budget.
      this.#send({ type: 'attempt.crashed', attempt: outcome.attempt, error: outcome.error });
    } else {
      // The worker's stack goes to the logs with the error; run state keeps the error without it.
      const { stack: _stack, ...error } = outcome.error;
      this.#lastError = fromWireError(outcome.error);
      this.#send({ type: 'attempt.failed', attempt: outcome.attempt, error });
    }
    return true;
  }

  dispatchFailed(attempt: number, error: Error): void {
    if (!this.wants(attempt)) return;
    this.#lastError = error;
    this.#send({ type: 'attempt.failed', attempt, error: toWireError(error) });
  }

  wants(attempt: number): boolean {
    const snapshot = this.#actor.getSnapshot();
    return snapshot.status === 'active' && snapshot.value === 'Dispatched' && snapshot.context.attempt === attempt;
  }

  /** Called by the machine's `warnUnclaimed` action. */
  warnUnclaimed(attempt: number): void {
    const { pool, name } = this.definition.options;
    // The run's logger names the run already.
    this.logger.warn({ attempt, pool }, `Waiting for a worker of pool '${pool}' that serves task '${name}'`);
  }

  /** Called by the machine's `lookupJournal` action: what this call returned before its flow run resumed. */
  lookupJournal(): void {
    const durable = this.#engine.durable!;
    const flowRun = this.flowRun!;
    durable.lookup(flowRun.id, this.position!, this.taskName).then(
      (found) => {
        this.journalRevision = found.revision;
        if (found.kind === 'hit') {
          this.#replayedState = found.record.state;
          return this.#send({ type: 'journal.hit', value: found.record.result });
        }
        if (found.kind === 'miss') return this.#send({ type: 'journal.miss' });
        this.#lastError = new NonDeterminismError(
          `flow run '${flowRun.name}' resumed and its call #${this.position! + 1} is task '${this.taskName}', but it was ${found.recordedTaskName} before: ` +
            'a flow must call its tasks and subflows in the same order on every run (see "Durable runs" in the README)',
        );
        flowRun.nonDeterministic(this.#lastError);
        this.#send({ type: 'journal.conflict', error: toWireError(this.#lastError) });
      },
      (err: unknown) => {
        // The journal cannot be read (the server is away): run the call again, at least once is the promise.
        this.logger.warn({ err }, 'could not read the journal of the resumed flow run; running the task run again');
        this.#send({ type: 'journal.miss' });
      },
    );
  }

  /** Called by the machine's `replayed` action: the call completed before its flow run resumed. */
  onReplayed(context: TaskRunContext): void {
    const state = this.#replayedState ?? makeRunState('Completed', this.#engine.now(), context.attempt, undefined);
    this.state = state;
    this.#finished = true;
    this.#engine.taskRuns.delete(this.id);
    this.#result = context.result;
    if (this.logger.isLevelEnabled('debug')) this.logger.debug(`Task run '${this.name}' completed before the flow run resumed; its recorded result is used`);
    this.#settle(state);
  }

  /** Called by the machine's `lookupCache` action. */
  lookupCache(): void {
    this.#engine.store.get(CACHE_BUCKET, this.#cacheKey as string).then(
      (entry) => this.#send(entry ? { type: 'cache.hit', value: entry.value } : { type: 'cache.miss' }),
      (err: unknown) => {
        // A broken cache must not fail the task: run it instead.
        this.logger.warn({ err }, 'could not read the cache; running the task');
        this.#send({ type: 'cache.miss' });
      },
    );
  }

  #attemptFailed(attempt: number, controller: LazyAbort, error: Error): void {
    // A late failure of an abandoned attempt must not overwrite the current one's.
    if (controller.aborted) return;
    // A settled attempt has nothing left to abort.
    if (this.#attemptController === controller) this.#attemptController = undefined;
    this.#lastError = error;
    this.#send({ type: 'attempt.failed', attempt, error: toWireError(error) });
  }

  /** Called by the machine's `reportFailure` action: tell the supervisor. */
  reportFailure(context: TaskRunContext): void {
    const failure = context.failure;
    if (!failure) return;
    const options = this.definition.options;
    if (failure.kind === 'timeout') {
      this.#lastError = new TaskTimeoutError(`task run '${this.name}' timed out after ${options.timeoutMs} ms`);
    }
    let retryable = failure.error.retryable;
    if (retryable && failure.kind !== 'crash' && options.retryOn) {
      const error = this.#lastError ?? fromWireError(failure.error);
      try {
        retryable = options.retryOn(error) === true;
      } catch (hookError) {
        this.logger.error({ err: hookError }, 'retryOn threw; the error is not retried');
        retryable = false;
      }
    }
    const delayMs =
      failure.kind === 'crash'
        ? 0
        : retryDelayOf(options, context.failures, this.#engine.random, this.logger);
    this.#supervisor().send({
      type: 'child.failed',
      childId: this.id,
      kind: failure.kind,
      error: failure.error,
      retryable,
      failures: context.failures,
      crashes: context.crashes,
      retries: options.retries,
      crashRestarts: options.crashRestarts,
      delayMs,
      at: this.#engine.now(),
    });
  }

  /** Called by the machine's `publish` action on entry to each published state. */
  onState(name: StateName, context: TaskRunContext): void {
    const now = this.#engine.now();
    const state = makeRunState(name, now, context.attempt, context.failure?.error);
    if (name === 'AwaitingRetry') state.scheduledAt = now + context.retryDelayMs;
    this.state = state;
    this.#publish(state, context);
    if (name === 'AwaitingRetry') {
      // The stack goes with the final failure, and with retries only at debug level:
      // serialising a stack on every retried attempt is a large share of a retry's cost.
      const logger = this.logger;
      const next =
        context.failure?.kind === 'crash'
          ? `Restart ${context.crashes}/${this.definition.options.crashRestarts} after a crash`
          : `Retry ${context.failures}/${this.definition.options.retries}`;
      logger.warn({ attempt: context.attempt }, `Encountered an exception: ${state.errorName}: ${state.message} - ${next} will start ${context.retryDelayMs} ms from now`);
      if (context.failure?.kind === 'error' && logger.isLevelEnabled('debug')) {
        logger.debug({ attempt: context.attempt, err: this.#lastError }, 'The exception of the failed attempt');
      }
    } else if (isTerminal(name)) {
      this.#finish(state, context);
    }
  }

  /** Events for a run that has already ended (a late body, a late cancel) are dropped quietly. */
  #send(event: EventFromLogic<typeof taskRunMachine>): void {
    if (this.#actor.getSnapshot().status !== 'done') this.#actor.send(event);
  }

  #publish(state: RunState, context?: TaskRunContext): void {
    const flowRun = this.flowRun;
    const taskName = this.definition.options.name;
    this.#subject ??= this.#engine.subjects.taskEvent(flowRun?.flowName, flowRun?.id, taskName, this.id);
    const event: TaskStateEvent = {
      v: 1,
      type: 'task.state',
      seq: ++this.#seq,
      flowName: flowRun?.flowName,
      flowRunId: flowRun?.id,
      taskName,
      taskRunId: this.id,
      taskRunName: this.name,
      state,
      tags: this.definition.options.tags,
    };
    this.#engine.publishEvent(this.#subject, event);
    this.#engine.durable?.taskState(this, event, context?.result, this.#recordedError(state));
  }

  #recordedError(state: RunState): RecordedError | undefined {
    if (!isTerminal(state.name) || state.type === 'COMPLETED') return undefined;
    // The error of the last attempt is the run's only when that attempt failed it: a run cancelled
    // or crashed after a failed attempt ended for another reason, which its state says.
    const error = state.name === 'Failed' ? this.#lastError : undefined;
    return { name: error?.name ?? state.errorName ?? 'Error', code: state.errorCode, message: error?.message ?? state.message ?? state.name };
  }

  /** The actor failed inside tenaz (an action threw): the run ends `Crashed`, the process goes on. */
  failedInside(err: unknown): void {
    if (this.#finished) {
      this.logger.error({ err }, 'An error inside tenaz after the run had finished');
      return;
    }
    this.logger.error({ err }, `Task run '${this.name}' failed inside tenaz; it is marked Crashed`);
    this.#attemptController?.abort(new CrashedError(`task run '${this.name}' crashed`));
    const context = this.#actor.getSnapshot().context;
    const state = makeCrashedState(err, this.#engine.now(), context.attempt);
    this.state = state;
    try {
      publishCrash(() => this.#publish(state), this.logger, `task run '${this.name}'`);
    } finally {
      this.#finish(state, context);
    }
  }

  #finish(state: RunState, context: TaskRunContext): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#engine.taskRuns.delete(this.id);
    this.#engine.remote?.dispatcher.forget(this.id);
    this.#ownSupervisor?.stop();
    this.#result = context.result;
    const options = this.definition.options;
    const hooks = hooksFor(options, state);
    // Most runs have neither cache nor hooks: settle them without another turn of promises.
    // A durable run settles once its end is recorded: a resumed flow run never repeats a call it saw end.
    const durable = this.#engine.durable;
    if (durable !== undefined) void Promise.all([durable.taskSettled(this), this.#afterFinish(state, hooks)]).finally(() => this.#settle(state));
    else if (hooks.length === 0 && this.#cacheKey === undefined) this.#settle(state);
    else void this.#afterFinish(state, hooks).finally(() => this.#settle(state));
    // Logged after settling is arranged, so that a failing logger cannot leave the run unsettled.
    const failed = state.type !== 'COMPLETED' && state.name !== 'Cancelled';
    const line = `Finished in state ${formatState(state.message === undefined ? state : { name: state.name, message: `Task run encountered an exception: ${state.errorName}: ${state.message}` })}`;
    // Most task runs log only this line: bindings per call are cheaper than a child logger.
    const logger = this.#logger ?? this.flowRun?.logger ?? this.#engine.logger;
    const fields = this.#logger ? {} : { taskRunId: this.id, taskRunName: this.name, taskName: this.definition.options.name };
    if (failed) logger.error(state.name === 'Failed' ? { ...fields, err: this.#lastError } : fields, line);
    else logger.info(fields, line);
  }

  #settle(state: RunState): void {
    this.flowRun?.removeChild(this);
    this.#settled.resolve(state);
  }

  async #afterFinish(state: RunState, hooks: RunHook[]): Promise<void> {
    const options = this.definition.options;
    if (hooks.length === 0 && this.#cacheKey === undefined) return;
    if (state.name === 'Completed' && this.#cacheKey !== undefined) {
      try {
        await this.#engine.store.put(CACHE_BUCKET, this.#cacheKey, this.#result, { ttlMs: options.cacheExpirationMs });
      } catch (err) {
        this.logger.warn({ err }, 'could not write the result to the cache');
      }
    }
    if (hooks.length === 0) return;
    const completed = state.type === 'COMPLETED';
    await runHooks(
      hooks,
      { kind: 'task', runId: this.id, runName: this.name, name: options.name, state, result: completed ? this.#result : undefined, error: completed ? undefined : this.#errorFor(state) },
      this.logger,
    );
  }

  /** A task run called outside any flow gets a supervisor of its own, on its first failure. */
  #supervisor(): SupervisorActor {
    if (this.flowRun) return this.flowRun.supervisor();
    this.#ownSupervisor ??= createActor(this.#engine.machines.supervisor, {
      input: { id: this.id, maxRestarts: DEFAULT_MAX_RESTARTS, windowMs: DEFAULT_RESTART_WINDOW_MS },
    }).start();
    return this.#ownSupervisor;
  }

  #computeCacheKey(): string | undefined {
    const { cacheKey, name } = this.definition.options;
    if (!cacheKey) return undefined;
    try {
      const key = cacheKey(...this.#args);
      return typeof key === 'string' && key !== '' ? `${name}:${key}` : undefined;
    } catch (err) {
      this.logger.warn({ err }, 'cacheKey threw; the task runs without cache');
      return undefined;
    }
  }

  #errorFor(state: RunState): Error {
    switch (state.name) {
      case 'TimedOut':
        return this.#lastError instanceof TaskTimeoutError
          ? this.#lastError
          : new TaskTimeoutError(`task run '${this.name}' timed out`);
      case 'Cancelled':
        return this.#cancelledError(state.message);
      case 'Crashed':
        return new CrashedError(`task run '${this.name}' crashed: ${state.message ?? 'unknown cause'}`);
      default:
        return this.#lastError ?? new Error(state.message ?? `task run '${this.name}' failed`);
    }
  }

  /** `task run 'name' was cancelled`, and the reason the cancel gave, if any: the machine's `message`, with the run named. */
  #cancelledError(message: string | undefined): CancelledError {
    return new CancelledError(`task run '${this.name}' ${message?.replace(/^task run /, '') ?? 'was cancelled'}`);
  }
}

/**
 * What a task body sees through `getRunContext()`. A class, so that the
 * accessors are shared and each attempt costs one small object.
 */
class TaskAttemptContext implements InternalRunContext {
  constructor(
    readonly taskRunRuntime: TaskRunRuntime,
    readonly attempt: number,
    readonly abort: LazyAbort,
  ) {}

  get orchestrator(): Orchestrator {
    return this.taskRunRuntime.orchestrator;
  }
  get flowRun(): FlowRunInfo | undefined {
    return this.taskRunRuntime.flowRun?.info;
  }
  get taskRun(): TaskRunInfo {
    const run = this.taskRunRuntime;
    return { id: run.id, name: run.name, taskName: run.definition.options.name };
  }
  get logger(): Logger {
    return this.taskRunRuntime.logger;
  }
  get signal(): AbortSignal {
    return this.abort.signal;
  }
  get idempotencyKey(): string {
    return this.taskRunRuntime.idempotencyKey;
  }
  get flowRunRuntime(): FlowRunRuntime | undefined {
    return this.taskRunRuntime.flowRun;
  }
  isAborted(): boolean {
    return this.abort.aborted;
  }
}
