/**
 * The owner's side of remote task runs: it publishes each attempt to the
 * tasks stream, answers workers' claims (accepting only the attempt a run is
 * waiting for, once), turns heartbeats and outcomes into machine events, and
 * tells a worker when an attempt it runs was given up. An attempt given up
 * before any worker claimed it has its dispatch withdrawn from the stream.
 *
 * Decisions stay in the task-run machine: this object only carries messages.
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus, BusMessage, Delivery } from '../bus/bus.js';
import { encode } from '../codec.js';
import type { Subjects } from '../subjects.js';
import { DropCounter, LogThrottle } from '../drop-counter.js';
import { wire, type BatchReply, type ClaimReply, type OutcomeReply, type TaskCancel, type TaskClaim, type TaskDispatch, type TaskOutcome } from './messages.js';
import { ensureTasksStream } from './streams.js';
import { DispatchPublisher, type DispatchReceipt } from './dispatch-publisher.js';
import { parseToOwner } from './parse-messages.js';
import { AttemptWatch } from './attempt-watch.js';

/** What the dispatcher needs of a task run; `TaskRunRuntime` implements it. */
export interface RemoteTaskRun {
  readonly id: string;
  /** How many runs deep the task run is: sent with each dispatch, so its body's calls on a worker nest below it. */
  readonly depth: number;
  /** Accepts a claim of `attempt` if the run waits for exactly that attempt to be claimed. */
  acceptClaim(attempt: number, workerId?: string): boolean;
  /** The heartbeats of `attempt` stopped: its worker is gone. */
  attemptCrashed(attempt: number): void;
  /** `attempt` has waited long for a worker. */
  attemptUnclaimed(attempt: number): void;
  /** Applies an outcome of the current attempt; false (and nothing applied) for any other. */
  acceptOutcome(outcome: TaskOutcome): boolean;
  /** The attempt could not be dispatched at all. */
  dispatchFailed(attempt: number, error: Error): void;
  /** Whether `attempt` is still the one the run waits for. */
  wants(attempt: number): boolean;
}

export interface TaskDispatcherOptions {
  connection: NatsConnection;
  bus: Bus;
  subjects: Subjects;
  logger: Logger;
  /** The runs of this process, by task run id. */
  runs: ReadonlyMap<string, RemoteTaskRun>;
  /** Unique id of this owner; workers reach it at `subjects.owner(ownerId)`. */
  ownerId: string;
  /** How often workers heartbeat; while this owner is cut off from the server it vouches for them as often. */
  heartbeatMs: number;
  /** A claimed attempt without a heartbeat for this long has crashed. */
  heartbeatTimeoutMs: number;
  /** How long a dispatched attempt waits for a worker before each warning. */
  claimWarningMs: number;
  /** Copies of the task stream, if this process creates it. @default 1 */
  replicas?: number;
  now?: () => number;
}

/**
 * The owner's replies, all constants: frozen, and so encoded once by the NATS bus
 * rather than once per claim and outcome.
 */
const CLAIM_ACCEPTED = Object.freeze(wire<ClaimReply>({ type: 'task.claim.reply', accepted: true }));
const CLAIM_NOT_WAITING = Object.freeze(wire<ClaimReply>({ type: 'task.claim.reply', accepted: false, reason: 'the attempt is not waiting for a worker' }));
const CLAIM_NO_SUCH_RUN = Object.freeze(wire<ClaimReply>({ type: 'task.claim.reply', accepted: false, reason: 'no such task run here' }));
const OUTCOME_ACCEPTED = Object.freeze(wire<OutcomeReply>({ type: 'task.outcome.reply', accepted: true }));
const OUTCOME_IGNORED = Object.freeze(wire<OutcomeReply>({ type: 'task.outcome.reply', accepted: false }));

/** How long after a reconnect this owner goes on vouching for its workers' attempts. */
const RECONNECT_GRACE_MS = 5_000;

/** At most one line per this interval about outcomes that came too late, in ms. */
const LATE_OUTCOME_LOG_INTERVAL_MS = 5_000;

export class TaskDispatcher {
  readonly ownerId: string;
  readonly #heartbeatMs: number;
  #statuses: { stop?: () => void } | undefined;
  readonly ownerSubject: string;
  readonly #bus: Bus;
  readonly #subjects: Subjects;
  readonly #replicas: number;
  readonly #logger: Logger;
  readonly #runs: ReadonlyMap<string, RemoteTaskRun>;
  readonly #publisher: DispatchPublisher;
  readonly #connection: NatsConnection;
  /** The worker holding each claimed attempt, to send it a cancel. */
  readonly #claims = new Map<string, Pick<TaskClaim, 'attempt' | 'worker' | 'workerId'>>();
  /** The dispatch of each attempt no worker has claimed yet: withdrawn if the attempt is given up. */
  readonly #unclaimed = new Map<string, DispatchReceipt>();
  readonly #drops: DropCounter;
  /** Outcomes for task runs this owner does not have (any more): late, or forged. */
  readonly #unknownOutcomes: DropCounter;
  /** Outcomes of attempts given up before they came (zombies): logged, at most one line per interval. */
  readonly #lateOutcomes: LogThrottle;
  /** Whose heartbeats stopped, and who waits long for a worker. */
  readonly #watch: AttemptWatch;
  #jsm: Promise<JetStreamManager> | undefined;
  #subscription: ReturnType<Bus['subscribe']> | undefined;

