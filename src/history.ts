/**
 * The history of run events: a JetStream stream over every event subject, so
 * that an observer can replay events from a point in time or a sequence and
 * then keep following live ones, with neither a gap nor a duplicate (one
 * ordered consumer reads both, resuming from its last sequence after a
 * reconnect or a server restart).
 *
 * Events reach the stream by being published on their subjects; a process that
 * keeps the history (one that runs flows) sends each again until the stream has
 * acknowledged it (`HistoryWriter`), so that none is lost while a cluster elects
 * the stream's leader.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
} from '@nats-io/jetstream';
import {
  NoRespondersError as NatsNoRespondersError,
  RequestError,
  TimeoutError as NatsTimeoutError,
  nanos,
  type NatsConnection,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { parseMessage } from './codec.js';
import { DropCounter } from './drop-counter.js';
import { IllegalStateError, InvalidArgumentError } from './errors.js';
import { parseRunEvent, type RunEvent } from './events.js';
import type { EventFilter, Subjects } from './subjects.js';

export interface HistoryOptions {
  /** How long events are kept, in ms. @default 7 days */
  maxAgeMs?: number;
  /** How many bytes of events are kept; the oldest go first. @default 1 GiB */
  maxBytes?: number;
}

export const DEFAULT_HISTORY_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_HISTORY_MAX_BYTES = 1024 ** 3;
/** How long one pull of the history waits; also how soon a lost consumer is noticed. */
const CONSUME_EXPIRES_MS = 2_000;
/**
 * How long the consumer of the history may show no sign of life before it is made again, in
 * ms: a live one shows one at least every `CONSUME_EXPIRES_MS` (an event, a heartbeat, the
 * end of a pull).
 */
const CONSUMER_STALL_MS = 3 * CONSUME_EXPIRES_MS;
const FIRST_REOPEN_BACKOFF_MS = 250;
const MAX_REOPEN_BACKOFF_MS = 2_000;
/** How long `hasHistory` waits for an answer: a request made while disconnected gets none. */
const HISTORY_CHECK_TIMEOUT_MS = 2_000;

/** Where a replay starts: a time (a Date, or ms since the epoch as `{ time }`) or a stream sequence. */
export type Since = Date | { time: number } | { seq: number };

/** A replayed event, with its place in the history. */
export type HistoricRunEvent = RunEvent & {
  /** Sequence of the event in the history stream: `--since` this number + 1 resumes after it. */
  readonly streamSeq: number;
};

/**
 * Makes sure the history stream exists; idempotent, and safe when several processes race.
 * Resolves with its number of replicas (as made, or as another process made it).
 */
export async function ensureEventsStream(jsm: JetStreamManager, subjects: Subjects, options: HistoryOptions = {}, replicas = 1): Promise<number> {
  try {
    return (await jsm.streams.info(subjects.eventsStream)).config.num_replicas;
  } catch (error) {
    if (!/not found/i.test(String((error as Error)?.message))) throw error;
  }
  try {
    await jsm.streams.add({
      name: subjects.eventsStream,
      subjects: [subjects.eventFilter()],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(options.maxAgeMs ?? DEFAULT_HISTORY_MAX_AGE_MS),
      max_bytes: options.maxBytes ?? DEFAULT_HISTORY_MAX_BYTES,
      num_replicas: replicas,
    });
  } catch (error) {
    if (!/already in use/i.test(String((error as Error)?.message))) throw error;
    return (await jsm.streams.info(subjects.eventsStream)).config.num_replicas;
  }
  return replicas;
}

/** The history stream is missing (no flow has run here yet) or cannot be read. */
export class NoHistoryError extends IllegalStateError {
  override readonly name = 'NoHistoryError';
}

/**
 * Whether the history stream exists: `false` only when the server says it does not,
 * `null` when it gives no answer (disconnected, timed out, no JetStream).
 */
export async function hasHistory(connection: NatsConnection, subjects: Subjects): Promise<boolean | null> {
  try {
    // No API check: this is asked again and again, by a watcher waiting for the history.
    const jsm = await jetstreamManager(connection, { checkAPI: false, timeout: HISTORY_CHECK_TIMEOUT_MS });
    await jsm.streams.info(subjects.eventsStream);
    return true;
  } catch (error) {
    return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound ? false : null;
  }
}

