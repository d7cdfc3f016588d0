/**
 * Stores task dispatches in the tasks stream, through a `StreamPublisher` (one
 * reply inbox for every publish, no request object, timer or stack-traced error
 * per publish).
 *
 * A dispatch is retried, with backoff, until the stream has stored it or its run
 * no longer waits for that attempt; the `Nats-Msg-Id` header (`taskRunId:attempt`)
 * makes a repeated publish a no-op on the server.
 *
 * A dispatch the server refuses this user (no right to publish to the task's subject,
 * or to make the stream) is not retried: no retry changes a user's permissions. The
 * attempt fails at once with a `PermissionDeniedError`, which its supervisor does not retry.
 *
 * A dispatch whose attempt is given up before any worker claims it is withdrawn: deleted
 * from the stream by the sequence number its PubAck gave, at once or when that ack comes,
 * so that a worker that comes later does not start a body nobody waits for.
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { PayloadTooLargeError, TimeoutError, type PermissionDeniedError } from '../errors.js';
import type { RemoteTaskRun } from './dispatcher.js';
import { MSG_ID_HEADER, StreamPublisher, type PubAck } from '../nats/stream-publisher.js';
import { describeFailure, isClosingFailure, isPayloadTooLarge, toPermissionDenied } from '../nats/passing-failure.js';
import { followStatus, RetryTimers, type StatusFollower } from '../nats/status.js';
import { LogThrottle } from '../drop-counter.js';

/** How long a publish waits for the stream's ack before it is sent again, in ms (as `jetstream()`'s default). */
const DEFAULT_ACK_TIMEOUT_MS = 5_000;
const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2_000;
/** At most one line per this interval about dispatches the server refuses this user, in ms. */
const REFUSAL_LOG_INTERVAL_MS = 5_000;
/**
 * Withdrawals asked of the server at once, at most: a cancelled fan-out withdraws all of its
 * dispatches together, and each is a JetStream API request.
 */
const MAX_WITHDRAWALS_IN_FLIGHT = 32;

/**
 * Where the stream stored one dispatch, once it said so: what `withdraw()` takes back.
 * Small, and without the dispatch's bytes, as the dispatcher keeps it until a worker claims the attempt.
 */
export interface DispatchReceipt {
  readonly taskRunId: string;
  readonly attempt: number;
  /** The stream's ack of the dispatch: where it is stored. A repeated publish is acked with the same `seq`. */
  ack: PubAck | undefined;
  /** The attempt was given up unclaimed: the dispatch is deleted once stored. */
  withdrawn: boolean;
}

/** One dispatch on its way to the stream. */
interface PendingDispatch {
  readonly run: RemoteTaskRun;
  readonly receipt: DispatchReceipt;
  readonly attempt: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs;
  /** Sends so far: the answer to an earlier one (re-sent after a reconnect) changes nothing. */
  sends: number;
  /** The delay before the next send, should this one fail. */
  backoff: { ms: number };
  warned: boolean;
}

export interface DispatchPublisherOptions {
  connection: NatsConnection;
  logger: Logger;
  /** Makes sure the stream exists; called before the first publish and after one the server did not take. */
  ensureStream: () => Promise<void>;
  /** How long a publish waits for the stream's ack before it is sent again, in ms. @default 5000 */
  ackTimeoutMs?: number;
}

export class DispatchPublisher {
  readonly #connection: NatsConnection;
  readonly #logger: Logger;
  readonly #ensure: () => Promise<void>;
  readonly #stream: StreamPublisher;
  /** Publishes waiting for their ack. */
  readonly #inFlight = new Set<PendingDispatch>();
  /** Backoff timers of publishes to be tried again. */
  readonly #retries = new RetryTimers(MAX_BACKOFF_MS);
  readonly #statuses: StatusFollower;
  /** A refusal fails every task run dispatched meanwhile: told in one line, not one per run. */
  readonly #refusals = new LogThrottle(Date.now, REFUSAL_LOG_INTERVAL_MS);
  /** Stored dispatches to delete, oldest first (the first a worker would take), from `#withdrawHead` on. */
  #withdrawals: DispatchReceipt[] = [];
  #withdrawHead = 0;
  #withdrawing = 0;
  /** Made at once (no request: the stream taking dispatches says the server has JetStream), kept once made. */
  readonly #managerReady: Promise<JetStreamManager>;
  #manager: JetStreamManager | undefined;
  #streamReady = false;
  #ensuring: Promise<void> | undefined;
  /** Last `max_payload` seen: nats.js forgets the server info while it reconnects. */
  #maxPayload: number | undefined;
  #closed = false;

