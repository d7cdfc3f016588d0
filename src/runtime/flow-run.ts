/**
 * The runtime side of one flow run: it owns the flow-run actor and, once a
 * task run fails, the flow run's supervisor; runs the flow function for each
 * attempt; tracks the task runs and subflows it started; publishes each
 * transition and settles the caller's handle.
 */
import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { createActor, type Actor, type EventFromLogic } from 'xstate';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { FlowRunContext, flowRunMachine } from '../../actors/flow-run.js';
import { formatState, isTerminal, type RunState, type StateName } from '../../actors/state.js';
import { hooksFor, makeCrashedState, makeRunState, publishCrash, retryDelayOf, runHooks } from './run-common.js';
import { findUnserializable } from '../codec.js';
import {
  CancelledError,
  CrashedError,
  FlowTimeoutError,
  ParameterValidationError,
  RestartIntensityError,
  UnserializableResultError,
  NonDeterminismError,
  toError,
  toWireError,
} from '../errors.js';
import type { FlowStateEvent } from '../events.js';
import type { RecordedFlowRun, RunRecorder } from '../durable/run-recorder.js';
import { failureFields } from '../nats/passing-failure.js';
import { subflowRunId, type FlowRunRecord, type RecordedError } from '../durable/records.js';
import { deferBody, depthOfNewRun, invokeBody, runContextStorage, type FlowRunInfo, type InternalRunContext } from './context.js';
import { createDeferred } from './deferred.js';
import { LazyAbort } from './lazy-abort.js';
import type { FlowDefinition } from './definitions.js';
import type { Engine, SupervisorActor } from './engine.js';
import { generateRunName } from '../names.js';
import { parameterNames } from './signature.js';


/** A run started by a flow run: a task run or a subflow. */
export interface ChildRun {
  readonly id: string;
  readonly settled: Promise<RunState>;
  cancel(reason?: string): void;
}

/**
 * One attempt of the flow function: what aborts it, and the runs it started. A retried run's
 * attempts are apart: the late end of one given up (its body ignored its signal for a while)
 * cancels and waits for its own runs, never those of the attempt after it.
 */
interface BodyAttempt {
  readonly number: number;
  readonly controller: LazyAbort;
  readonly children: Set<ChildRun>;
}

/** A flow run taken over from the record another process left: see `RunRecorder.take`. */
export interface ResumeFrom {
  record: FlowRunRecord;
  revision: number;
}

export class FlowRunRuntime implements RecordedFlowRun {
  readonly id: string;
  name: string;
  readonly flowName: string;
  readonly definition: FlowDefinition;
  readonly parent: FlowRunRuntime | undefined;
  /** A subflow's position among its parent's calls. */
  readonly position: number | undefined;
  /** How many runs deep it was called: 1 for a top-level run, else one more than the run whose body called it. */
  readonly depth: number;
  logger: Logger;
  info: FlowRunInfo;
  /** Whether the run was started before, elsewhere: its calls look up their journal first. */
  readonly resumed: boolean;
  state: RunState | undefined;

  readonly #engine: Engine;
  readonly #args: unknown[];
  readonly #settled = createDeferred<RunState>();
  readonly #actor: Actor<typeof flowRunMachine>;
  /** The attempts whose runs have not all settled, the current one last. */
  readonly #attempts: BodyAttempt[] = [];
  /** Of a resumed run: the ids of the runs it started in this process (see `startedHere`). */
  readonly #startedHere: Set<string> | undefined;
  readonly #taskCounters = new Map<string, number>();
  #supervisor: SupervisorActor | undefined;
  /** The attempt now running, until its body settles. */
  #attempt: BodyAttempt | undefined;
  #seq = 0;
  #finished = false;
  #subject: string | undefined;
  #lastError: Error | undefined;
  #result: unknown;
  #calls = 0;
  #fenced = false;
  /** What the log says when a run is taken from its record: started by name, retried, or resumed. */
  readonly #startedBy: string | undefined;
  /** Set when a resumed run's calls changed order: the run fails with it, whatever the body does. */
  #nonDeterminism: Error | undefined;

