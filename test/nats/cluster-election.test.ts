/**
 * The event history across a leader election on a three-node cluster, with every
 * stream and KV bucket at three replicas: `kill -9` the node that leads the history
 * stream in the middle of a flow, while the owner, the worker and the watcher are
 * connected to the two other nodes.
 *
 * Regression (QA, three-node cluster of deploy/nats/cluster/): the live watcher went
 * silent for good after the kill (its ordered consumer, a single replica on the dead
 * node, was never remade: nats.js waits for its consumer info, which nobody answers),
 * and the events published during the election were never stored (published with
 * core NATS, they reached a stream with no leader).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import type { RunEvent } from '../../src/events.js';
import { ensureEventsStream } from '../../src/history.js';
import { flow, task } from '../../src/index.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import type { EventStream } from '../../src/runtime/watch.js';
import { createSubjects } from '../../src/subjects.js';
import { freePort, startNatsServer, type NatsServer } from '../support/nats-server.js';
import { poll } from '../support/poll.js';

const logger = pino({ level: process.env.TENAZ_TEST_LOG ?? 'silent' });
const cleanups: Array<() => Promise<unknown> | unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface ClusterNode {
  readonly name: string;
  readonly server: NatsServer;
}

/** Three JetStream nodes on loopback, on random ports, each with its own temporary store. */
async function startCluster(): Promise<ClusterNode[]> {
  const names = ['node-a', 'node-b', 'node-c'];
  const routePorts = await Promise.all(names.map(() => freePort()));
  const nodes = await Promise.all(
    names.map(async (name, i) => {
      const routes = routePorts.filter((_, j) => j !== i).map((port) => `nats-route://127.0.0.1:${port}`);
      const server = await startNatsServer({
        args: ['--server_name', name, '--cluster_name', 'tenaz-test', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes.join(',')],
      });
      cleanups.push(() => server.dispose());
      return { name, server };
    }),
  );
  return nodes;
}