/** Checks and normalises what `watch({ since })` and `tenaz watch --since` accept. */
export function parseSince(value: unknown): Since {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new InvalidArgumentError('since must be a valid date');
    return value;
  }
  if (typeof value === 'object' && value !== null) {
    const { time, seq } = value as { time?: unknown; seq?: unknown };
    if (typeof seq === 'number' && Number.isInteger(seq) && seq >= 0) return { seq };
    if (typeof time === 'number' && Number.isFinite(time)) return { time };
  }
  throw new InvalidArgumentError(`since must be a Date, { time: ms } or { seq: n } (n >= 0), got ${JSON.stringify(value)}`);
}

/**
 * Every event matching `filter` from `since` on: first the history, then live,
 * until `signal` aborts or `stop()` is called.
 */
export function replayEvents(
  connection: NatsConnection,
  subjects: Subjects,
  filter: EventFilter,
  since: Since,
  logger: Logger,
): { events: AsyncIterable<HistoricRunEvent>; stop(): void } {
  let messages: ConsumerMessages | undefined;
  const stopping = new AbortController();
  const stream = subjects.eventsStream;
  const drops = new DropCounter(logger, 'dropped a message in the event history that is not a run event');
  const ended = () => stopping.signal.aborted || connection.isClosed();
  async function* iterate(): AsyncGenerator<HistoricRunEvent> {
    try {
      yield* follow();
    } catch (error) {
      // Closing the watch, or the connection, under a watcher that is still starting ends it quietly.
      if (ended()) return;
      throw error;
    }
  }

  /** An ordered consumer: no acks, in stream order, from `startSeq` (1 or less: from the first event). */
  function openConsumer(startSeq: number): Promise<Consumer> {
    return jetstream(connection).consumers.get(stream, {
      // One subject as a string: nats-server 2.9 takes a single filter subject.
      filter_subjects: subjects.eventFilter(filter),
      ...(startSeq <= 1 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq }),
    });
  }

  /**
   * `openConsumer`, tried again while the stream cannot answer (no leader yet, on a cluster
   * electing one); after a consumer was lost, tried again whatever the failure, but a stream
   * gone. `undefined` once the watch or the connection closed.
   */
  async function openConsumerWhenAble(startSeq: number, lost: boolean): Promise<Consumer | undefined> {
    for (let backoffMs = FIRST_REOPEN_BACKOFF_MS; !ended(); backoffMs = Math.min(backoffMs * 2, MAX_REOPEN_BACKOFF_MS)) {
      try {
        return await openConsumer(startSeq);
      } catch (error) {
        if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) {
          throw new NoHistoryError(`no event history on this server (stream ${stream})`, { cause: error });
        }
        if (!lost && !isUnavailable(error)) throw error;
        logger.debug({ err: error, stream, startSeq }, 'could not make a consumer of the event history yet; trying again');
        await sleep(backoffMs, undefined, { signal: stopping.signal }).catch(() => undefined);
      }
    }
    return undefined;
  }

  async function* follow(): AsyncGenerator<HistoricRunEvent> {
    const jsm = await jetstreamManager(connection);
    // Observers only read: the processes that run flows make the stream.
    await jsm.streams.info(stream).catch((cause: unknown) => {
      throw new NoHistoryError(`no event history on this server (stream ${stream}): ${(cause as Error)?.message ?? cause}`, { cause });
    });
    // A time becomes a sequence first: nats.js's ordered consumer cannot remake itself after a
    // server restart when it was made with a start time (it keeps the time beside the sequence).
    let nextSeq = 'seq' in since ? since.seq : await sequenceAt(jsm, stream, since instanceof Date ? since.getTime() : since.time);
    for (let consumer = await openConsumerWhenAble(nextSeq, false); consumer !== undefined && !ended(); ) {
      // Short pulls: a consumer lost in a server restart is noticed, and remade, within seconds.
      const current = await consumer.consume({ expires: CONSUME_EXPIRES_MS });
      messages = current;
      if (ended()) current.stop();
      const watchdog = new StallWatch(current, CONSUMER_STALL_MS);
      try {
        for await (const message of current) {
          watchdog.alive();
          nextSeq = message.seq + 1;
          const decoded = parseMessage(message.data);
          const event = decoded === null ? null : parseRunEvent(decoded);
          if (event === null) {
            drops.drop({ subject: message.subject, streamSeq: message.seq });
            continue;
          }
          yield Object.assign(event, { streamSeq: message.seq });
        }
      } catch (err) {
        // The connection closed under the watcher: the stream of events ends.
        if (!ended()) logger.warn({ err }, 'stopped reading the event history');
        return;
      } finally {
        watchdog.stop();
      }
      if (!watchdog.stalled || ended()) return;
      // nats.js remakes an ordered consumer it finds gone, but it asks the consumer's server
      // first: on a cluster, a consumer (one replica) on a node that died has no server to
      // answer, and nats.js waits for ever. Made again here, from the event after the last one.
      logger.warn({ stream, nextSeq }, 'lost the consumer of the event history (its server stopped answering); following the history again from where it was');
      const lostName = (await consumer.info(true).catch(() => undefined))?.name;
      if (lostName !== undefined) jsm.consumers.delete(stream, lostName).catch(() => {});
      consumer = await openConsumerWhenAble(nextSeq, true);
      if (consumer !== undefined) logger.info({ stream, nextSeq }, 'following the event history again');
    }
  }

  return {
    events: { [Symbol.asyncIterator]: () => iterate() },
    stop() {
      stopping.abort();
      messages?.stop();
    },
  };
}

