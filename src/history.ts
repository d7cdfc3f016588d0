/**
 * The history of run events: a JetStream stream over every event subject, so
 * that an observer can replay events from a point in time or a sequence and
 * then keep following live ones, with neither a gap nor a duplicate (one
 * ordered consumer reads both, resuming from its last sequence after a
 * reconnect or a server restart).
 *
 * Events reach the stream by being published on their subjects: the runtime
 * does nothing more to record them than to publish them.
 */
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
  type ConsumerMessages,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
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
/** How long `hasHistory` waits for an answer: a request made while disconnected gets none. */
const HISTORY_CHECK_TIMEOUT_MS = 2_000;

/** Where a replay starts: a time (a Date, or ms since the epoch as `{ time }`) or a stream sequence. */
export type Since = Date | { time: number } | { seq: number };

/** A replayed event, with its place in the history. */
export type HistoricRunEvent = RunEvent & {
  /** Sequence of the event in the history stream: `--since` this number + 1 resumes after it. */
  readonly streamSeq: number;
};

/** Makes sure the history stream exists; idempotent, and safe when several processes race. */
export async function ensureEventsStream(jsm: JetStreamManager, subjects: Subjects, options: HistoryOptions = {}, replicas = 1): Promise<void> {
  try {
    await jsm.streams.info(subjects.eventsStream);
    return;
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
  }
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
  let stopped = false;
  const drops = new DropCounter(logger, 'dropped a message in the event history that is not a run event');
  async function* iterate(): AsyncGenerator<HistoricRunEvent> {
    try {
      yield* follow();
    } catch (error) {
      // Closing the watch, or the connection, under a watcher that is still starting ends it quietly.
      if (stopped || connection.isClosed()) return;
      throw error;
    }
  }

  async function* follow(): AsyncGenerator<HistoricRunEvent> {
    const jsm = await jetstreamManager(connection);
    // Observers only read: the processes that run flows make the stream.
    await jsm.streams.info(subjects.eventsStream).catch((cause: unknown) => {
      throw new NoHistoryError(`no event history on this server (stream ${subjects.eventsStream}): ${(cause as Error)?.message ?? cause}`, { cause });
    });
    // A time becomes a sequence first: nats.js's ordered consumer cannot remake itself after a
    // server restart when it was made with a start time (it keeps the time beside the sequence).
    const startSeq = 'seq' in since ? since.seq : await sequenceAt(jsm, subjects.eventsStream, since instanceof Date ? since.getTime() : since.time);
    if (stopped) return;
    // An ordered consumer: no acks, in stream order, recreated from its last sequence when lost.
    const consumer = await jetstream(connection).consumers.get(subjects.eventsStream, {
      // One subject as a string: nats-server 2.9 takes a single filter subject.
      filter_subjects: subjects.eventFilter(filter),
      ...(startSeq <= 1 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq }),
    });
    // Short pulls: a consumer lost in a server restart is noticed, and remade, within seconds.
    messages = await consumer.consume({ expires: CONSUME_EXPIRES_MS });
    if (stopped) messages.stop();
    try {
      for await (const message of messages) {
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
      if (!stopped && !connection.isClosed()) logger.warn({ err }, 'stopped reading the event history');
    }
  }

  return {
    events: { [Symbol.asyncIterator]: () => iterate() },
    stop() {
      stopped = true;
      messages?.stop();
    },
  };
}

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