async function connectTo(node: ClusterNode): Promise<NatsConnection> {
  const connection = await connect({ servers: node.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  cleanups.push(() => connection.close());
  return connection;
}

function runKey(event: RunEvent): string {
  return event.type === 'flow.state' ? `flow:${event.flowRunId}` : `task:${event.taskRunId}`;
}

/** Every run's events, in the order they came. */
function byRun(events: readonly RunEvent[]): Map<string, RunEvent[]> {
  const runs = new Map<string, RunEvent[]>();
  for (const event of events) {
    const key = runKey(event);
    runs.set(key, [...(runs.get(key) ?? []), event]);
  }
  return runs;
}

/** Runs whose events are not exactly 1, 2, ... n in order, ending in a final state. */
function brokenRuns(events: readonly RunEvent[]): string[] {
  const broken: string[] = [];
  for (const [key, run] of byRun(events)) {
    const seqs = run.map((e) => e.seq);
    const last = run.at(-1)!;
    const complete = seqs.every((seq, i) => seq === i + 1) && last.state.type === 'COMPLETED';
    if (!complete) broken.push(`${key}: ${run.map((e) => `${e.seq}:${e.state.name}`).join(' ')}`);
  }
  return broken;
}

const TASKS = 40;
const TASK_MS = 250;
const pause = task({ name: 'election-pause', retries: 2, retryDelayMs: 0 }, async (i: number) => {
  await sleep(TASK_MS);
  return i;
});
const batch = flow({ name: 'election-batch' }, async (n: number) => {
  const results = await Promise.all(Array.from({ length: n }, (_, i) => pause(i)));
  return results.reduce((sum, i) => sum + i, 0);
});

/** The node that leads `stream`, once it has a leader and every other replica is current. */
async function streamLeader(jsm: JetStreamManager, stream: string, replicas = 3): Promise<string> {
  return poll(`a leader and current replicas of ${stream}`, 20_000, async () => {
    const info = await jsm.streams.info(stream);
    const current = info.cluster?.replicas?.filter((r) => r.current) ?? [];
    return info.cluster?.leader !== undefined && current.length === replicas - 1 ? info.cluster.leader : undefined;
  });
}

/** Steps the leader of `stream` down until `node` leads it (each step down elects another replica at random). */
async function moveStreamLeader(connection: NatsConnection, jsm: JetStreamManager, stream: string, node: string): Promise<void> {
  for (let tries = 0; tries < 20; tries += 1) {
    if ((await streamLeader(jsm, stream)) === node) return;
    await connection.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, '', { timeout: 5_000 }).catch(() => undefined);
    await sleep(200);
  }
  throw new Error(`${node} never came to lead ${stream}`);
}

/** The node that holds the consumer of the history not in `known` (then added to it): a new watcher's ordered consumer, one replica. */
async function newConsumerNode(jsm: JetStreamManager, stream: string, known: Set<string>): Promise<string> {
  return poll('the watcher\'s consumer', 10_000, async () => {
    for await (const info of jsm.consumers.list(stream)) {
      if (known.has(info.name) || !info.cluster?.leader) continue;
      known.add(info.name);
      return info.cluster.leader;
    }
    return undefined;
  });
}

describe('the event history on a three-node cluster', () => {
  it('keeps every event, and the watcher yields each once and in order, when the node leading the history is killed mid-flow', async () => {
    const nodes = await startCluster();
    const subjects = createSubjects('tenaz');
    const byName = (name: string) => nodes.find((n) => n.name === name)!;
    // The history made up front, to place things before the flow starts.
    const bootstrap = await connectTo(nodes[0]!);
    // Right after the nodes start there is no JetStream meta leader yet, then peers catch up.
    const jsm = await poll('an R3 history stream', 20_000, async () => {
      const manager = await jetstreamManager(bootstrap, { timeout: 2_000 });
      await ensureEventsStream(manager, subjects, {}, 3);
      return manager;
    });
    await streamLeader(jsm, subjects.eventsStream);

    // The watcher, on a node that is not to be killed: its ordered consumer is on the node
    // to be killed (the consumer of a watcher is a single replica on one node of the stream).
    let doomed: ClusterNode | undefined;
    let watch: EventStream | undefined;
    const watched: RunEvent[] = [];
    let watching: Promise<void> | undefined;
    const consumers = new Set<string>();
    for (let tries = 0; doomed === undefined; tries += 1) {
      if (tries === 10) throw new Error('the watcher\'s consumer is always placed on the node the watcher is connected to');
      const watcherNode = nodes[tries % 3]!;
      const observer = createOrchestrator({ nats: await connectTo(watcherNode), logger, execution: 'local', durable: false, replicas: 3 });
      cleanups.push(() => observer.close());
      const stream = observer.watch({ flowName: 'election-batch' });
      cleanups.push(() => stream.close());
      const iterating = (async () => {
        for await (const event of stream) watched.push(event);
      })();
      const consumerNode = await newConsumerNode(jsm, subjects.eventsStream, consumers);
      if (consumerNode !== watcherNode.name) {
        doomed = byName(consumerNode);
        watch = stream;
        watching = iterating;
      } else {
        stream.close();
        await iterating;
      }
    }
    await moveStreamLeader(bootstrap, jsm, subjects.eventsStream, doomed.name);
    const survivors = nodes.filter((n) => n !== doomed);
    await bootstrap.close();

    const owner = createOrchestrator({ nats: await connectTo(survivors[0]!), logger, replicas: 3, durable: false });
    cleanups.push(() => owner.close());
    const workers = createOrchestrator({ nats: await connectTo(survivors[1]!), logger, execution: 'local', durable: false, replicas: 3 });
    cleanups.push(() => workers.close());
    workers.worker({ tasks: [pause], concurrency: 2 });

    const run = owner.start(batch, TASKS);
    await poll('a quarter of the task runs done', 20_000, async () => (watched.filter((e) => e.state.name === 'Completed').length >= TASKS / 4 ? true : undefined));
    // kill -9 the history's leader: a new one is elected among the two others.
    doomed.server.signal('SIGKILL');

    expect(await run.result()).toBe((TASKS * (TASKS - 1)) / 2);
    // A run started once the flow is done, the election maybe not: the watcher sees it too.
    const after = owner.start(batch, 3);
    expect(await after.result()).toBe(3);

    // The watcher resumes, and yields every transition once and in order. Runs do not wait
    // for each other to be stored: the flow run may end in the history before its task runs.
    const ofRun = (events: RunEvent[], flowRunId: string) => events.filter((e) => e.flowRunId === flowRunId);
    const allThere = (events: RunEvent[]) =>
      brokenRuns(events).length === 0 && byRun(ofRun(events, run.id)).size === TASKS + 1 && byRun(ofRun(events, after.id)).size === 3 + 1;
    await poll('the watcher to see every run complete', 20_000, async () => (allThere(watched) ? true : undefined)).catch(() => undefined);
    expect(brokenRuns(watched)).toEqual([]);
    expect(byRun(ofRun(watched, run.id)).size).toBe(TASKS + 1);
    expect(byRun(ofRun(watched, after.id)).size).toBe(3 + 1);

    // The history holds every transition too.
    const replayed: RunEvent[] = [];
    const replay = owner.watch({ since: { seq: 1 } });
    cleanups.push(() => replay.close());
    const replaying = (async () => {
      for await (const event of replay) replayed.push(event);
    })();
    await poll('the history replayed', 20_000, async () => (allThere(replayed) ? true : undefined)).catch(() => undefined);
    // Nothing more comes: no event is stored twice.
    await sleep(500);
    replay.close();
    await replaying;
    expect(brokenRuns(replayed)).toEqual([]);
    expect(byRun(ofRun(replayed, run.id)).size).toBe(TASKS + 1);
    expect(byRun(ofRun(replayed, after.id)).size).toBe(3 + 1);

    watch!.close();
    await watching;
  }, 60_000);
});