  constructor(options: DispatchPublisherOptions) {
    this.#connection = options.connection;
    this.#logger = options.logger;
    this.#ensure = options.ensureStream;
    this.#stream = new StreamPublisher(options.connection, options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS);
    this.#maxPayload = options.connection.info?.max_payload;
    this.#managerReady = jetstreamManager(options.connection, { checkAPI: false });
    this.#managerReady.then(
      (manager) => (this.#manager = manager),
      () => {},
    );
    // nats.js drops what it has not written when the connection breaks: after a reconnect,
    // every publish still waiting for its ack is sent again at once.
    this.#statuses = followStatus(
      this.#connection,
      (status) => {
        if (status.type !== 'reconnect' || this.#closed) return;
        for (const pending of [...this.#inFlight]) this.#send(pending);
      },
      (err) => this.#logger.warn({ err }, 'NATS status watch of the dispatcher ended'),
    );
  }

  /**
   * Publishes `data` to `subject` until the stream has stored it, or `run` no longer wants `attempt`.
   * The receipt says where it was stored, for `withdraw()`.
   */
  publish(run: RemoteTaskRun, attempt: number, subject: string, data: Uint8Array, msgId: string): DispatchReceipt {
    const hdrs = headers();
    hdrs.set(MSG_ID_HEADER, msgId);
    const receipt: DispatchReceipt = { taskRunId: run.id, attempt, ack: undefined, withdrawn: false };
    this.#send({ run, receipt, attempt, subject, data, headers: hdrs, sends: 0, backoff: { ms: FIRST_BACKOFF_MS }, warned: false });
    return receipt;
  }

  /**
   * Takes a dispatch back from the stream: its attempt was given up before a worker claimed it.
   * Deleted now if the stream has acked it, else when the ack comes (if it ever does: the run no
   * longer wanting the attempt, the publish is not sent again). Best effort: a worker may have
   * taken the dispatch already, or the server be away; the owner then refuses that worker's claim.
   */
  withdraw(receipt: DispatchReceipt): void {
    if (receipt.withdrawn) return;
    receipt.withdrawn = true;
    if (receipt.ack !== undefined) this.#queueWithdrawal(receipt);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#retries.clear();
    this.#inFlight.clear();
    // On the way out the withdrawals still queued are asked for at once: sent before the
    // connection closes (nats.js flushes what was written), the server deletes them even if
    // their answers are never read. A cancelled run's process closes right after the run ends.
    const queued = this.#withdrawals.slice(this.#withdrawHead);
    this.#withdrawals = [];
    this.#withdrawHead = 0;
    for (const receipt of queued) void this.#deleteStored(receipt);
    this.#statuses.stop();
    this.#stream.close();
  }

  #send(pending: PendingDispatch): void {
    if (this.#closed) return;
    if (!pending.run.wants(pending.attempt)) {
      this.#inFlight.delete(pending);
      return;
    }
    if (!this.#streamReady) {
      this.#ensureStream().then(
        () => this.#send(pending),
        (error: unknown) => this.#failed(pending, error),
      );
      return;
    }
    this.#maxPayload = this.#connection.info?.max_payload ?? this.#maxPayload;
    if (this.#maxPayload !== undefined && pending.data.length > this.#maxPayload) {
      return this.#tooLarge(pending, undefined);
    }
    const send = ++pending.sends;
    this.#inFlight.add(pending);
    this.#stream.publish(pending.subject, pending.data, pending.headers).then(
      (ack) => {
        // Any send's ack says where the dispatch is: a repeated one is a duplicate of the same seq.
        if (pending.receipt.ack === undefined) this.#stored(pending.receipt, ack);
        if (pending.sends !== send) return;
        this.#inFlight.delete(pending);
        if (pending.warned) this.#logger.info({ taskRunId: pending.run.id, attempt: pending.attempt }, 'dispatched the task run after all');
      },
      (error: unknown) => {
        if (this.#closed || pending.sends !== send) return;
        this.#inFlight.delete(pending);
        if (isPayloadTooLarge(error)) return this.#tooLarge(pending, error);
        // Refused to this user: the stream is not at fault, and needs no look.
        const denied = toPermissionDenied(error);
        if (denied !== undefined) return this.#refused(pending, denied);
        // Not stored (no stream takes the subject, or it refused the message): make sure it is there.
        if (!(error instanceof TimeoutError)) this.#streamReady = false;
        this.#failed(pending, error);
      },
    );
  }

  #stored(receipt: DispatchReceipt, ack: PubAck): void {
    receipt.ack = ack;
    // Given up while its publish was on the way.
    if (receipt.withdrawn) this.#queueWithdrawal(receipt);
  }