  constructor(options: TaskDispatcherOptions) {
    this.ownerId = options.ownerId;
    this.#bus = options.bus;
    this.#subjects = options.subjects;
    this.#replicas = options.replicas ?? 1;
    this.#logger = options.logger;
    this.#runs = options.runs;
    this.#connection = options.connection;
    this.#publisher = new DispatchPublisher({ connection: options.connection, logger: options.logger, ensureStream: () => this.#ensureStream() });
    this.ownerSubject = options.subjects.owner(options.ownerId);
    this.#drops = new DropCounter(this.#logger, 'dropped a message to this owner that is not a claim, heartbeat or outcome');
    this.#unknownOutcomes = new DropCounter(this.#logger, 'ignored the outcome of a task run that has ended or that this process never owned (a late result, or a forged message)');
    this.#lateOutcomes = new LogThrottle(Date.now, LATE_OUTCOME_LOG_INTERVAL_MS);
    this.#subscription = this.#bus.subscribe(this.ownerSubject, { callback: (delivery) => this.#onMessage(delivery) });
    this.#heartbeatMs = options.heartbeatMs;
    this.#watch = new AttemptWatch({
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      claimWarningMs: options.claimWarningMs,
      now: options.now ?? Date.now,
      crashed: (taskRunId, attempt) => this.#runs.get(taskRunId)?.attemptCrashed(attempt),
      unclaimed: (taskRunId, attempt) => this.#runs.get(taskRunId)?.attemptUnclaimed(attempt),
    });
    void this.#watchConnection();
  }

  /**
   * While this owner is cut off from the server, workers' heartbeats cannot reach it: that
   * says nothing about the workers. So it heartbeats their attempts itself until it is back,
   * and for RECONNECT_GRACE_MS after, while workers reconnect in their own time. A worker
   * that died meanwhile is found out that much later.
   */
  async #watchConnection(): Promise<void> {
    const statuses = this.#connection.status() as AsyncIterable<{ type: string }> & { stop?: () => void };
    this.#statuses = statuses;
    let timer: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;
    const vouch = () => this.#watch.vouchForAll();
    try {
      for await (const status of statuses) {
        if (status.type === 'disconnect') {
          clearTimeout(grace);
          if (timer === undefined) {
            vouch();
            timer = setInterval(vouch, this.#heartbeatMs);
          }
        } else if (status.type === 'reconnect') {
          // Workers come back on their own schedule, possibly later than this owner.
          clearTimeout(grace);
          grace = setTimeout(() => {
            clearInterval(timer);
            timer = undefined;
          }, RECONNECT_GRACE_MS);
        }
      }
    } catch {
      // The connection closed: nothing left to vouch for.
    } finally {
      clearInterval(timer);
      clearTimeout(grace);
    }
  }

  /** Messages dropped because they were not valid. */
  get dropped(): number {
    return this.#drops.count;
  }

  /**
   * Publishes one attempt to the tasks stream; retried until stored or no longer wanted.
   * `message.owner` is this dispatcher's `ownerSubject`; `message.depth`, unless set, the run's.
   */
  dispatch(run: RemoteTaskRun, message: TaskDispatch, pool: string): void {
    // The message is the caller's, made for this one dispatch; the depth is the run's.
    message.depth ??= run.depth;
    let bytes: Uint8Array;
    try {
      bytes = encode(message);
    } catch (error) {
      run.dispatchFailed(message.attempt, error as Error);
      return;
    }
    const subject = this.#subjects.taskDispatch(pool, message.taskName);
    this.#watch.dispatched(message.taskRunId, message.attempt);
    // The id makes a publish repeated after a lost ack a no-op on the server.
    this.#unclaimed.set(message.taskRunId, this.#publisher.publish(run, message.attempt, subject, bytes, `${message.taskRunId}:${message.attempt}`));
  }

  /**
   * The run gave `attempt` up: the worker holding it, if any, is told to abort it; if no worker
   * claimed it, its dispatch is withdrawn from the stream, so that no worker starts its body later.
   */
  abort(taskRunId: string, attempt: number, reason: string): void {
    this.#watch.forget(taskRunId, attempt);
    const receipt = this.#unclaimed.get(taskRunId);
    if (receipt?.attempt === attempt) {
      this.#unclaimed.delete(taskRunId);
      this.#publisher.withdraw(receipt);
      return;
    }
    const claim = this.#claims.get(taskRunId);
    if (claim === undefined || claim.attempt !== attempt) return;
    this.#claims.delete(taskRunId);
    if (this.#bus.isClosed) return;
    try {
      this.#bus.publish(claim.worker, wire<TaskCancel>({ type: 'task.cancel', taskRunId, attempt, reason }));
    } catch (err) {
      this.#logger.warn({ err, taskRunId, attempt }, 'could not tell the worker to abort the attempt');
    }
  }

  /** A finished run no longer needs its claim; a dispatch of it still unclaimed is withdrawn. */
  forget(taskRunId: string): void {
    this.#claims.delete(taskRunId);
    this.#watch.forget(taskRunId);
    const receipt = this.#unclaimed.get(taskRunId);
    if (receipt === undefined) return;
    this.#unclaimed.delete(taskRunId);
    this.#publisher.withdraw(receipt);
  }

  close(): void {
    this.#unclaimed.clear();
    this.#watch.close();
    this.#statuses?.stop?.();
    this.#publisher.close();
    this.#subscription?.unsubscribe();
  }

  async #ensureStream(): Promise<void> {
    this.#jsm ??= jetstreamManager(this.#connection);
    try {
      await ensureTasksStream(await this.#jsm, this.#subjects, this.#replicas);
    } catch (error) {
      // Not remembered: the next dispatch tries again (the server may be back).
      this.#jsm = undefined;
      throw error;
    }
  }

  #onMessage(delivery: Delivery): void {
    // As `toOwnerSchema.safeParse`, at a fraction of its cost: every task run sends several.
    const message = parseToOwner(delivery.message);
    if (message === null) {
      this.#drops.drop({ subject: delivery.subject, type: delivery.message.type });
      return;
    }
    switch (message.type) {
      case 'task.heartbeat':
        for (const [taskRunId, attempt] of message.runs) this.#watch.heard(taskRunId, attempt);
        return;
      case 'task.claim':
        this.#reply(delivery, this.#claim(message));
        return;
      case 'task.outcome':
        this.#reply(delivery, this.#outcome(message));
        return;
      case 'task.batch': {
        // In order, as if each had come alone: a claim before the outcome that follows it.
        const replies = message.items.map((item) => (item.type === 'task.claim' ? this.#claim(item) : this.#outcome(item)));
        this.#reply(delivery, wire<BatchReply>({ type: 'task.batch.reply', replies }));
        return;
      }
    }
  }

  #claim(claim: TaskClaim): ClaimReply {
    const run = this.#runs.get(claim.taskRunId);
    // The same claim again, from the worker that holds the attempt: its answer was lost (a
    // reconnect) and it asks again. Refused, it would give the attempt up, and this owner,
    // hearing no more of it, would restart it as crashed.
    const held = this.#claims.get(claim.taskRunId);
    if (run !== undefined && held?.attempt === claim.attempt && held.workerId === claim.workerId) {
      this.#watch.claimed(claim.taskRunId, claim.attempt);
      return CLAIM_ACCEPTED;
    }
    const accepted = run?.acceptClaim(claim.attempt, claim.workerId) ?? false;
    // The parsed claim is a fresh object: it is kept as it is.
    if (accepted) {
      this.#unclaimed.delete(claim.taskRunId);
      this.#claims.set(claim.taskRunId, claim);
      this.#watch.claimed(claim.taskRunId, claim.attempt);
    }
    return accepted ? CLAIM_ACCEPTED : run ? CLAIM_NOT_WAITING : CLAIM_NO_SUCH_RUN;
  }

  #outcome(outcome: TaskOutcome): OutcomeReply {
    const run = this.#runs.get(outcome.taskRunId);
    // The claim goes before the outcome is applied: leaving Running gives the attempt up,
    // and a worker that has just finished it needs no cancel. Only its own worker's outcome
    // settles it (the run refuses any other).
    const claim = this.#claims.get(outcome.taskRunId);
    if (claim?.attempt === outcome.attempt && claim.workerId === outcome.workerId) {
      this.#claims.delete(outcome.taskRunId);
      this.#watch.forget(outcome.taskRunId, outcome.attempt);
    }
    const fields = { taskRunId: outcome.taskRunId, attempt: outcome.attempt, workerId: outcome.workerId };
    if (run === undefined) {
      this.#unknownOutcomes.drop(fields);
      return OUTCOME_IGNORED;
    }
    if (run.acceptOutcome(outcome)) return OUTCOME_ACCEPTED;
    // A zombie: the attempt was given up (timeout, crash, cancel) before its outcome came.
    // Expected after a timeout, so not a warning; a flood of them is told in one line per interval.
    const ignoredBefore = this.#lateOutcomes.take();
    if (ignoredBefore >= 0) {
      this.#logger.info({ ...fields, ignoredSinceLastLine: ignoredBefore + 1 }, `ignored the late outcome of attempt ${outcome.attempt} of a task run: the attempt was given up before it came`);
    }
    return OUTCOME_IGNORED;
  }

  #reply(delivery: Delivery, message: BusMessage): void {
    if (delivery.reply === undefined || this.#bus.isClosed) return;
    try {
      this.#bus.publish(delivery.reply, message);
    } catch (err) {
      this.#logger.warn({ err }, 'could not reply to a worker');
    }
  }
}
