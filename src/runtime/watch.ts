/**
 * The event streams `orchestrator.watch()` returns: a plain subscription on the
 * bus (embedded mode, or NATS without a history), the history followed live
 * (NATS), or the history replayed from a point and then followed.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import { DropCounter } from '../drop-counter.js';
import { parseRunEvent, type EventFilter, type RunEvent } from '../events.js';
import { NoHistoryError, replayEvents, type HistoricRunEvent, type Since } from '../history.js';
import type { Subjects } from '../subjects.js';

/** An async iterable of run events; `close()` ends it. */
export interface EventStream extends AsyncIterable<RunEvent> {
  close(): void;
}

/** Events as they are published, through a subscription. */
export function subscribeEvents(bus: Bus, subjects: Subjects, filter: EventFilter, logger: Logger): EventStream {
  const subscription = bus.subscribe(subjects.eventFilter(filter));
  const drops = new DropCounter(logger, 'dropped a message on an event subject that is not a run event');
  return {
    async *[Symbol.asyncIterator]() {
      for await (const delivery of subscription) {
        const event = parseRunEvent(delivery.message);
        if (event) yield event;
        else drops.drop({ subject: delivery.subject, type: delivery.message.type });
      }
    },
    close: () => subscription.unsubscribe(),
  };
}

/** The history from `since` on, then live events as they are stored. */
export function replayHistory(connection: NatsConnection, subjects: Subjects, filter: EventFilter, since: Since, logger: Logger): EventStream {
  // Checked here, so that a bad filter throws now rather than on iteration.
  subjects.eventFilter(filter);
  const replay = replayEvents(connection, subjects, filter, since, logger);
  return {
    [Symbol.asyncIterator]: () => replay.events[Symbol.asyncIterator]() as AsyncIterator<HistoricRunEvent>,
    close: () => replay.stop(),
  };
}

/**
 * Live events through the history, from `now`: its ordered consumer picks up where it
 * was after a reconnect, where a plain subscription misses what was published while it
 * was away. With no history on the server (yet), through a plain subscription instead.
 */
export function followHistory(connection: NatsConnection, bus: Bus, subjects: Subjects, filter: EventFilter, now: number, logger: Logger): EventStream {
  const replay = replayHistory(connection, subjects, filter, { time: now }, logger);
  let fallback: EventStream | undefined;
  let closed = false;
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* replay;
        return;
      } catch (error) {
        if (!(error instanceof NoHistoryError) || closed) throw error;
        logger.debug({ err: error }, 'no event history to follow; watching live events as they are published');
      }
      fallback = subscribeEvents(bus, subjects, filter, logger);
      if (closed) fallback.close();
      yield* fallback;
    },
    close: () => {
      closed = true;
      replay.close();
      fallback?.close();
    },
  };
}
