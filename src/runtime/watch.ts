/**
 * The event streams `orchestrator.watch()` returns: a plain subscription on the
 * bus (embedded mode, or NATS without a history), the history followed live
 * (NATS; through a subscription until the history exists), or the history
 * replayed from a point and then followed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import { DeliveryQueue } from '../bus/delivery-queue.js';
import { DropCounter } from '../drop-counter.js';
import { parseRunEvent, type EventFilter, type RunEvent } from '../events.js';
import { NoHistoryError, hasHistory, replayEvents, type HistoricRunEvent, type Since } from '../history.js';
import type { Subjects } from '../subjects.js';

/** An async iterable of run events; `close()` ends it. */
export interface EventStream extends AsyncIterable<RunEvent> {
  close(): void;
}

/**
 * How many events a watcher may leave unread before newer ones are dropped (and counted in
 * a warning): a watch nobody iterates, or one read slower than runs change, must not hold
 * the process's memory. Bursts fit: a fan-out of 30,000 task runs publishes 90,000 events.
 */
export const DEFAULT_MAX_UNREAD_EVENTS = 100_000;

/**
 * Events as they are published, through a subscription. `resent`: whether an event may come
 * twice (over NATS, a process keeping a replicated history sends one again until it is stored);
 * the copies are then dropped, at the cost of remembering each run's last event. The memory
 * bus never repeats one.
 */
export function subscribeEvents(
  bus: Bus,
  subjects: Subjects,
  filter: EventFilter,
  logger: Logger,
  { maxUnread = DEFAULT_MAX_UNREAD_EVENTS, resent = true }: { maxUnread?: number; resent?: boolean } = {},
): EventStream {
  const drops = new DropCounter(logger, 'dropped a message on an event subject that is not a run event');
  const overflow = new DropCounter(logger, `dropped run events: the watcher had ${maxUnread} events not yet read (it reads slower than runs change, or not at all)`);
  const unread = new DeliveryQueue();
  const subject = subjects.eventFilter(filter);
  const subscription = bus.subscribe(subject, {
    callback: (delivery) => (unread.size < maxUnread ? unread.push(delivery) : overflow.drop({ subject: delivery.subject })),
  });
  void subscription.closed().then(() => unread.end());
  return {
    async *[Symbol.asyncIterator]() {
      const deliveries = { [Symbol.asyncIterator]: () => unread.iterator(subject, () => subscription.unsubscribe()) };
      const seen = resent ? new LastSeqs() : undefined;
      for await (const delivery of deliveries) {
        const event = parseRunEvent(delivery.message);
        if (event === null) drops.drop({ subject: delivery.subject, type: delivery.message.type });
        else if (seen === undefined || seen.isNew(event)) yield event;
      }
    },
    close: () => subscription.unsubscribe(),
  };
}

/** Runs remembered per generation by `LastSeqs`: two generations, some 10 MB at most. */
const SEEN_RUNS_PER_GENERATION = 50_000;

/**
 * The last event sequence seen of each of the most recent runs: an event at or below it was
 * yielded already (a run numbers its events in order, and one process publishes them in that
 * order). Old runs are forgotten a generation at a time.
 */
class LastSeqs {
  #current = new Map<string, number>();
  #previous = new Map<string, number>();