  constructor(engine: Engine, definition: FlowDefinition, args: unknown[], parent: FlowRunRuntime | undefined, resume?: ResumeFrom) {
    // First: a call refused for its depth must leave no trace (no journal position). A run
    // taken over from its record is top-level, whatever code happens to be running here.
    this.depth = resume === undefined ? depthOfNewRun('flow', definition.options.name) : 1;
    this.#engine = engine;
    this.definition = definition;
    this.#args = args;
    this.parent = parent;
    this.position = parent?.nextPosition();
    // A subflow of a resumed run is the same subflow run as before (same id, same journal).
    this.resumed = resume !== undefined || parent?.resumed === true;
    if (this.resumed) this.#startedHere = new Set();
    this.#startedBy = resume === undefined ? undefined : startedByLine(resume.record, definition.options.name);
    this.id = resume?.record.id ?? (parent ? subflowRunId(parent.id, this.position!) : randomUUID());
    this.flowName = definition.options.name;
    this.name = resume?.record.name ?? this.#makeRunName();
    this.#seq = resume?.record.lastSeq ?? 0;
    this.info = { id: this.id, name: this.name, flowName: this.flowName, parameters: args };
    this.logger = engine.logger.child({ flowRunId: this.id, flowRunName: this.name, flowName: this.flowName });
    const { retries, timeoutMs, cancelGraceMs } = definition.options;
    this.#actor = createActor(engine.machines.flow, {
      input: { flowRunId: this.id, retries, timeoutMs, cancelGraceMs, attempt: resume?.record.attempt },
    });
    if (resume) engine.durable?.adopt(this, resume.record, resume.revision);
    // See TaskRunRuntime: an error inside the machine ends this run, never the process.
    this.#actor.subscribe({ error: (err) => this.#onActorError(err) });
  }

  /** Resolves with the terminal state once the run has settled (hooks done). Never rejects. */
  get settled(): Promise<RunState> {
    return this.#settled.promise;
  }

  get parentId(): string | undefined {
    return this.parent?.id;
  }

  /** The top-level flow run this one belongs to: the one whose owner moves it forward. */
  get rootRun(): FlowRunRuntime {
    return this.parent?.rootRun ?? this;
  }

  get rootId(): string {
    return this.rootRun.id;
  }

  get parameters(): unknown[] {
    return this.#args;
  }

  get tags(): string[] {
    return this.definition.options.tags;
  }

  /** Task and subflow calls made so far. */
  get calls(): number {
    return this.#calls;
  }

  /** The position of the next call (task run or subflow) in this flow run: its key in the journal. */
  nextPosition(): number {
    return this.#calls++;
  }

  /** A call of this resumed run found another task at its position: the run fails with `error`. */
  nonDeterministic(error: Error): void {
    this.#nonDeterminism ??= error;
  }

  /**
   * Another process holds the run now (its record moved on without us): stop
   * it here, without a word to observers or to the record, which are theirs.
   */
  fence(reason: string, options: { handedOver?: boolean } = {}): void {
    if (this.#finished || this.#fenced) return;
    this.#fenced = true;
    // Handed over by this process as it closes, it is no failure: the run goes on elsewhere.
    if (options.handedOver === true) this.logger.info(`Flow run '${this.name}' is handed over: ${reason}`);
    else this.logger.error(`Flow run '${this.name}' stops in this process: ${reason}`);
    this.crash(reason);
  }

  start(): void {
    this.#engine.flowRuns.set(this.id, this);
    this.parent?.addChild(this);
    if (this.parent && this.resumed && this.#engine.durable) {
      setImmediate(() => void this.#resumeSubflow(this.parent!, this.#engine.durable!));
      return;
    }
    const where = this.parent ? this.parent.logger : this.#engine.engineLogger;
    // The new run's id goes with the line (`runs cancel` takes it); a subflow's under its own key,
    // as its parent's logger names the parent's run already.
    const ids = this.parent ? { subflowRunId: this.id } : { flowRunId: this.id };
    if (this.#startedBy !== undefined) where.info(ids, this.#startedBy);
    else where.info(ids, `Created ${this.parent ? 'subflow' : 'flow'} run '${this.name}' for flow '${this.flowName}'`);
    // A subflow starts on the next turn of the event loop: a flow that calls itself
    // before its first await then recurses through the loop, not the stack, and stays cancellable.
    // A top-level run starts once its caller's synchronous code is done, so that a `watch()`
    // of the id `start()` returned sees the run's first event (events sent before, such as a
    // cancel, wait in the actor's mailbox).
    if (this.parent) setImmediate(() => this.#actor.start());
    else queueMicrotask(() => this.#actor.start());
  }

  /**
   * A subflow of a resumed run is the subflow run that was there before, when there was one:
   * it goes on with that run's name, record and event sequence, and ends the task runs the
   * process before left in flight.
   */
  async #resumeSubflow(parent: FlowRunRuntime, durable: RunRecorder): Promise<void> {
    let previous: FlowRunRecord | undefined;
    try {
      previous = await durable.resumeSubflow(this);
    } catch (err) {
      parent.logger.warn({ ...failureFields(err), flowRunId: this.id }, 'could not read the record of the resumed subflow run; it starts a new one');
    }
    if (previous === undefined) {
      parent.logger.info(`Created subflow run '${this.name}' for flow '${this.flowName}'`);
    } else {
      this.name = previous.name;
      this.#seq = previous.lastSeq;
      this.info = { ...this.info, name: this.name };
      this.logger = this.#engine.logger.child({ flowRunId: this.id, flowRunName: this.name, flowName: this.flowName });
      parent.logger.info(`Resuming subflow run '${this.name}' of flow '${this.flowName}'`);
      this.#engine.endLostTaskRuns(this);
    }
    this.#actor.start();
  }

  cancel(reason = 'cancelled'): void {
    this.#send({ type: 'cancel', reason });
  }

  /** Forced stop of the process's runs: the run ends `Crashed`. */
  crash(message: string): void {
    this.#send({ type: 'crash', error: toWireError(new CrashedError(message)) });
  }

  async result(): Promise<unknown> {
    const state = await this.#settled.promise;
    if (state.type === 'COMPLETED') return this.#result;
    throw this.#errorFor(state);
  }

  /** The next index for a task run name within this flow run: `call-api-0`, `call-api-1`, ... */
  nextTaskIndex(taskName: string): number {
    const index = this.#taskCounters.get(taskName) ?? 0;
    this.#taskCounters.set(taskName, index + 1);
    return index;
  }

  /** `child` was started by the current attempt's body (an aborted attempt's body can start none). */
  addChild(child: ChildRun): void {
    (this.#attempts.at(-1) ?? this.#newAttempt(this.#actor.getSnapshot().context.attempt)).children.add(child);
    this.#startedHere?.add(child.id);
  }

  /** Whether this process started the run `id` as a call of this resumed run (not the process before it). */
  startedHere(id: string): boolean {
    return this.#startedHere?.has(id) === true;
  }

  removeChild(child: ChildRun): void {
    for (const attempt of this.#attempts) if (attempt.children.delete(child)) return;
  }

  /** The flow run's supervisor, created on the first task failure: most runs never need one. */
  supervisor(): SupervisorActor {
    if (!this.#supervisor) {
      const { maxRestarts, restartWindowMs } = this.definition.options;
      this.#supervisor = createActor(this.#engine.machines.supervisor, {
        input: { id: this.id, maxRestarts, windowMs: restartWindowMs },
      }).start();
    }
    return this.#supervisor;
  }

  /** Called by the supervisor's `escalate` action. */
  escalate(reason: string): void {
    this.#lastError = new RestartIntensityError(`flow run '${this.name}' gave up: ${reason}`);
    this.#send({ type: 'supervisor.escalated', error: toWireError(this.#lastError) });
  }

  /**
   * Called by the machine's `cancelChildren` action: aborts the attempt's signal now, so that
   * its body starts no run from here on (nor starts at all, if it has not yet), and cancels the
   * runs it started once the action has returned (no actor's transition nests in another's).
   * Only the current attempt's: by then the run may have started its next attempt, which is
   * not touched.
   */
  cancelChildren(reason: string): void {
    const attempt = this.#attempt;
    const number = attempt?.number ?? this.#actor.getSnapshot().context.attempt;
    attempt?.controller.abort(new CancelledError(`flow run '${this.name}': ${reason}`));
    queueMicrotask(() => {
      if (attempt !== undefined) cancelAll(attempt.children, reason);
      // The machine may wait for them (a timed-out attempt), to end after its runs.
      void settledAll(attempt?.children ?? new Set()).then(() => this.#send({ type: 'children.settled', attempt: number }));
    });
  }

  /** The machine's `decideRetryDelay`: the flow's retry policy, for the attempt that just failed. */
  retryDelayMs(context: FlowRunContext): number {
    return retryDelayOf(this.definition.options, context.attempt, this.#engine.random, this.logger);
  }

  /** Called by the machine's `startBody` action: one attempt of the flow function, its outcome sent as an event. */
  startBody(attempt: number): void {
    const current = this.#newAttempt(attempt);
    const { controller } = current;
    this.#attempt = current;
    // After the machine's action returns, never inside it (see TaskRunRuntime.startAttempt).
    deferBody(() => this.#runAttempt(attempt, current)).then(
      (value) => {
        // A settled attempt has nothing left to abort.
        if (this.#attempt === current) this.#attempt = undefined;
        this.#send({ type: 'body.succeeded', attempt, value });
      },
      (thrown: unknown) => {
        if (this.#attempt === current) this.#attempt = undefined;
        const error = toError(thrown);
        if (!controller.aborted) this.#lastError = error;
        const wire = toWireError(error);
        if (wire.retryable && this.definition.options.retryOn) wire.retryable = this.#retryOn(error);
        this.#send({ type: 'body.failed', attempt, error: wire });
      },
    );
  }

  /** Called by the machine's `abortBody` action: the attempt is over, for the reason named. */
  abortBody(reason: string): void {
    const controller = this.#attempt?.controller;
    if (!controller || controller.aborted) return;
    const { timeoutMs } = this.definition.options;
    controller.abort(
      reason === 'attempt.timedOut'
        ? new FlowTimeoutError(`flow run '${this.name}' timed out after ${timeoutMs} ms`)
        : new CancelledError(`flow run '${this.name}' attempt was given up (${reason})`),
    );
  }

  /** An attempt starts with no runs of its own; it is kept until they have all settled. */
  #newAttempt(number: number): BodyAttempt {
    const attempt: BodyAttempt = { number, controller: new LazyAbort(), children: new Set() };
    this.#attempts.push(attempt);
    return attempt;
  }

  async #runAttempt(attempt: number, current: BodyAttempt): Promise<unknown> {
    try {
      return await this.#runBody(attempt, current);
    } finally {
      // Kept for the runs the body started: they settle before the attempt's outcome is told.
      this.#attempts.splice(this.#attempts.indexOf(current), 1);
    }
  }

  async #runBody(attempt: number, { controller, children }: BodyAttempt): Promise<unknown> {
    // Given up before its body began (cancelled as it started): the body never runs.
    if (controller.aborted) throw controller.reason;
    const args = this.#validatedArgs();
    // A subflow of a resumed run: the call at its position must have been this flow before.
    if (this.resumed && this.parent && this.#engine.durable) {
      const conflict = await this.#engine.durable.subflowConflict(this.parent.id, this.position!, this.id, this.flowName);
      if (conflict !== undefined) {
        const error = new NonDeterminismError(
          `flow run '${this.parent.name}' resumed and its call #${this.position! + 1} is subflow '${this.flowName}', but it was ${conflict} before: ` +
            'a flow must call its tasks and subflows in the same order on every run (see "Durable runs" in the README)',
        );
        this.parent.nonDeterministic(error);
        throw error;
      }
    }
    const context: InternalRunContext = {
      orchestrator: this.#engine.orchestrator,
      flowRun: this.info,
      taskRun: undefined,
      logger: this.logger,
      get signal() {
        return controller.signal;
      },
      isAborted: () => controller.aborted,
      attempt,
      idempotencyKey: this.id,
      flowRunRuntime: this,
      taskRunRuntime: undefined,
    };
    controller.within(context);
    let value: unknown;
    try {
      value = await runContextStorage.run(context, invokeBody, this.definition.fn, args);
    } catch (thrown) {
      // Only the children: the attempt itself is not aborted, its error is the run's error.
      cancelAll(children, 'the flow body failed');
      throw thrown;
    } finally {
      // Task runs the body submitted but never awaited still belong to this attempt.
      await settledAll(children);
    }
    if (this.#nonDeterminism) throw this.#nonDeterminism;
    const where = findUnserializable(value);
    if (where !== null) {
      throw new UnserializableResultError(`flow '${this.flowName}' returned a value that cannot be serialised: ${where}`);
    }
    const tooLarge = this.#engine.durable?.checkResult(value, `flow run '${this.name}'`);
    if (tooLarge) throw tooLarge;
    return value;
  }

  /** Called by the machine's `publish` action on entry to each published state. */
  onState(name: StateName, context: FlowRunContext): void {
    const now = this.#engine.now();
    const state = makeRunState(name, now, context.attempt, context.failure?.error);
    if (name === 'AwaitingRetry') state.scheduledAt = now + context.retryDelayMs;
    this.state = state;
    this.#publish(state, context);
    if (name === 'AwaitingRetry') {
      // As for task runs: the stack goes with the final failure, and with retries only at debug level.
      this.logger.warn(
        { attempt: context.attempt },
        `Encountered an exception: ${state.errorName}: ${state.message} - Retry ${context.attempt}/${context.retries} will start ${context.retryDelayMs} ms from now`,
      );
      if (this.logger.isLevelEnabled('debug')) this.logger.debug({ attempt: context.attempt, err: this.#lastError }, 'The exception of the failed attempt');
    } else if (isTerminal(name)) {
      this.#finish(state, context);
    }
  }

  /** Events for a run that has already ended (a late body, a late cancel) are dropped quietly. */
  #send(event: EventFromLogic<typeof flowRunMachine>): void {
    if (this.#actor.getSnapshot().status !== 'done') this.#actor.send(event);
  }

  #publish(state: RunState, context?: FlowRunContext): void {
    // Fenced: the run belongs to another process, which tells observers and the record itself.
    if (this.#fenced) return;
    this.#subject ??= this.#engine.subjects.flowEvent(this.flowName, this.id);
    const event: FlowStateEvent = {
      v: 1,
      type: 'flow.state',
      seq: ++this.#seq,
      flowName: this.flowName,
      flowRunId: this.id,
      flowRunName: this.name,
      parentFlowRunId: this.parent?.id,
      state,
      tags: this.definition.options.tags,
    };
    this.#engine.publishEvent(this.#subject, event);
    this.#engine.durable?.flowState(this, event, context?.result, this.#recordedError(state));
  }

  #recordedError(state: RunState): RecordedError | undefined {
    if (!isTerminal(state.name) || state.type === 'COMPLETED') return undefined;
    const error = state.name === 'Failed' ? this.#lastError : undefined;
    return { name: error?.name ?? state.errorName ?? 'Error', code: state.errorCode, message: error?.message ?? state.message ?? state.name };
  }

  #onActorError(err: unknown): void {
    if (this.#finished) {
      this.logger.error({ err }, 'An error inside tenaz after the run had finished');
      return;
    }
    this.logger.error({ err }, `Flow run '${this.name}' failed inside tenaz; it is marked Crashed`);
    this.cancelChildren('crashed');
    const context = this.#actor.getSnapshot().context;
    const state = makeCrashedState(err, this.#engine.now(), context.attempt);
    this.state = state;
    try {
      publishCrash(() => this.#publish(state), this.logger, `flow run '${this.name}'`);
    } finally {
      this.#finish(state, context);
    }
  }

  #finish(state: RunState, context: FlowRunContext): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#engine.flowRuns.delete(this.id);
    this.#result = context.result;
    this.#supervisor?.stop();
    // A durable run settles once its end is recorded.
    const recorded = this.#fenced ? undefined : this.#engine.durable?.flowSettled(this);
    // Nor its hooks: the process that goes on with a fenced run runs them at its real end.
    void Promise.all([recorded, this.#fenced ? undefined : this.#runHooks(state)]).finally(() => {
      this.parent?.removeChild(this);
      this.#settled.resolve(state);
    });
    // A fenced run's end here is not its end, which another process tells: the fence said why it stopped.
    if (this.#fenced) return;
    // Logged after settling is arranged, so that a failing logger cannot leave the run unsettled.
    const failed = state.type !== 'COMPLETED' && state.name !== 'Cancelled';
    const shown = state.message === undefined ? state : { name: state.name, message: `Flow run encountered an exception: ${state.errorName}: ${state.message}` };
    const line = `Finished in state ${formatState(shown)}`;
    if (failed) this.logger.error(line);
    else this.logger.info(line);
  }

  async #runHooks(state: RunState): Promise<void> {
    const hooks = hooksFor(this.definition.options, state);
    if (hooks.length === 0) return;
    const completed = state.type === 'COMPLETED';
    await runHooks(
      hooks,
      { kind: 'flow', runId: this.id, runName: this.name, name: this.flowName, state, result: completed ? this.#result : undefined, error: completed ? undefined : this.#errorFor(state) },
      this.logger,
    );
  }

  #validatedArgs(): unknown[] {
    const schema = this.definition.options.params;
    if (!schema) return this.#args;
    const isTuple = schema instanceof z.ZodTuple;
    const parsed = schema.safeParse(isTuple ? this.#args : this.#args[0]);
    if (!parsed.success) {
      const details = parsed.error.issues
        .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(parameters)'}: ${issue.message}`)
        .join('; ');
      throw new ParameterValidationError(`invalid parameters for flow '${this.flowName}': ${details}`);
    }
    return isTuple ? (parsed.data as unknown[]) : [parsed.data];
  }

  #retryOn(error: Error): boolean {
    try {
      return this.definition.options.retryOn?.(error) === true;
    } catch (err) {
      this.logger.error({ err }, 'retryOn threw; the error is not retried');
      return false;
    }
  }

  /** The run's name from the flow's `runName`; a generated one when that gives no name, with a warning. */
  #makeRunName(): string {
    const template = this.definition.options.runName;
    if (template === undefined) return generateRunName();
    let name: unknown;
    try {
      name = typeof template === 'function' ? template(...this.#args) : this.#fillRunName(template);
    } catch (err) {
      // A broken run-name function must not stop the run.
      const generated = generateRunName();
      this.#engine.engineLogger.warn({ err }, `runName of flow '${this.flowName}' threw; the run is named '${generated}'`);
      return generated;
    }
    if (typeof name === 'string' && name.trim() !== '') return name;
    const generated = generateRunName();
    // inspect, not JSON: it describes any value (a bigint, a cycle, NaN) and never throws.
    this.#engine.engineLogger.warn(`runName of flow '${this.flowName}' gave ${inspect(name, { depth: 1, breakLength: Infinity })}, not a name; the run is named '${generated}'`);
    return generated;
  }

  /**
   * Fills a `runName` template's placeholders. They name the flow's parameters: the fields of
   * its single argument where a schema (not a tuple) validates that argument, else the flow
   * function's own parameters, by position.
   */
  #fillRunName(template: string): string {
    const schema = this.definition.options.params;
    const fields = schema && !(schema instanceof z.ZodTuple) ? ((this.#args[0] ?? {}) as Record<string, unknown>) : undefined;
    const positions = fields ? [] : parameterNames(this.definition.fn);
    const valueOf = (key: string): unknown => {
      if (fields) return fields[key];
      const position = positions.indexOf(key);
      return position < 0 ? undefined : this.#args[position];
    };
    return template.replace(/\{(\w+)\}/g, (_, key: string) => String(valueOf(key) ?? `{${key}}`));
  }

  #errorFor(state: RunState): Error {
    switch (state.name) {
      case 'TimedOut':
        return new FlowTimeoutError(`flow run '${this.name}' timed out after ${this.definition.options.timeoutMs} ms`);
      case 'Cancelled':
        // `flow run was cancelled`, and the reason the cancel gave, if any.
        return new CancelledError(`flow run '${this.name}' ${state.message?.replace(/^flow run /, '') ?? 'was cancelled'}`);
      case 'Crashed':
        return new CrashedError(`flow run '${this.name}' crashed: ${state.message ?? 'unknown cause'}`);
      default:
        return this.#lastError ?? new Error(state.message ?? `flow run '${this.name}' failed`);
    }
  }
}

/** A run taken from its record was queued by name (`Scheduled`), maybe as a retry, or was running elsewhere. */
function startedByLine(record: FlowRunRecord, flowName: string): string {
  if (record.state.name !== 'Scheduled') return `Resuming flow run '${record.name}' of flow '${flowName}'`;
  if (record.attempt > 1) return `Retrying flow run '${record.name}' of flow '${flowName}' (attempt ${record.attempt})`;
  return `Created flow run '${record.name}' for flow '${flowName}'`;
}

function cancelAll(children: Iterable<ChildRun>, reason: string): void {
  for (const child of [...children]) child.cancel(reason);
}

/** Resolves once every run in `children` has settled, those added meanwhile too. */
async function settledAll(children: Set<ChildRun>): Promise<void> {
  while (children.size > 0) await Promise.all(Array.from(children, (child) => child.settled));
}
