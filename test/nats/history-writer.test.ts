/**
 * How run events reach the history from a process that keeps it (`HistoryWriter`): each
 * is sent again until the stream stores it, once, in its run's order; and a live watcher
 * yields an event it receives twice (a resend) once.
 *
 * Regression (QA, three-node cluster): events published while the history's leader was
 * re-elected were never stored; see cluster-election.test.ts for the cluster itself. Here
 * no stream at all stands for a stream without a leader: nothing takes the publish (503).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { createNatsBus } from '../../src/bus/nats.js';
import { parseMessage } from '../../src/codec.js';
import { EVENT_VERSION, type RunEvent, type TaskStateEvent } from '../../src/events.js';
import { ensureEventsStream } from '../../src/history.js';
import { HistoryWriter } from '../../src/history-writer.js';
import { subscribeEvents } from '../../src/runtime/watch.js';
import { createSubjects } from '../../src/subjects.js';
import { useNatsServer } from '../support/use-nats-server.js';
import { waitFor } from '../support/nats-fixture.js';

const nats = useNatsServer();
const logger = pino({ level: 'silent' });
const cleanups: Array<() => Promise<unknown> | unknown> = [];
let namespaces = 0;

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function open(): Promise<NatsConnection> {
  const connection = await connect({ servers: nats.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  cleanups.push(() => connection.close());
  return connection;
}

function taskEvent(taskRunId: string, seq: number): TaskStateEvent {
  return {
    v: EVENT_VERSION,
    type: 'task.state',
    seq,
    flowName: 'f',
    flowRunId: 'flow-1',
    taskName: 't',
    taskRunId,
    taskRunName: `t-${taskRunId}`,
    tags: [],
    state: { type: 'RUNNING', name: 'Running', timestamp: Date.now(), attempt: 1 },
  };
}

describe('HistoryWriter', () => {
  it('stores events published while no stream takes them once one does: each once, in its run\'s order', async () => {
    const connection = await open();
    const subjects = createSubjects(`writer${++namespaces}`);
    const writer = new HistoryWriter(connection, logger, 1_000);
    cleanups.push(() => writer.close());
    const published = [taskEvent('a', 1), taskEvent('b', 1), taskEvent('a', 2), taskEvent('a', 3), taskEvent('b', 2)];
    for (const event of published) writer.publish(subjects.taskEvent(event.flowName, event.flowRunId, event.taskName, event.taskRunId), event);
    await waitFor(() => writer.pending === published.length, 1_000, 'every event waiting');
    // Resent meanwhile, with backoff: none stored, for there is no stream.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const jsm = await jetstreamManager(connection);
    await ensureEventsStream(jsm, subjects);
    await waitFor(() => writer.pending === 0, 10_000, 'every event stored');
    // A moment for a resend still on its way, which the stream must drop as a duplicate.
    await new Promise((resolve) => setTimeout(resolve, 300));

    const stored: RunEvent[] = [];
    const info = await jsm.streams.info(subjects.eventsStream);
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq += 1) {
      stored.push(parseMessage((await jsm.streams.getMessage(subjects.eventsStream, { seq }))!.data) as RunEvent);
    }
    const ofRun = (id: string) => stored.filter((e) => e.type === 'task.state' && e.taskRunId === id).map((e) => e.seq);
    expect(stored).toHaveLength(published.length);
    expect(ofRun('a')).toEqual([1, 2, 3]);
    expect(ofRun('b')).toEqual([1, 2]);
  });

  it('a live watcher yields an event it receives again (a resend) once', async () => {
    const connection = await open();
    const subjects = createSubjects(`writer${++namespaces}`);
    const bus = createNatsBus({ connection, logger });
    cleanups.push(() => bus.close());
    const watch = subscribeEvents(bus, subjects, {}, logger);
    cleanups.push(() => watch.close());
    const seen: RunEvent[] = [];
    void (async () => {
      for await (const event of watch) seen.push(event);
    })();
    await bus.flush();
    const subject = subjects.taskEvent('f', 'flow-1', 't', 'a');
    for (const seq of [1, 1, 2, 1, 2, 3]) bus.publish(subject, taskEvent('a', seq));
    bus.publish(subjects.taskEvent('f', 'flow-1', 't', 'b'), taskEvent('b', 1));
    await waitFor(() => seen.some((e) => e.type === 'task.state' && e.taskRunId === 'b'), 5_000, 'the last event');
    expect(seen.map((e) => (e.type === 'task.state' ? `${e.taskRunId}#${e.seq}` : ''))).toEqual(['a#1', 'a#2', 'a#3', 'b#1']);
  });
});