  #queueWithdrawal(receipt: DispatchReceipt): void {
    if (this.#closed) return;
    this.#withdrawals.push(receipt);
    this.#withdrawNext();
  }

  #withdrawNext(): void {
    while (this.#withdrawing < MAX_WITHDRAWALS_IN_FLIGHT && this.#withdrawHead < this.#withdrawals.length) {
      const receipt = this.#withdrawals[this.#withdrawHead++]!;
      if (this.#withdrawHead === this.#withdrawals.length) {
        this.#withdrawals = [];
        this.#withdrawHead = 0;
      }
      this.#withdrawing++;
      void this.#deleteStored(receipt).finally(() => {
        this.#withdrawing--;
        if (!this.#closed) this.#withdrawNext();
      });
    }
  }

  async #deleteStored(receipt: DispatchReceipt): Promise<void> {
    const { stream, seq } = receipt.ack!;
    const fields = { taskRunId: receipt.taskRunId, attempt: receipt.attempt, stream, seq };
    try {
      // Sent synchronously once the manager is made: close() sends the last ones just before the
      // connection drains, which refuses any request after it has begun.
      const manager = this.#manager ?? (await this.#managerReady);
      // Not erased: marked deleted is enough, and much cheaper on a file store.
      await manager.streams.deleteMessage(stream, seq, false);
      this.#logger.debug(fields, 'withdrew the dispatch of an attempt given up before a worker claimed it');
    } catch (err) {
      // Asked for as this process closes: the server acts on it, but its answer is not read.
      if (this.#closed && isClosingFailure(err)) return this.#logger.debug(fields, 'asked to withdraw the dispatch of an attempt given up as the connection closed');
      // Most often a worker has taken it already (work queue: acked, it is gone); or the server is away.
      // Either way, the owner refuses the claim of a worker that takes it.
      this.#logger.debug({ ...fields, reason: describeFailure(err) }, 'could not withdraw the dispatch of an attempt given up; a worker that takes it has its claim refused');
    }
  }

  #tooLarge(pending: PendingDispatch, cause: unknown): void {
    const max = this.#maxPayload;
    pending.run.dispatchFailed(
      pending.attempt,
      new PayloadTooLargeError(`the arguments of the task run are ${pending.data.length} bytes; the server takes at most ${max ?? 'fewer'} bytes per message`, { cause }),
    );
  }

  /** The server refuses this user the dispatch, or the stream it goes to: the attempt fails now. */
  #refused(pending: PendingDispatch, error: PermissionDeniedError): void {
    if (this.#closed || !pending.run.wants(pending.attempt)) return;
    const refusedBefore = this.#refusals.take();
    if (refusedBefore >= 0) {
      this.#logger.warn(
        { reason: describeFailure(error), refusedSinceLastLine: refusedBefore + 1 },
        'the NATS server refuses this user the dispatch of task runs; they fail without a retry',
      );
    }
    pending.run.dispatchFailed(pending.attempt, error);
  }

  /** The publish was not stored: try again after a backoff, while the run still wants the attempt. */
  #failed(pending: PendingDispatch, error: unknown): void {
    if (this.#closed || !pending.run.wants(pending.attempt)) return;
    // Making the stream may be what the server refuses (a user without the right to create it).
    const denied = toPermissionDenied(error);
    if (denied !== undefined) return this.#refused(pending, denied);
    if (!pending.warned) {
      pending.warned = true;
      this.#logger.warn({ err: error, taskRunId: pending.run.id, attempt: pending.attempt }, 'could not dispatch the task run yet; trying again');
    }
    this.#retries.after(pending.backoff, () => this.#send(pending));
  }

  #ensureStream(): Promise<void> {
    this.#ensuring ??= this.#ensure().then(
      () => {
        this.#ensuring = undefined;
        this.#streamReady = true;
      },
      (error: unknown) => {
        // Not remembered: the next publish tries again (the server may be back).
        this.#ensuring = undefined;
        throw error;
      },
    );
    return this.#ensuring;
  }
}
