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
 */
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { PayloadTooLargeError, TimeoutError, type PermissionDeniedError } from '../errors.js';
import type { RemoteTaskRun } from './dispatcher.js';
import { MSG_ID_HEADER, StreamPublisher } from '../nats/stream-publisher.js';
import { describeFailure, isPayloadTooLarge, toPermissionDenied } from '../nats/passing-failure.js';
import { followStatus, RetryTimers, type StatusFollower } from '../nats/status.js';
import { LogThrottle } from '../drop-counter.js';

/** How long a publish waits for the stream's ack before it is sent again, in ms (as `jetstream()`'s default). */
const DEFAULT_ACK_TIMEOUT_MS = 5_000;
const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2_000;
/** At most one line per this interval about dispatches the server refuses this user, in ms. */
const REFUSAL_LOG_INTERVAL_MS = 5_000;

/** One dispatch on its way to the stream. */
interface PendingDispatch {
  readonly run: RemoteTaskRun;
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

  /** Publishes `data` to `subject` until the stream has stored it, or `run` no longer wants `attempt`. */
  publish(run: RemoteTaskRun, attempt: number, subject: string, data: Uint8Array, msgId: string): void {
    const hdrs = headers();
    hdrs.set(MSG_ID_HEADER, msgId);
    this.#send({ run, attempt, subject, data, headers: hdrs, sends: 0, backoff: { ms: FIRST_BACKOFF_MS }, warned: false });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#retries.clear();
    this.#inFlight.clear();
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
      () => {
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
