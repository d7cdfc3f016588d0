/**
 * A worker: takes dispatched task runs of the tasks it serves from the tasks
 * stream, claims each attempt from the run's owner, runs the body, heartbeats
 * while it runs, and sends the outcome back. Only tasks defined in this
 * process's own code run here, looked up by name: no code travels on the bus.
 *
 * A first delivery starts its body at once, its claim on the way: the owner
 * gets the claim before the outcome, which may follow in the same batch, and a
 * body whose claim is refused (the attempt was given up, or its owner is gone)
 * is aborted and reports nothing. A dispatch delivered again waits for its
 * claim: its owner may be gone.
 *
 * A dispatch is acked only once the owner has accepted the claim: a worker that
 * dies before that leaves the dispatch in the stream, to be delivered again.
 * After the claim, a worker that dies stops heartbeating and the owner's
 * task-run machine marks the attempt `Crashed`.
 */
import { randomUUID } from 'node:crypto';
import { createActor, type Actor } from 'xstate';
import { workerMachine } from '../../actors/worker.js';
import { jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus, BusMessage, Delivery, Subscription } from '../bus/bus.js';
import { findUnserializable, parseMessage, toWireValue } from '../codec.js';
import {
  CancelledError,
  ClosedError,
  CrashedError,
  InvalidArgumentError,
  NoRespondersError,
  PayloadTooLargeError,
  PermissionDeniedError,
  TaskTimeoutError,
  TimeoutError,
  UnserializableResultError,
  toError,
  toRemoteWireError,
  toWireError,
} from '../errors.js';
import { DEFAULT_POOL } from '../options.js';
import type { Subjects } from '../subjects.js';
import { runContextStorage, invokeBody } from '../runtime/context.js';
import { definitionOf, registeredTasks, type TaskDefinition } from '../runtime/definitions.js';
import type { Orchestrator } from '../runtime/orchestrator.js';
import { DropCounter } from '../drop-counter.js';
import {
  WIRE_VERSION,
  taskCancelSchema,
  wire,
  type TaskClaim,
  type TaskDispatch,
  type TaskHeartbeat,
  type TaskOutcome,
} from './messages.js';
import { ensureTaskConsumer, ensureTasksStream, DISPATCH_ACK_WAIT_MS } from './streams.js';
import { WorkerAttemptContext } from './worker-context.js';
import { OwnerRequests } from './owner-requests.js';
import { parseClaimReply, parseOutcomeReply, parseTaskDispatch } from './parse-messages.js';
import { Sema } from 'async-sema';
import { LazyAbort } from '../runtime/lazy-abort.js';
import { failureFields } from '../nats/passing-failure.js';

export interface WorkerOptions {
  /** The tasks served, as made by `task()`. @default every task defined in this process */
  tasks?: readonly unknown[];
  /** The pool whose dispatches are taken. @default each task's own `pool` option */
  pool?: string;
  /** Task runs executed at once. @default 16 */
  concurrency?: number;
  /** How long `drain()` lets running bodies finish before handing them back, in ms. @default 30000 */
  graceMs?: number;
}

export interface WorkerDrainOptions {
  /** How long running task bodies may take before they are aborted and handed back, in ms. @default the worker's `graceMs` */
  graceMs?: number;
}

/** What a worker has done so far. */
export interface WorkerStats {
  /** Attempts running now. */
  running: number;
  /** Attempts whose outcome was sent. */
  finished: number;
  /** Dispatches dropped as invalid or unknown. */
  dropped: number;
}

interface WorkerInternals {
  orchestrator: Orchestrator;
  connection: NatsConnection;
  bus: Bus;
  subjects: Subjects;
  logger: Logger;
  /** Copies of the task stream, if this worker creates it. */
  replicas: number;
}

interface HeldAttempt {
  readonly dispatch: TaskDispatch;
  /** Whether the owner accepted the claim (the dispatch is then acked). */
  readonly claim: Promise<boolean>;
  /** Made into an AbortController only if the body reads its signal. */
  readonly controller: LazyAbort;
  /**
   * The owner's answer to the claim, once it came. `accepted`: the owner watches the attempt's
   * heartbeats. `refused`: the body is aborted, and its outcome not sent.
   */
  claimAnswer: 'awaited' | 'accepted' | 'refused';
  /** Handed back to the owner: the body's own outcome, if it ever comes, is not sent. */
  handedBack: boolean;
  /** Frees the slot of a body that its owner gave up and that has not ended since. */
  abandon?: () => void;
}

