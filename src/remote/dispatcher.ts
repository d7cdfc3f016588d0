/**
 * The owner's side of remote task runs: it publishes each attempt to the
 * tasks stream, answers workers' claims (accepting only the attempt a run is
 * waiting for, once), turns heartbeats and outcomes into machine events, and
 * tells a worker when an attempt it runs was given up.
 *
 * Decisions stay in the task-run machine: this object only carries messages.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus, BusMessage, Delivery } from '../bus/bus.js';
import { encode } from '../codec.js';
import { PayloadTooLargeError } from '../errors.js';
import type { Subjects } from '../subjects.js';
import { DropCounter } from '../drop-counter.js';
import { toOwnerSchema, wire, type ClaimReply, type OutcomeReply, type TaskCancel, type TaskDispatch, type TaskOutcome } from './messages.js';
import { ensureTasksStream } from './streams.js';

/** What the dispatcher needs of a task run; `TaskRunRuntime` implements it. */
export interface RemoteTaskRun {
  readonly id: string;
  /** Accepts a claim of `attempt` if the run waits for exactly that attempt to be claimed. */
  acceptClaim(attempt: number): boolean;
  heartbeat(attempt: number): void;
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
}

const MAX_PUBLISH_BACKOFF_MS = 2_000;

export class TaskDispatcher {
  readonly ownerId: string;
  readonly ownerSubject: string;
  readonly #bus: Bus;
  readonly #subjects: Subjects;
  readonly #logger: Logger;
  readonly #runs: ReadonlyMap<string, RemoteTaskRun>;
  readonly #js: JetStreamClient;
  readonly #connection: NatsConnection;
  /** The worker holding each claimed attempt, to send it a cancel. */
  readonly #claims = new Map<string, { attempt: number; worker: string; workerId: string }>();
  readonly #drops: DropCounter;
  #jsm: Promise<JetStreamManager> | undefined;
  #stream: Promise<void> | undefined;
  #closed = false;
  #subscription: ReturnType<Bus['subscribe']> | undefined;

  constructor(options: TaskDispatcherOptions) {
    this.ownerId = options.ownerId;
    this.#bus = options.bus;
    this.#subjects = options.subjects;
    this.#logger = options.logger;
    this.#runs = options.runs;
    this.#connection = options.connection;
    this.#js = jetstream(options.connection);
    this.ownerSubject = options.subjects.owner(options.ownerId);
    this.#drops = new DropCounter(this.#logger, 'dropped a message to this owner that is not a claim, heartbeat or outcome');
    this.#subscription = this.#bus.subscribe(this.ownerSubject, { callback: (delivery) => this.#onMessage(delivery) });
  }

  /** Messages dropped because they were not valid. */
  get dropped(): number {
    return this.#drops.count;
  }

  /** Publishes one attempt to the tasks stream; retried until stored or no longer wanted. */
  dispatch(run: RemoteTaskRun, message: Omit<TaskDispatch, 'v' | 'type' | 'owner'>, pool: string): void {
    const dispatch = wire<TaskDispatch>({ type: 'task.dispatch', owner: this.ownerSubject, ...message });
    let bytes: Uint8Array;
    try {
      bytes = encode(dispatch);
    } catch (error) {
      run.dispatchFailed(message.attempt, error as Error);
      return;
    }
    const subject = this.#subjects.taskDispatch(pool, message.taskName);
    void this.#publish(run, message.attempt, subject, bytes, `${message.taskRunId}:${message.attempt}`);
  }

  /** The run gave `attempt` up: the worker holding it, if any, is told to abort it. */
  abort(taskRunId: string, attempt: number, reason: string): void {
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

  /** A finished run no longer needs its claim. */
  forget(taskRunId: string): void {
    this.#claims.delete(taskRunId);
  }

  close(): void {
    this.#closed = true;
    this.#subscription?.unsubscribe();
  }

  async #publish(run: RemoteTaskRun, attempt: number, subject: string, bytes: Uint8Array, msgID: string): Promise<void> {
    let backoffMs = 50;
    let warned = false;
    for (;;) {
      if (this.#closed || !run.wants(attempt)) return;
      try {
        await this.#ensureStream();
        // The id makes a publish repeated after a lost ack a no-op on the server.
        await this.#js.publish(subject, bytes, { msgID });
        if (warned) this.#logger.info({ taskRunId: run.id, attempt }, 'dispatched the task run after all');
        return;
      } catch (error) {
        if (isPayloadTooLarge(error)) {
          const max = this.#connection.info?.max_payload;
          run.dispatchFailed(attempt, new PayloadTooLargeError(`the arguments of the task run are ${bytes.length} bytes; the server takes at most ${max ?? 'fewer'} bytes per message`, { cause: error }));
          return;
        }
        if (!warned) {
          warned = true;
          this.#logger.warn({ err: error, taskRunId: run.id, attempt }, 'could not dispatch the task run yet; trying again');
        }
        await delay(backoffMs);
        backoffMs = Math.min(backoffMs * 2, MAX_PUBLISH_BACKOFF_MS);
      }
    }
  }

  #ensureStream(): Promise<void> {
    this.#stream ??= (async () => {
      this.#jsm ??= jetstreamManager(this.#connection);
      await ensureTasksStream(await this.#jsm, this.#subjects);
    })().catch((error: unknown) => {
      // Not remembered: the next dispatch tries again (the server may be back).
      this.#stream = undefined;
      this.#jsm = undefined;
      throw error;
    });
    return this.#stream;
  }

  #onMessage(delivery: Delivery): void {
    const parsed = toOwnerSchema.safeParse(delivery.message);
    if (!parsed.success) {
      this.#drops.drop({ subject: delivery.subject, type: delivery.message.type });
      return;
    }
    const message = parsed.data;
    switch (message.type) {
      case 'task.heartbeat':
        for (const [taskRunId, attempt] of message.runs) this.#runs.get(taskRunId)?.heartbeat(attempt);
        return;
      case 'task.claim': {
        const run = this.#runs.get(message.taskRunId);
        const accepted = run?.acceptClaim(message.attempt) ?? false;
        if (accepted) this.#claims.set(message.taskRunId, { attempt: message.attempt, worker: message.worker, workerId: message.workerId });
        this.#reply(delivery, wire<ClaimReply>({ type: 'task.claim.reply', accepted, ...(accepted ? {} : { reason: run ? 'the attempt is not waiting for a worker' : 'no such task run here' }) }));
        return;
      }
      case 'task.outcome': {
        const run = this.#runs.get(message.taskRunId);
        // The claim goes before the outcome is applied: leaving Running gives the attempt up,
        // and a worker that has just finished it needs no cancel.
        const claim = this.#claims.get(message.taskRunId);
        if (claim?.attempt === message.attempt) this.#claims.delete(message.taskRunId);
        const accepted = run?.acceptOutcome(message) ?? false;
        if (!accepted) {
          // A zombie: the attempt was given up (timeout, crash, cancel) before its outcome came.
          this.#logger.warn(
            { taskRunId: message.taskRunId, attempt: message.attempt, workerId: message.workerId },
            'ignored the outcome of an attempt that was already given up',
          );
        }
        this.#reply(delivery, wire<OutcomeReply>({ type: 'task.outcome.reply', accepted }));
        return;
      }
    }
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

function isPayloadTooLarge(error: unknown): boolean {
  return /max_payload|maximum payload/i.test(String((error as Error)?.message ?? ''));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