  isNew(event: RunEvent): boolean {
    const run = event.type === 'flow.state' ? `flow:${event.flowRunId}` : `task:${event.taskRunId}`;
    const last = this.#current.get(run) ?? this.#previous.get(run);
    if (last !== undefined && event.seq <= last) return false;
    this.#current.set(run, event.seq);
    if (this.#current.size >= SEEN_RUNS_PER_GENERATION) {
      this.#previous = this.#current;
      this.#current = new Map();
    }
    return true;
  }
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

/** How often a watcher without a history asks whether there is one yet. */
const HISTORY_POLL_MS = 1_000;

/**
 * Live events through the history, from `now`: its ordered consumer picks up where it
 * was after a reconnect, where a plain subscription misses what was published while it
 * was away. With no history on the server yet (a watcher started before any process that
 * runs flows), through a plain subscription only until the history appears, then through
 * the history again, without the events the subscription already gave.
 */
export function followHistory(connection: NatsConnection, bus: Bus, subjects: Subjects, filter: EventFilter, now: number, logger: Logger): EventStream {
  // Checked here, so that a bad filter throws now rather than on iteration.
  subjects.eventFilter(filter);
  let current: EventStream | undefined;
  let closed = false;
  // Subscribed now, not once the history turns out missing: the events of a run started right
  // after watch() are published before that is known, and the history, made in the background
  // by the first process that runs flows, may not hold them. Closed once the history is read.
  let early: EventStream | undefined = subscribeEvents(bus, subjects, filter, logger);
  const dropEarly = () => {
    early?.close();
    early = undefined;
  };
  // Whatever is read from is opened through here, so that close() reaches it.
  const open = (stream: EventStream): EventStream => {
    current = stream;
    if (closed) stream.close();
    return stream;
  };
  return {
    async *[Symbol.asyncIterator]() {
      let since: Since = { time: now };
      let alreadyYielded = new Set<string>();
      for (;;) {
        const history = open(replayHistory(connection, subjects, filter, since, logger));
        try {
          for await (const event of history) {
            // The history is there and read: it holds whatever the subscription would give.
            dropEarly();
            if (alreadyYielded.size > 0 && alreadyYielded.delete(eventKey(event))) continue;
            yield event;
          }
          return;
        } catch (error) {
          if (!(error instanceof NoHistoryError) || closed) throw error;
          logger.debug({ err: error }, 'no event history to follow yet; watching live events as they are published until there is one');
        }
        const live = open(early ?? subscribeEvents(bus, subjects, filter, logger));
        early = undefined;
        const until = new HistoryPoll(connection, subjects);
        let historyFound = false;
        void until.found.then((found) => {
          historyFound = found;
          if (found) live.close();
        });
        try {
          for await (const event of live) {
            until.yielded.push(eventKey(event));
            yield event;
          }
        } finally {
          until.stop();
        }
        // Closed, or the bus went away under the subscription: the stream of events ends.
        if (closed || !historyFound) return;
        logger.debug('the event history appeared; following it');
        // Not there after `now`: all of it is newer. Without the server's word, `now` it is.
        since = until.absentSeen ? { seq: 0 } : { time: now };
        alreadyYielded = new Set(until.yielded);
      }
    },
    close: () => {
      closed = true;
      current?.close();
      dropEarly();
    },
  };
}

/**
 * Asks every `HISTORY_POLL_MS` whether the history exists, until it does (`found` resolves
 * true) or `stop()` (false).
 */
class HistoryPoll {
  /**
   * Keys of the events the watcher yielded meanwhile that the history may hold too: each time
   * the server says it has no history, those yielded before the question cannot be in it.
   */
  readonly yielded: string[] = [];
  /** The server said there was no history, after the watch began: all of it, once there, is new. */
  absentSeen = false;
  readonly found: Promise<boolean>;
  readonly #stopping = new AbortController();

  constructor(connection: NatsConnection, subjects: Subjects) {
    this.found = this.#poll(connection, subjects);
  }

  stop(): void {
    this.#stopping.abort();
  }

  async #poll(connection: NatsConnection, subjects: Subjects): Promise<boolean> {
    const { signal } = this.#stopping;
    while (!signal.aborted) {
      const asked = this.yielded.length;
      const exists = await hasHistory(connection, subjects);
      if (exists === true) return !signal.aborted;
      if (exists === false) {
        this.absentSeen = true;
        this.yielded.splice(0, asked);
      }
      try {
        await sleep(HISTORY_POLL_MS, undefined, { signal });
      } catch {
        return false;
      }
    }
    return false;
  }
}

/** What tells one event from another: each run numbers its own events. */
function eventKey(event: RunEvent): string {
  return event.type === 'flow.state' ? `flow:${event.flowRunId}#${event.seq}` : `task:${event.taskRunId}#${event.seq}`;
}