const DEFAULT_CONCURRENCY = 16;
/**
 * How long a body its owner gave up (timed out, cancelled) has to end once aborted before its
 * slot is freed anyway: a body that ignores its signal must not take the worker's capacity
 * for ever, and the attempt that replaces it may be waiting for this very slot.
 */
const ABANDONED_BODY_GRACE_MS = 5_000;
/** How long one pull request for dispatches lasts at the server, in ms (nats.js allows 1,000 and up). */
const PULL_EXPIRES_MS = 2_000;

/**
 * Attempts are held by task run and attempt: a task run's next attempt may come to the same
 * worker while the body of the one given up (timed out, say) is still ending.
 */
const heldKey = (taskRunId: string, attempt: number): string => `${taskRunId}#${attempt}`;
/** Sent on every task run: constants, as the machine only reads them. */
const RUN_TAKEN = { type: 'run.taken' } as const;
const RUN_FINISHED = { type: 'run.finished' } as const;
const DEFAULT_GRACE_MS = 30_000;
const CLAIM_TIMEOUT_MS = 5_000;
/** How long a worker keeps trying to hand an outcome to an owner that does not answer. */
const OUTCOME_DELIVERY_MS = 60_000;
/**
 * How long an owner may be heard of by nobody (no responders) before the worker stops handing it
 * an outcome, in ms: long enough for an owner to reconnect after a server restart.
 */
const OWNER_GONE_MS = 10_000;
/** How long a worker asks again for a claim that got no answer (the server away for a moment), in ms. */
const CLAIM_RETRY_MS = 15_000;
/** Deliveries of a dispatch whose owner cannot be reached before the dispatch is dropped. */
const MAX_OWNERLESS_DELIVERIES = 30;

