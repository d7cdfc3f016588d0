/**
 * Stores run events in the event history (see history.ts), each until the stream has
 * acknowledged it: on a cluster, an event published while the stream's leader is being
 * elected (a node killed) would otherwise be lost.
 */
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { encode } from './codec.js';
import { LogThrottle } from './drop-counter.js';
import type { RunEvent } from './events.js';
import { describeFailure, isPayloadTooLarge, toPermissionDenied } from './nats/passing-failure.js';
import { followStatus, RetryTimers, type StatusFollower } from './nats/status.js';
import { MSG_ID_HEADER, StreamPublisher } from './nats/stream-publisher.js';

/** How long a run event waits for the history's acknowledgement before it is sent again, in ms. */
const EVENT_ACK_TIMEOUT_MS = 3_000;
const FIRST_EVENT_BACKOFF_MS = 50;
const MAX_EVENT_BACKOFF_MS = 1_000;
/**
 * How long a run event is sent again before it is given up, in ms: the stream's default
 * duplicate window (2 min), past which a resent event could be stored twice.
 */
const EVENT_GIVE_UP_MS = 110_000;
/** At most one line per this interval about run events given up, in ms. */
const GIVE_UP_LOG_INTERVAL_MS = 5_000;

/** A run event on its way to the history. */
interface PendingEvent {
  readonly run: string;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs;
  readonly firstSentAt: number;
  /** Sends so far: the answer to an earlier one changes nothing. */
  sends: number;
  /** The delay before the next send, should this one fail. */
  backoff: { ms: number };
}

/**
 * Stores run events in the history, each until the stream has acknowledged it.
 *
 * A plain publish is stored only if the stream has a leader at that moment: on a cluster,
 * the events published while its leader is re-elected (a node killed) would be lost. Each
 * event is published with a reply subject (one inbox for all, see `StreamPublisher`) and
 * sent again, with backoff, until the stream acknowledges it; its `Nats-Msg-Id` (run and
 * event sequence) makes a resend that was stored already a no-op on the server.
 *
 * The events of one run are sent one at a time, each once the one before is stored, so that
 * a resent event is never stored after a later one of its run: the history keeps each run's
 * order. Runs do not wait for each other, and the next event of a run is rarely published
 * before the previous one is acknowledged (a transition waits for a worker, or a task body).
 * Live subscribers see an event sent again twice: `watch()` yields it once.
 */
export class HistoryWriter {
  readonly #connection: NatsConnection;
  readonly #logger: Logger;
  readonly #stream: StreamPublisher;
  /** The events of each run not yet stored, oldest first: the first one is the one sent. */
  readonly #runs = new Map<string, PendingEvent[]>();
  readonly #retries = new RetryTimers(MAX_EVENT_BACKOFF_MS);
  readonly #statuses: StatusFollower;
  readonly #givenUp = new LogThrottle(Date.now, GIVE_UP_LOG_INTERVAL_MS);
  #closed = false;

  constructor(connection: NatsConnection, logger: Logger, ackTimeoutMs = EVENT_ACK_TIMEOUT_MS) {
    this.#connection = connection;
    this.#logger = logger;
    this.#stream = new StreamPublisher(connection, ackTimeoutMs);
    // nats.js drops what it has not written when the connection breaks: every event in flight is sent again on reconnect.
    this.#statuses = followStatus(connection, (status) => {
      if (status.type !== 'reconnect' || this.#closed) return;
      for (const [first] of this.#runs.values()) if (first !== undefined) this.#send(first);
    });
  }

  /** Events of runs waiting for the history's acknowledgement. */
  get pending(): number {
    let count = 0;
    for (const events of this.#runs.values()) count += events.length;
    return count;
  }

  /**
   * Publishes `event` on `subject`, and sends it again until the history has stored it.
   * @throws when the event cannot be encoded, or (closed) the connection refuses the publish
   */
  publish(subject: string, event: RunEvent): void {
    const run = event.type === 'flow.state' ? `flow:${event.flowRunId}` : `task:${event.taskRunId}`;
    const hdrs = headers();
    hdrs.set(MSG_ID_HEADER, `${run}#${event.seq}`);
    const data = encode(event);
    if (this.#closed) {
      this.#connection.publish(subject, data, { headers: hdrs });
      return;
    }
    const pending: PendingEvent = { run, subject, data, headers: hdrs, firstSentAt: Date.now(), sends: 0, backoff: { ms: FIRST_EVENT_BACKOFF_MS } };
    const waiting = this.#runs.get(run);
    if (waiting !== undefined) {
      waiting.push(pending);
      return;
    }
    this.#runs.set(run, [pending]);
    this.#send(pending);
  }

  /**
   * Stops sending again: the events that wait behind an unacknowledged one of their run are
   * sent once, now (the connection's drain flushes them), and nothing is tracked any more.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#retries.clear();
    this.#statuses.stop();
    const runs = [...this.#runs.values()];
    this.#runs.clear();
    this.#stream.close();
    if (this.#connection.isClosed()) return;
    for (const events of runs) {
      for (const { subject, data, headers: hdrs, sends } of events) {
        if (sends > 0) continue;
        try {
          this.#connection.publish(subject, data, { headers: hdrs });
        } catch {
          // Draining or closed under us: nothing more can be sent.
          return;
        }
      }
    }
  }

  #send(pending: PendingEvent): void {
    if (this.#closed) return;
    const send = ++pending.sends;
    this.#stream.publish(pending.subject, pending.data, pending.headers).then(
      () => {
        if (pending.sends === send) this.#stored(pending);
      },
      (error: unknown) => {
        if (this.#closed || pending.sends !== send) return;
        // No retry changes a user's permissions, nor the size of an event.
        if (toPermissionDenied(error) !== undefined || isPayloadTooLarge(error)) return this.#giveUp(pending, error);
        // No stream took it (a leader being elected: 503), or no answer came: again, later.
        if (Date.now() - pending.firstSentAt > EVENT_GIVE_UP_MS) return this.#giveUp(pending, error);
        this.#retries.after(pending.backoff, () => {
          if (this.#runs.get(pending.run)?.[0] === pending) this.#send(pending);
        });
      },
    );
  }

  /** `pending` is stored (or given up): the next event of its run goes. */
  #stored(pending: PendingEvent): void {
    const waiting = this.#runs.get(pending.run);
    if (waiting?.[0] !== pending) return;
    waiting.shift();
    const next = waiting[0];
    if (next === undefined) this.#runs.delete(pending.run);
    else this.#send(next);
  }

  #giveUp(pending: PendingEvent, error: unknown): void {
    const suppressed = this.#givenUp.take();
    if (suppressed >= 0) {
      this.#logger.warn({ reason: describeFailure(error), subject: pending.subject, givenUpSinceLastLine: suppressed + 1 }, 'could not store a run event in the event history; it is missing there');
    }
    this.#stored(pending);
  }
}
