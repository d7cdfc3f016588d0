/**
 * `watch({ since: time })` from a time after which nothing is stored yet (now, or
 * in the future): the time becomes the sequence of the next event to come, which
 * is yielded when it comes, a server restart in between or not.
 */
import { describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { encode } from '../../src/codec.js';
import type { RunEvent } from '../../src/events.js';
import { ensureEventsStream } from '../../src/history.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { createSubjects } from '../../src/subjects.js';
import { useNatsFixture, waitFor } from '../support/nats-fixture.js';

const fixture = useNatsFixture();
const logger = pino({ level: 'silent' });
let namespaces = 0;

/** Stores a flow event of `flowRunId` in the history, and waits for the server's ack. */
async function store(connection: NatsConnection, namespace: string, flowRunId: string, seq: number): Promise<void> {
  const message = {
    v: 1,
    type: 'flow.state',
    seq,
    flowName: 'f',
    flowRunId,
    flowRunName: 'n',
    tags: [],
    state: { type: 'RUNNING', name: 'Running', timestamp: Date.now(), attempt: 1 },
  };
  await jetstream(connection).publish(createSubjects(namespace).flowEvent('f', flowRunId), encode(message));
}

async function reconnected(connection: NatsConnection): Promise<void> {
  for (;;) {
    try {
      await connection.flush();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

describe('watch from a time with nothing stored after it yet', () => {
  const cases = [
    { name: 'now', offsetMs: 0, purged: false, restart: false },
    { name: 'in the future', offsetMs: 60_000, purged: false, restart: false },
    { name: 'in the future, over a purged history', offsetMs: 60_000, purged: true, restart: false },
    { name: 'in the future, with a server restart before the first event', offsetMs: 60_000, purged: false, restart: true },
  ];
  for (const { name, offsetMs, purged, restart } of cases) {
    it(`yields the first event that comes later: ${name}`, async () => {
      const { connection, server } = fixture;
      const namespace = `since${++namespaces}`;
      const jsm = await jetstreamManager(connection);
      await ensureEventsStream(jsm, createSubjects(namespace));
      await store(connection, namespace, 'before', 1);
      await store(connection, namespace, 'before', 2);
      if (purged) await jsm.streams.purge(createSubjects(namespace).eventsStream);

      const watcher = createOrchestrator({ nats: connection, logger, namespace, execution: 'local' });
      const stream = watcher.watch({ since: new Date(Date.now() + offsetMs) });
      const seen: RunEvent[] = [];
      void (async () => {
        for await (const event of stream) seen.push(event);
      })();
      await new Promise((resolve) => setTimeout(resolve, 300));
      if (restart) {
        await server.stop();
        await server.start();
        await reconnected(connection);
      }
      await store(connection, namespace, 'after', 1);
      await store(connection, namespace, 'after', 2);

      await waitFor(() => seen.length >= 2, 8_000, 'the events after').catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 100));
      stream.close();
      await watcher.close();
      expect(seen.map((e) => `${e.flowRunId}#${e.seq}`)).toEqual(['after#1', 'after#2']);
    }, 20_000);
  }
});