export class TaskWorker implements AsyncDisposable {
  readonly id = randomUUID();
  readonly pool: string | undefined;
  readonly concurrency: number;
  readonly #subject: string;
  /** What every owner subject starts with: `<ns>.owner.`. */
  readonly #ownerPrefix: string;
  readonly #internals: WorkerInternals;
  readonly #logger: Logger;
  readonly #tasks: Map<string, TaskDefinition>;
  /** Free execution slots: `concurrency` of them. */
  readonly #slots: Sema;
  readonly #held = new Map<string, HeldAttempt>();
  readonly #running = new Set<Promise<void>>();
  readonly #drops: DropCounter;
  /** The dispatches of a dead owner's fan-out are dropped together: counted in one line, not one each. */
  readonly #ownerless: DropCounter;
  /** Claims and outcomes, batched per owner. */
  readonly #owners: OwnerRequests;
  readonly #consumers: ConsumerMessages[] = [];
  readonly #control: Subscription;
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  #rejectReady!: (error: unknown) => void;
  readonly #actor: Actor<typeof workerMachine>;
  #consuming = false;
  #stopReason: Error | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #heartbeatMs = Infinity;
  #finished = 0;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(options: WorkerOptions & WorkerInternals) {
    this.#internals = options;
    this.pool = options.pool;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new InvalidArgumentError(`concurrency must be a positive integer, got ${options.concurrency}`);
    }
    if (this.pool !== undefined && (typeof this.pool !== 'string' || this.pool === '')) {
      throw new InvalidArgumentError(`pool must be a non-empty string, got ${JSON.stringify(this.pool)}`);
    }
    this.#tasks = resolveTasks(options.tasks);
    this.#logger = options.logger.child({ component: 'tenaz.worker', workerId: this.id });
    this.#slots = new Sema(this.concurrency);
    this.#drops = new DropCounter(this.#logger, 'dropped a dispatch that is not a valid task run of a task served here');
    this.#ownerless = new DropCounter(this.#logger, 'dropped a dispatch whose owner never answered');
    this.#owners = new OwnerRequests(options.bus, CLAIM_TIMEOUT_MS);
    this.#subject = options.subjects.worker(this.id);
    this.#ownerPrefix = options.subjects.owner('x').slice(0, -1);
    this.#control = options.bus.subscribe(this.#subject, { callback: (delivery) => this.#onControl(delivery) });
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // `ready()` is optional for callers: a start failure is logged, never left unhandled.
    this.#ready.catch(() => {});
    const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    if (!Number.isFinite(graceMs) || graceMs < 0) throw new InvalidArgumentError(`graceMs must be a number of ms, got ${options.graceMs}`);
    const machine = workerMachine.provide({
      actions: {
        startConsuming: () => {
          this.#start().then(
            () => this.#actor.send({ type: 'consuming' }),
            (error: unknown) => this.#actor.send({ type: 'startFailed', error }),
          );
        },
        stopConsuming: () => void this.#stopConsuming(),
        // Aborting runs the bodies' abort listeners: not inside the machine's action.
        handBack: () => queueMicrotask(() => this.#handBack()),
        stopped: ({ context }) => this.#onStopped(context.startError),
      },
    });
    this.#actor = createActor(machine, { input: { graceMs } });
    this.#actor.subscribe({ error: (err) => this.#logger.error({ err }, 'the worker failed inside tenaz') });
    this.#actor.start();
  }

  /** Resolves once the worker consumes from the stream; rejects if it could not start. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The names of the tasks served. */
  get taskNames(): string[] {
    return [...this.#tasks.keys()];
  }

  get stats(): WorkerStats {
    return { running: this.#held.size, finished: this.#finished, dropped: this.#drops.count };
  }

  /** Resolves once the worker has stopped. Never rejects. */
  closed(): Promise<void> {
    return this.#closed;
  }

  /** Why the worker stopped by itself, when the server refused its user what a worker must do. */
  get stopReason(): Error | undefined {
    return this.#stopReason;
  }

  #refused(error: PermissionDeniedError): void {
    if (this.#stopReason !== undefined) return;
    this.#stopReason = error;
    this.#logger.error({ reason: error.message }, 'the NATS server refuses this user the claims of task runs; the worker stops');
    void this.close();
  }

  /** Stops taking task runs, lets the running ones finish within `graceMs`, hands the rest back, then stops. */
  drain(options: WorkerDrainOptions = {}): Promise<void> {
    this.#actor.send({ type: 'drain', graceMs: options.graceMs });
    return this.#closed;
  }

  /** Stops now: running task bodies are aborted and handed back to their owners, who restart them. */
  close(): Promise<void> {
    this.#actor.send({ type: 'close' });
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  get #serving(): boolean {
    return this.#actor.getSnapshot().value === 'Serving';
  }

  async #start(): Promise<void> {
    const { connection, subjects } = this.#internals;
    const jsm = await jetstreamManager(connection);
    await ensureTasksStream(jsm, subjects, this.#internals.replicas);
    const js = jetstream(connection);
    for (const [name, definition] of this.#tasks) {
      const pool = this.pool ?? definition.options.pool ?? DEFAULT_POOL;
      const consumerName = await ensureTaskConsumer(jsm, subjects, pool, name);
      if (this.#actor.getSnapshot().value !== 'Starting') return;
      const consumer = await js.consumers.get(subjects.tasksStream, consumerName);
      // Short pull requests: the server goes on handing dispatches to a pull until it expires, and
      // a worker frozen mid-work (SIGSTOP, a paused VM) would take the restarts of the very attempts
      // it lost, each then waiting out the ack wait. Expired after 2 s, a frozen worker's pull is
      // gone by the time its attempts are judged crashed (3 s by default).
      const messages = await consumer.consume({ max_messages: this.concurrency, expires: PULL_EXPIRES_MS });
      this.#consumers.push(messages);
      void this.#consume(messages, definition);
    }
    this.#consuming = true;
    this.#logger.info({ tasks: this.taskNames, pool: this.pool, concurrency: this.concurrency }, `Worker started; serving ${this.#tasks.size} task(s)`);
    this.#resolveReady();
  }

  async #consume(messages: ConsumerMessages, definition: TaskDefinition): Promise<void> {
    try {
      for await (const message of messages) {
        // A dispatch waiting for a free slot is marked in progress so that it is not delivered elsewhere meanwhile.
        if (this.#slots.tryAcquire() === undefined) {
          const keepAlive = setInterval(() => message.working(), DISPATCH_ACK_WAIT_MS / 2);
          await this.#slots.acquire();
          clearInterval(keepAlive);
        }
        if (!this.#serving) {
          this.#slots.release();
          message.nak();
          continue;
        }
        const running = this.#take(message, definition).finally(() => {
          this.#slots.release();
          this.#running.delete(running);
        });
        this.#running.add(running);
      }
    } catch (err) {
      if (this.#serving) this.#logger.error({ err, taskName: definition.options.name }, 'stopped taking task runs of this task');
    }
  }

  /** One dispatch: validate, claim, run, report. Never throws. */
  async #take(message: JsMsg, definition: TaskDefinition): Promise<void> {
    const dispatch = this.#parseDispatch(message, definition);
    if (dispatch === null) {
      message.term();
      return;
    }
    if (this.#actor.getSnapshot().status === 'done') {
      // Taken while the worker stopped: left to another worker.
      message.nak();
      return;
    }
    const claim = this.#claim(message, dispatch).then((accepted) => {
      if (accepted) message.ack();
      return accepted;
    });
    // Delivered again: its owner may be gone, or another worker hold the attempt.
    if (message.info.deliveryCount > 1 && !(await claim)) return;
    const held: HeldAttempt = { dispatch, claim, controller: new LazyAbort(), claimAnswer: 'awaited', handedBack: false };
    if (this.#actor.getSnapshot().status === 'done') {
      // Claimed while the worker stopped: hand it straight back.
      await this.#handBackOne(held);
      return;
    }
    this.#held.set(heldKey(dispatch.taskRunId, dispatch.attempt), held);
    this.#actor.send(RUN_TAKEN);
    void claim.then((accepted) => {
      held.claimAnswer = accepted ? 'accepted' : 'refused';
      if (accepted) {
        if (this.#held.get(heldKey(dispatch.taskRunId, dispatch.attempt)) === held) this.#scheduleHeartbeats(dispatch.heartbeatMs);
        return;
      }
      if (!held.controller.aborted) held.controller.abort(new CancelledError(`task run '${dispatch.taskRunName}' was given up: its owner did not accept the claim`));
    });
    try {
      const running = this.#run(held, definition);
      const abandoned = new Promise<'abandoned'>((resolve) => (held.abandon = () => resolve('abandoned')));
      // A refused claim frees the slot at once: the body, told by its signal, ends when it will.
      const outcome = await Promise.race([running, claim.then((accepted) => (accepted ? running : undefined)), abandoned]);
      if (outcome === undefined) return;
      if (outcome === 'abandoned') {
        this.#logger.warn(
          { taskRunId: dispatch.taskRunId, taskRunName: dispatch.taskRunName, attempt: dispatch.attempt },
          `The body of task run '${dispatch.taskRunName}' was given up and has not ended ${ABANDONED_BODY_GRACE_MS} ms after its signal was aborted; ` +
            'its slot is freed, though it may still be running (a task body should end when its signal aborts)',
        );
        return;
      }
      // The outcome follows the claim at once, without waiting for its answer.
      if (!held.handedBack && held.claimAnswer !== 'refused' && (!held.controller.aborted || outcome.ok === false)) await this.#deliver(dispatch, outcome, held);
      // The dispatch is acked or left to the stream before the slot is free again.
      await claim;
    } finally {
      this.#release(held);
    }
  }

  /** The worker is done with the attempt: no more heartbeats for it, and one less running. Idempotent. */
  #release(held: HeldAttempt): void {
    const key = heldKey(held.dispatch.taskRunId, held.dispatch.attempt);
    if (this.#held.get(key) !== held) return;
    this.#held.delete(key);
    this.#finished += 1;
    if (this.#held.size === 0) {
      // Nothing to heartbeat: the next attempt sets the pace again (owners may ask for another).
      clearInterval(this.#heartbeatTimer);
      this.#heartbeatTimer = undefined;
      this.#heartbeatMs = Infinity;
    }
    this.#actor.send(RUN_FINISHED);
  }

  /**
   * Gives the attempt back: its owner, told at once, restarts it elsewhere; one whose claim
   * was not accepted is the stream's again. The body, told by its signal, may end when it will.
   */
  async #handBackOne(held: HeldAttempt): Promise<void> {
    held.handedBack = true;
    if (!held.controller.aborted) held.controller.abort(new CrashedError('the worker running the task run stopped'));
    if (!(await held.claim)) return;
    const { dispatch } = held;
    const error = toWireError(new CrashedError('the worker running the task run stopped'));
    await this.#deliver(dispatch, wire<TaskOutcome>({ type: 'task.outcome', taskRunId: dispatch.taskRunId, attempt: dispatch.attempt, workerId: this.id, ok: false, error }));
  }

  #parseDispatch(message: JsMsg, definition: TaskDefinition): TaskDispatch | null {
    const decoded = parseMessage(message.data);
    const dispatch = decoded === null ? null : parseTaskDispatch(decoded);
    if (dispatch === null) {
      this.#drops.drop({ subject: message.subject, reason: decoded === null ? 'not a msgpack map with v and type' : 'not a task.dispatch' });
      return null;
    }
    if (dispatch.taskName !== definition.options.name) {
      this.#drops.drop({ subject: message.subject, reason: `for task '${dispatch.taskName}' on the subject of '${definition.options.name}'` });
      return null;
    }
    // The owner subject comes off the wire: only a plain owner subject of our namespace is ever requested.
    const prefix = this.#ownerPrefix;
    const ownerToken = dispatch.owner.slice(prefix.length);
    if (!dispatch.owner.startsWith(prefix) || ownerToken === '' || /[.*>\s]/.test(ownerToken)) {
      this.#drops.drop({ subject: message.subject, reason: 'the owner subject is not an owner subject' });
      return null;
    }
    return dispatch;
  }

  /** Asks the owner for the attempt. Leaves the dispatch to be delivered again when the owner cannot answer now. */
  async #claim(message: JsMsg, dispatch: TaskDispatch): Promise<boolean> {
    const claim = wire<TaskClaim>({ type: 'task.claim', taskRunId: dispatch.taskRunId, attempt: dispatch.attempt, workerId: this.id, worker: this.#subject });
    const fields = { taskRunId: dispatch.taskRunId, attempt: dispatch.attempt };
    let reply: BusMessage;
    try {
      reply = await this.#requestClaim(message, dispatch, claim);
    } catch (err) {
      if (err instanceof PermissionDeniedError) {
        // No claim of this user's will ever be taken: stop, leaving the dispatch to a worker that can.
        message.nak();
        this.#refused(err);
        return false;
      }
      const deliveries = message.info.deliveryCount;
      if (deliveries >= MAX_OWNERLESS_DELIVERIES) {
        this.#ownerless.drop({ ...fields, ...failureFields(err), deliveries });
        message.term();
      } else {
        this.#logger.debug({ ...fields, ...failureFields(err) }, 'the owner did not answer the claim; the dispatch is delivered again later');
        message.nak(1_000);
      }
      return false;
    }
    const parsed = parseClaimReply(reply);
    if (parsed === null) {
      this.#logger.warn(fields, 'the owner answered the claim with something else; the dispatch is delivered again later');
      message.nak(1_000);
      return false;
    }
    if (!parsed.accepted) {
      // Another worker has it, or the attempt was given up: this copy of the dispatch is stale.
      this.#logger.debug({ ...fields, reason: parsed.reason }, 'the owner refused the claim');
      message.term();
      return false;
    }
    return true;
  }

  async #run(held: HeldAttempt, definition: TaskDefinition): Promise<TaskOutcome> {
    const { dispatch, controller } = held;
    const { taskRunId, attempt } = dispatch;
    const workerId = this.id;
    const context = new WorkerAttemptContext(this.#internals.orchestrator, dispatch, controller, this.#logger);
    controller.within(context);
    try {
      const value = await runContextStorage.run(context, invokeBody, definition.fn, dispatch.args);
      const where = findUnserializable(value);
      if (where !== null) {
        const error = new UnserializableResultError(`task '${dispatch.taskName}' returned a value that cannot be serialised: ${where}`);
        return { v: WIRE_VERSION, type: 'task.outcome', taskRunId, attempt, workerId, ok: false, error: toWireError(error) };
      }
      return { v: WIRE_VERSION, type: 'task.outcome', taskRunId, attempt, workerId, ok: true, value: toWireValue(value) };
    } catch (thrown) {
      // A body aborted because this worker stops is handed back as a crash: it runs again elsewhere.
      const reason: unknown = controller.aborted ? controller.signal.reason : undefined;
      const error = reason instanceof CrashedError ? reason : toError(thrown);
      return { v: WIRE_VERSION, type: 'task.outcome', taskRunId, attempt, workerId, ok: false, error: toRemoteWireError(error) };
    }
  }

  /**
   * Hands the outcome to the owner, trying again while it does not answer (it may be
   * reconnecting), unless the claim of `held` turns out refused meanwhile.
   */
  async #deliver(dispatch: TaskDispatch, outcome: TaskOutcome, held?: HeldAttempt): Promise<void> {
    const { connection } = this.#internals;
    const deadline = Date.now() + OUTCOME_DELIVERY_MS;
    let noOwnerSince: number | undefined;
    let backoffMs = 100;
    for (;;) {
      try {
        const reply = await this.#owners.request(dispatch.owner, outcome);
        const parsed = parseOutcomeReply(reply);
        if (parsed !== null && !parsed.accepted) {
          this.#logger.info({ taskRunId: dispatch.taskRunId, attempt: dispatch.attempt }, 'the owner had given the attempt up; its outcome was ignored');
        }
        return;
      } catch (err) {
        // The bus refuses a message over the server's max_payload before sending anything,
        // which spares encoding every result twice to check its size first.
        if (err instanceof PayloadTooLargeError && outcome.ok) {
          const maxPayload = connection.info?.max_payload ?? 'fewer';
          const error = new PayloadTooLargeError(`the result of task '${dispatch.taskName}' is larger than the server's ${maxPayload} bytes per message`);
          outcome = wire<TaskOutcome>({ type: 'task.outcome', taskRunId: dispatch.taskRunId, attempt: dispatch.attempt, workerId: this.id, ok: false, error: toWireError(error) });
          continue;
        }
        if (held?.claimAnswer === 'refused') return;
        // Nobody listens where the owner was: it is gone (its runs resume elsewhere), unless it is
        // only reconnecting after the server came back, which does not take long.
        const now = Date.now();
        if (err instanceof NoRespondersError) noOwnerSince ??= now;
        else noOwnerSince = undefined;
        const ownerGone = noOwnerSince !== undefined && now - noOwnerSince > OWNER_GONE_MS;
        if (err instanceof ClosedError || err instanceof PermissionDeniedError || ownerGone || now > deadline) {
          this.#logger.warn({ taskRunId: dispatch.taskRunId, attempt: dispatch.attempt, ...failureFields(err) }, 'could not hand the outcome to the owner; the task run runs again: restarted by its owner, or, if the owner died, by the process that resumes its flow run');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 2_000);
      }
    }
  }

  /**
   * The claim, asked again while the server is away for a moment (a reconnect): the owner may
   * have accepted it and its answer been lost, and it accepts the same claim again. Giving up
   * at the first failure would leave an attempt the owner counts as running here, which it
   * would restart as crashed once its heartbeats stayed away.
   */
  async #requestClaim(message: JsMsg, dispatch: TaskDispatch, claim: TaskClaim): Promise<BusMessage> {
    const deadline = Date.now() + CLAIM_RETRY_MS;
    let backoffMs = 100;
    for (;;) {
      try {
        return await this.#owners.request(dispatch.owner, claim);
      } catch (err) {
        // Only a request that went unanswered: an owner that is gone is said at once (no responders).
        if (!(err instanceof TimeoutError) || Date.now() + backoffMs > deadline || this.#actor.getSnapshot().status === 'done') throw err;
        // Still being claimed: not delivered to another worker meanwhile.
        message.working();
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 2_000);
      }
    }
  }

  #onControl(delivery: Delivery): void {
    const parsed = taskCancelSchema.safeParse(delivery.message);
    if (!parsed.success) {
      this.#drops.drop({ subject: delivery.subject, reason: 'not a task.cancel' });
      return;
    }
    const { taskRunId, attempt, reason } = parsed.data;
    const held = this.#held.get(heldKey(taskRunId, attempt));
    if (held === undefined) return;
    const name = held.dispatch.taskRunName;
    held.controller.abort(
      reason === 'attempt.timedOut'
        ? new TaskTimeoutError(`task run '${name}' timed out`)
        : new CancelledError(`task run '${name}' was ${reason === 'cancel' ? 'cancelled' : 'given up'}`),
    );
    setTimeout(() => held.abandon?.(), ABANDONED_BODY_GRACE_MS).unref();
  }

  #scheduleHeartbeats(heartbeatMs: number): void {
    if (heartbeatMs >= this.#heartbeatMs && this.#heartbeatTimer !== undefined) return;
    this.#heartbeatMs = Math.min(this.#heartbeatMs, heartbeatMs);
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.#heartbeatMs);
  }

  /** One heartbeat per owner, naming every attempt this worker holds for it. */
  #heartbeat(): void {
    if (this.#held.size === 0) return;
    const byOwner = new Map<string, Array<[string, number]>>();
    for (const { dispatch, claimAnswer } of this.#held.values()) {
      // The owner watches only attempts it knows to be claimed; a claim's answer comes soon.
      if (claimAnswer !== 'accepted') continue;
      let runs = byOwner.get(dispatch.owner);
      if (runs === undefined) byOwner.set(dispatch.owner, (runs = []));
      runs.push([dispatch.taskRunId, dispatch.attempt]);
    }
    for (const [owner, runs] of byOwner) {
      try {
        this.#internals.bus.publish(owner, wire<TaskHeartbeat>({ type: 'task.heartbeat', workerId: this.id, runs }));
      } catch (err) {
        this.#logger.warn(failureFields(err), 'could not send a heartbeat');
      }
    }
  }

  async #stopConsuming(): Promise<void> {
    if (!this.#consuming) return;
    this.#consuming = false;
    await Promise.allSettled(this.#consumers.map((messages) => messages.close()));
  }

  /**
   * What still runs is handed back: its owner restarts it on another worker at once.
   * The worker does not wait for the bodies: one that ignores its signal must not hold it up.
   */
  #handBack(): void {
    for (const held of [...this.#held.values()]) {
      if (held.handedBack) continue;
      void this.#handBackOne(held);
      this.#release(held);
    }
  }

  #onStopped(startError: unknown): void {
    clearInterval(this.#heartbeatTimer);
    this.#control.unsubscribe();
    if (startError !== undefined) {
      this.#logger.error({ err: startError }, 'the worker could not start');
      this.#rejectReady(startError);
    } else {
      this.#rejectReady(new ClosedError('the worker stopped before it started'));
      this.#logger.info({ finished: this.#finished }, 'Worker stopped');
    }
    this.#resolveClosed();
  }
}

