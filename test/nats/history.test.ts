/**
 * The event history: `watch({ since })` replays what happened, then follows
 * live events, with no gap and no duplicate, across a server restart too.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { HistoricRunEvent } from '../../src/history.js';
import { ensureEventsStream } from '../../src/history.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { createSubjects } from '../../src/subjects.js';
import type { RunEvent } from '../../src/events.js';
import { useNatsFixture, waitFor } from '../support/nats-fixture.js';
import { spread } from '../fixtures/nats/tasks.js';

const fixture = useNatsFixture();

/** Collects a watch stream's events in the background. */
function collect(stream: AsyncIterable<RunEvent>): RunEvent[] {
  const seen: RunEvent[] = [];
  void (async () => {
    for await (const event of stream) seen.push(event);
  })();
  return seen;
}

/** Makes sure the history exists and says where this test's events will start in it (the file shares one server). */
async function historyStart(): Promise<number> {
  const jsm = await jetstreamManager(fixture.connection);
  await ensureEventsStream(jsm, createSubjects());
  return (await jsm.streams.info(createSubjects().eventsStream)).state.last_seq + 1;
}

async function reconnected(): Promise<void> {
  for (;;) {
    try {
      await fixture.connection.flush();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

const key = (e: RunEvent) => `${e.type === 'flow.state' ? e.flowRunId : e.taskRunId}#${e.seq}`;

describe('event history', () => {
  it('replays a finished flow run from the start, then goes on with live runs, each event once and in order', async () => {
    const { processes, server, owner, events } = fixture;
    const start = await historyStart();
    await processes.startWorker(server.url, 2);
    await owner.start(spread, 5, 0).result();
    await events.untilFlowEnds();
    const firstRun = events.events.length;

    const replay = owner.watch({ since: { seq: start } });
    const seen = collect(replay);
    await waitFor(() => seen.length >= firstRun, 5_000, 'the replay');
    const second = owner.start(spread, 3, 0);
    await second.result();
    await waitFor(() => seen.length === events.events.length, 5_000, 'the live events');
    replay.close();

    expect(seen.map(key)).toEqual(events.events.map(key));
    const seqs = seen.map((e) => (e as HistoricRunEvent).streamSeq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it('loses and repeats nothing over a history that spans a server restart', async () => {
    const { processes, server, owner, events } = fixture;
    const start = await historyStart();
    await processes.startWorker(server.url, 2);
    await owner.start(spread, 4, 0).result();
    await events.untilFlowEnds();
    const before = events.events.length;

    await server.stop();
    await server.start();
    await reconnected();
    await owner.start(spread, 4, 0).result();
    await waitFor(() => events.events.filter((e) => e.type === 'flow.state' && e.state.name === 'Completed').length === 2, 10_000, 'the second flow');
    expect(events.events.length).toBeGreaterThan(before);

    const replay = owner.watch({ since: { seq: start } });
    const seen = collect(replay);
    await waitFor(() => seen.length >= events.events.length, 10_000, 'the replay');
    await new Promise((resolve) => setTimeout(resolve, 200));
    replay.close();
    expect(seen.map(key)).toEqual(events.events.map(key));
  });

  it('starts from a time, keeps runs apart by filter, and skips garbage in the history', async () => {
    const { processes, server, owner, connection } = fixture;
    await historyStart();
    await processes.startWorker(server.url, 2);
    await owner.start(spread, 2, 0).result();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const from = new Date();
    connection.publish('tenaz.evt.spread.x.flow', new Uint8Array([1, 2, 3]));
    const run = owner.start(spread, 2, 0);
    await run.result();

    const replay = owner.watch({ since: from, flowRunId: run.id });
    const seen = collect(replay);
    await waitFor(() => seen.some((e) => e.type === 'flow.state' && e.state.name === 'Completed'), 5_000, 'the run');
    replay.close();
    expect(new Set(seen.map((e) => e.flowRunId))).toEqual(new Set([run.id]));
    expect(seen.filter((e) => e.type === 'task.state')).toHaveLength(6);
  });

  it('watch() of the id start() just returned sees the run from its first event', async () => {
    const { processes, server, owner, events } = fixture;
    await historyStart();
    await processes.startWorker(server.url, 2);
    const run = owner.start(spread, 3, 0);
    const seen = collect(owner.watch({ flowRunId: run.id }));
    await run.result();
    await events.untilFlowEnds(run.id);
    await waitFor(() => seen.some((e) => e.type === 'flow.state' && e.state.name === 'Completed'), 5_000, 'the run');
    const all = events.events.filter((e) => e.flowRunId === run.id);
    expect(seen.map(key)).toEqual(all.map(key));
    expect(seen[0]).toMatchObject({ type: 'flow.state', seq: 1 });
  });

  it('a watch begun with the orchestrator, before its history exists, sees the first run from its first event', async () => {
    const { connection } = fixture;
    // A namespace of its own: no history yet, which the orchestrator makes in the background.
    const fresh = createOrchestrator({ nats: connection, namespace: 'freshhistory', execution: 'local', logger: pino({ level: 'silent' }) });
    try {
      const seen = collect(fresh.watch());
      const run = fresh.start(spread, 2, 0);
      await run.result();
      await waitFor(() => seen.some((e) => e.type === 'flow.state' && e.state.name === 'Completed'), 5_000, 'the run');
      expect(seen.filter((e) => e.type === 'flow.state').map((e) => e.state.name)).toEqual(['Pending', 'Running', 'Completed']);
      expect(seen.filter((e) => e.type === 'task.state')).toHaveLength(6);
    } finally {
      await fresh.close();
    }
  });

  it('says clearly that an embedded orchestrator keeps no history', () => {
    const embedded = createOrchestrator();
    expect(() => embedded.watch({ since: { seq: 0 } })).toThrow(/NATS/);
    expect(() => fixture.owner.watch({ since: { seq: -1 } })).toThrow(/since must be/);
    void embedded.close();
  });
});