/** A failure that says the stream cannot answer now, not that something is wrong: no leader, no reply in time. */
function isUnavailable(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return error.status === 503;
  return error instanceof NatsTimeoutError || error instanceof NatsNoRespondersError || error instanceof RequestError;
}

/**
 * Stops `messages` once the server shows no sign of life for `stallMs`: no message, no idle
 * heartbeat, no end of a pull. A consumer that is there shows one every `CONSUME_EXPIRES_MS`.
 * (nats.js notices missed heartbeats too, but only remakes a consumer its server says is gone.)
 */
class StallWatch {
  stalled = false;
  #lastAliveAt = Date.now();
  readonly #timer: NodeJS.Timeout;
  readonly #statuses: { stop(): void } & AsyncIterable<{ type: string }>;

  constructor(messages: ConsumerMessages, stallMs: number) {
    this.#statuses = messages.status() as unknown as { stop(): void } & AsyncIterable<{ type: string }>;
    void this.#watch();
    let received = 0;
    this.#timer = setInterval(() => {
      // Messages received, read yet or not (a watcher may read slower than they come).
      if (messages.getReceived() !== received) {
        received = messages.getReceived();
        this.alive();
      }
      if (Date.now() - this.#lastAliveAt < stallMs) return;
      this.stalled = true;
      messages.stop();
    }, Math.ceil(stallMs / 4));
    this.#timer.unref();
  }

  alive(): void {
    this.#lastAliveAt = Date.now();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#statuses.stop();
  }

  async #watch(): Promise<void> {
    for await (const status of this.#statuses) {
      // What the client says about itself (a pull sent, heartbeats missed, a reset tried) is no sign of the server.
      if (!CLIENT_STATUSES.has(status.type)) this.alive();
    }
  }
}

/** Statuses of a consumer's messages that the client makes up itself, without hearing from the server. */
const CLIENT_STATUSES: ReadonlySet<string> = new Set(['next', 'heartbeats_missed', 'reset', 'no_responders', 'consumer_not_found', 'stream_not_found', 'consumer_deleted']);

/** The sequence of the first event stored at or after `time` (the next one to come, if none is). */
async function sequenceAt(jsm: JetStreamManager, stream: string, time: number): Promise<number> {
  // A throwaway consumer: the server finds the sequence, and says it as the one "delivered" before it.
  const info = await jsm.consumers.add(stream, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(time).toISOString(),
    inactive_threshold: nanos(5_000),
  });
  jsm.consumers.delete(stream, info.name).catch(() => {});
  return info.delivered.stream_seq + 1;
}