function resolveTasks(tasks: readonly unknown[] | undefined): Map<string, TaskDefinition> {
  const served = new Map<string, TaskDefinition>();
  const definitions: TaskDefinition[] = [];
  if (tasks === undefined) {
    for (const [name, list] of registeredTasks()) {
      if (new Set(list.map((d) => d.fn)).size > 1) {
        throw new InvalidArgumentError(`two different tasks are named '${name}'; a worker serves tasks by name, so names must be unique`);
      }
      definitions.push(list[0]!);
    }
  } else {
    if (!Array.isArray(tasks)) throw new InvalidArgumentError('tasks must be an array of tasks made by task()');
    for (const [index, value] of tasks.entries()) {
      const definition = definitionOf(value);
      if (definition?.kind !== 'task') throw new InvalidArgumentError(`tasks[${index}] is not a task made by task()`);
      definitions.push(definition);
    }
  }
  for (const definition of definitions) {
    const name = definition.options.name;
    const existing = served.get(name);
    if (existing !== undefined && existing !== definition) {
      throw new InvalidArgumentError(`two different tasks are named '${name}'; a worker serves tasks by name, so names must be unique`);
    }
    served.set(name, definition);
  }
  if (served.size === 0) throw new InvalidArgumentError('a worker needs at least one task to serve');
  return served;
}
