/**
 * The live watcher (`watch()` without `since`, as `tenaz watch` runs it) across a
 * nats-server restart, when it comes back after the processes that publish: what
 * they held while the server was away and sent on their reconnect is published
 * before the watcher is there again, and must still reach it, once and in order.
 *
 * The watcher reaches the server through a proxy that the test opens again only
 * once the held events are stored, so that the order of the reconnections is not
 * left to chance.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { createNatsBus } from '../../src/bus/nats.js';
import type { RunEvent } from '../../src/events.js';
import { ensureEventsStream } from '../../src/history.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import type { EventStream } from '../../src/runtime/watch.js';
import { createSubjects } from '../../src/subjects.js';
import { freePort } from '../support/nats-server.js';
import { useNatsFixture, waitFor } from '../support/nats-fixture.js';
import { slowChain } from '../fixtures/nats/tasks.js';

const fixture = useNatsFixture();
const logger = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
let namespaces = 0;

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP proxy to the server that can be shut: while shut it refuses connections and has none. */
async function startProxy(upstreamPort: number): Promise<{ url: string; shut(): void; open(): void }> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let shut = false;
  const server: Server = createServer((client) => {
    if (shut) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    shut() {
      shut = true;
      for (const socket of sockets) socket.destroy();
    },
    open() {
      shut = false;
    },
  };
}

async function connectQuickly(url: string): Promise<NatsConnection> {
  const connection = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  cleanups.push(() => connection.close());
  return connection;
}

/** An orchestrator as `tenaz watch` makes one: it runs nothing, and makes no history. */
async function startWatcher(url: string, namespace: string): Promise<{ seen: RunEvent[]; stream: EventStream; ended: Promise<void> }> {
  const watcher = createOrchestrator({ nats: await connectQuickly(url), logger, namespace, execution: 'local' });
  cleanups.push(() => watcher.close());
  const stream = watcher.watch();
  cleanups.push(() => stream.close());
  const seen: RunEvent[] = [];
  const ended = (async () => {
    for await (const event of stream) seen.push(event);
  })();
  return { seen, stream, ended };
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timeout = new Promise<false>((resolve) => setTimeout(() => resolve(false), ms));
  return Promise.race([promise.then(() => true), timeout]);
}

/** Resolves at the next status of `connection` of this type. */
async function nextStatus(connection: NatsConnection, type: 'disconnect' | 'reconnect'): Promise<void> {
  for await (const status of connection.status()) if (status.type === type) return;
}

/** Every event of the namespace's history, in its order. */
async function historyOf(connection: NatsConnection, namespace: string, until: (events: RunEvent[]) => boolean): Promise<RunEvent[]> {
  const reader = createOrchestrator({ nats: connection, logger, namespace, execution: 'local' });
  const replay = reader.watch({ since: { seq: 0 } });
  const events: RunEvent[] = [];
  const reading = (async () => {
    for await (const event of replay) events.push(event);
  })();
  await Promise.race([waitFor(() => until(events), 5_000, 'the history'), reading.then(() => Promise.reject(new Error('the history ended')))]);
  replay.close();
  await reader.close();
  return events;
}

const key = (e: RunEvent) => `${e.type === 'flow.state' ? e.flowRunId : e.taskRunId}#${e.seq}#${e.state.name}`;
const flowEnded = (events: RunEvent[]) => events.some((e) => e.type === 'flow.state' && e.state.name === 'Completed');

function event(flowRunId: string, seq: number): RunEvent {
  return {
    v: 1,
    type: 'flow.state',
    seq,
    flowName: 'held',
    flowRunId,
    flowRunName: 'held',
    parentFlowRunId: undefined,
    tags: [],
    state: { type: 'RUNNING', name: 'Running', timestamp: Date.now(), attempt: 1 },
  } as RunEvent;
}

describe('the live watcher across a server restart, back after the publishers', () => {
  it('gets what a flow run published while the server was down, though it started before there was a history', async () => {
    const { server } = fixture;
    const namespace = `late${++namespaces}`;
    const proxy = await startProxy(server.port);
    const { seen, stream, ended } = await startWatcher(proxy.url, namespace);
    // The watcher finds no history and falls back to a subscription before the owner makes one.
    await new Promise((resolve) => setTimeout(resolve, 300));

    const ownerConnection = await connectQuickly(server.url);
    await ensureEventsStream(await jetstreamManager(ownerConnection), createSubjects(namespace));
    const owner = createOrchestrator({ nats: ownerConnection, logger, namespace, execution: 'local' });
    cleanups.push(() => owner.close());
    const run = owner.start(slowChain, 4, 300);
    await waitFor(() => seen.some((e) => e.type === 'task.state' && e.state.name === 'Running'), 5_000, 'the first task');

    // Down while a task runs: its Completed, and what follows, wait in the owner's bus.
    const ownerDown = nextStatus(ownerConnection, 'disconnect');
    await server.stop();
    proxy.shut();
    await ownerDown;
    await new Promise((resolve) => setTimeout(resolve, 700));
    await server.start();
    await run.result();
    // Once the end of the run is in the history, so is everything the owner held.
    const history = await historyOf(ownerConnection, namespace, flowEnded);
    proxy.open();

    await waitFor(() => flowEnded(seen), 8_000, 'the watcher to see the run end').catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen.map(key)).toEqual(history.map(key));
    stream.close();
    expect(await settlesWithin(ended, 1_000)).toBe(true);
  }, 25_000);

  it('ends when closed while it waits for a history that never comes', async () => {
    const { seen, stream, ended } = await startWatcher(fixture.server.url, `late${++namespaces}`);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    stream.close();
    expect(await settlesWithin(ended, 1_000)).toBe(true);
    expect(seen).toEqual([]);
  });

  it('gets what was published while it was away, when it already followed the history', async () => {
    const { server } = fixture;
    const namespace = `late${++namespaces}`;
    const publisherConnection = await connectQuickly(server.url);
    await ensureEventsStream(await jetstreamManager(publisherConnection), createSubjects(namespace));
    const proxy = await startProxy(server.port);
    const { seen } = await startWatcher(proxy.url, namespace);
    const publisher = createNatsBus({ connection: publisherConnection, logger });
    cleanups.push(() => publisher.close());
    const subject = createSubjects(namespace).flowEvent('held', 'run-1');

    await new Promise((resolve) => setTimeout(resolve, 300));
    publisher.publish(subject, event('run-1', 1));
    await waitFor(() => seen.length === 1, 5_000, 'the first event');
    const publisherDown = nextStatus(publisherConnection, 'disconnect');
    await server.stop();
    proxy.shut();
    await publisherDown;
    publisher.publish(subject, event('run-1', 2));
    const publisherBack = nextStatus(publisherConnection, 'reconnect');
    await server.start();
    await publisherBack;
    await historyOf(publisherConnection, namespace, (events) => events.length === 2);
    proxy.open();
    publisher.publish(subject, event('run-1', 3));

    await waitFor(() => seen.length >= 3, 8_000, 'the watcher to see the three events').catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen.map((e) => e.seq)).toEqual([1, 2, 3]);
  }, 25_000);
});
