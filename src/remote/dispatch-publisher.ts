/**
 * Stores task dispatches in the tasks stream over core NATS: each dispatch is
 * published with a reply subject on one inbox shared by every dispatch of this
 * process, and the stream's acknowledgement (PubAck) comes back there.
 *
 * This is what `jetstream(nc).publish()` does, without its per-publish cost:
 * one request object, timer and pair of error objects (built for their stack
 * traces) per publish, and a JSON decode through a fresh `TextDecoder`. Here an
 * unanswered publish is found by one periodic sweep, not by a timer of its own.
 *
 * A dispatch is retried, with backoff, until the stream has stored it or its run
 * no longer waits for that attempt; the `Nats-Msg-Id` header (`taskRunId:attempt`)
 * makes a repeated publish a no-op on the server.
 */
import { createInbox, headers, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { NoRespondersError, PayloadTooLargeError, TimeoutError } from '../errors.js';
import type { RemoteTaskRun } from './dispatcher.js';
import { parsePubAck } from '../nats/stream-publisher.js';

/** How long a publish waits for the stream's ack before it is sent again, in ms (as `jetstream()`'s default). */
const DEFAULT_ACK_TIMEOUT_MS = 5_000;
/** How often unanswered publishes are looked for, at most, in ms. */
const MAX_ACK_SWEEP_MS = 1_000;
const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2_000;
/** The status code of the server's reply to a publish nobody (no stream) takes. */
const NO_RESPONDERS_STATUS = 503;
/** The header JetStream deduplicates publishes by. */
const MSG_ID_HEADER = 'Nats-Msg-Id';

/** One dispatch on its way to the stream. */
interface PendingDispatch {
  readonly run: RemoteTaskRun;
  readonly attempt: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs;
  /** Where its ack comes: the shared inbox and a token of its own. */
  readonly reply: string;
  /** When it was last sent, in ms since the epoch: the sweep gives up waiting `ackTimeoutMs` later. */
  sentAt: number;
  backoffMs: number;
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
  readonly #ackTimeoutMs: number;
  readonly #prefix: string;
  readonly #inbox: Subscription;
  /** Publishes waiting for their ack, by reply subject, oldest first. */
  readonly #inFlight = new Map<string, PendingDispatch>();
  /** Backoff timers of publishes to be tried again. */
  readonly #retries = new Set<NodeJS.Timeout>();
  readonly #sweep: NodeJS.Timeout;
  readonly #statuses: AsyncIterable<{ type: string }> & { stop?: () => void };
  #nextToken = 0;
  #streamReady = false;
  #ensuring: Promise<void> | undefined;
  /** Last `max_payload` seen: nats.js forgets the server info while it reconnects. */
  #maxPayload: number | undefined;
  #closed = false;

  constructor(options: DispatchPublisherOptions) {
    this.#connection = options.connection;
    this.#logger = options.logger;
    this.#ensure = options.ensureStream;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
    this.#prefix = createInbox();
    this.#maxPayload = options.connection.info?.max_payload;
    this.#inbox = this.#connection.subscribe(`${this.#prefix}.*`, { callback: (err, msg) => this.#onAck(err, msg) });
    this.#sweep = setInterval(() => this.#timeOut(), Math.min(MAX_ACK_SWEEP_MS, this.#ackTimeoutMs / 4));
    this.#sweep.unref();
    this.#statuses = this.#connection.status();
    void this.#watch();
  }

  /** Publishes `data` to `subject` until the stream has stored it, or `run` no longer wants `attempt`. */
  publish(run: RemoteTaskRun, attempt: number, subject: string, data: Uint8Array, msgId: string): void {
    const hdrs = headers();
    hdrs.set(MSG_ID_HEADER, msgId);
    const reply = `${this.#prefix}.${(this.#nextToken++).toString(36)}`;
    this.#send({ run, attempt, subject, data, headers: hdrs, reply, sentAt: 0, backoffMs: FIRST_BACKOFF_MS, warned: false });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const timer of this.#retries) clearTimeout(timer);
    this.#retries.clear();
    this.#inFlight.clear();
    this.#statuses.stop?.();
    if (!this.#inbox.isClosed()) this.#inbox.unsubscribe();
  }

  #send(pending: PendingDispatch): void {
    if (this.#closed) return;
    if (!pending.run.wants(pending.attempt)) {
      this.#inFlight.delete(pending.reply);
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
    // Re-inserted: the map stays in the order of sending, which lets the sweep stop early.
    this.#inFlight.delete(pending.reply);
    pending.sentAt = Date.now();
    this.#inFlight.set(pending.reply, pending);
    try {
      this.#connection.publish(pending.subject, pending.data, { reply: pending.reply, headers: pending.headers });
    } catch (error) {
      this.#inFlight.delete(pending.reply);
      if (isPayloadTooLarge(error)) return this.#tooLarge(pending, error);
      this.#failed(pending, error);
    }
  }

  #onAck(err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.#logger.warn({ err }, 'the inbox of stream acks failed');
      return;
    }
    const pending = this.#inFlight.get(msg.subject);
    // An ack for a publish already settled (a late one, after a resend) changes nothing.
    if (pending === undefined) return;
    this.#inFlight.delete(msg.subject);
    if (msg.data.length === 0 && msg.headers?.code === NO_RESPONDERS_STATUS) {
      // No stream takes the subject: it was deleted, or never made.
      this.#streamReady = false;
      return this.#failed(pending, new NoRespondersError(`no stream takes '${pending.subject}'`));
    }
    const ack = parsePubAck(msg.data);
    if (ack instanceof Error) {
      if (isPayloadTooLarge(ack)) return this.#tooLarge(pending, ack);
      this.#streamReady = false;
      return this.#failed(pending, ack);
    }
    if (pending.warned) this.#logger.info({ taskRunId: pending.run.id, attempt: pending.attempt }, 'dispatched the task run after all');
  }

  #tooLarge(pending: PendingDispatch, cause: unknown): void {
    const max = this.#maxPayload;
    pending.run.dispatchFailed(
      pending.attempt,
      new PayloadTooLargeError(`the arguments of the task run are ${pending.data.length} bytes; the server takes at most ${max ?? 'fewer'} bytes per message`, { cause }),
    );
  }

  /** The publish was not stored: try again after a backoff, while the run still wants the attempt. */
  #failed(pending: PendingDispatch, error: unknown): void {
    if (this.#closed || !pending.run.wants(pending.attempt)) return;
    if (!pending.warned) {
      pending.warned = true;
      this.#logger.warn({ err: error, taskRunId: pending.run.id, attempt: pending.attempt }, 'could not dispatch the task run yet; trying again');
    }
    const timer = setTimeout(() => {
      this.#retries.delete(timer);
      this.#send(pending);
    }, pending.backoffMs);
    this.#retries.add(timer);
    pending.backoffMs = Math.min(pending.backoffMs * 2, MAX_BACKOFF_MS);
  }

  /** Publishes unanswered for `ackTimeoutMs` are sent again: the message or its ack was lost. */
  #timeOut(): void {
    const expired = Date.now() - this.#ackTimeoutMs;
    const late: PendingDispatch[] = [];
    for (const pending of this.#inFlight.values()) {
      if (pending.sentAt > expired) break;
      late.push(pending);
    }
    for (const pending of late) {
      this.#inFlight.delete(pending.reply);
      this.#failed(pending, new TimeoutError(`the stream did not acknowledge the dispatch within ${this.#ackTimeoutMs} ms`));
    }
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

  /**
   * nats.js drops what it has not written when the connection breaks: after a
   * reconnect, every publish still waiting for its ack is sent again at once.
   */
  async #watch(): Promise<void> {
    try {
      for await (const status of this.#statuses) {
        if (status.type !== 'reconnect' || this.#closed) continue;
        const waiting = [...this.#inFlight.values()];
        for (const pending of waiting) this.#send(pending);
      }
    } catch (err) {
      this.#logger.warn({ err }, 'NATS status watch of the dispatcher ended');
    }
  }
}

function isPayloadTooLarge(error: unknown): boolean {
  return /max_payload|maximum payload/i.test(String((error as Error)?.message ?? ''));
}
