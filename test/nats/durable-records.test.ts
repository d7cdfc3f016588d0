/**
 * Run records in a real JetStream KV: a transition applied twice changes the
 * record once; two processes racing to take one run: exactly one does; a zombie
 * owner is fenced; garbled records are reported and skipped, never trusted.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flow, getRunContext, task } from '../../src/index.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { RunRecorder, type RecordedFlowRun } from '../../src/durable/run-recorder.js';
import { RUNS_BUCKET, type FlowRunRecord } from '../../src/durable/records.js';
import type { FlowStateEvent } from '../../src/events.js';
import { createKvStore } from '../../src/store/kv.js';
import { FlowServer } from '../../src/durable/flow-server.js';
import type { OwnerDirectory } from '../../src/durable/owners.js';
import { createSubjects } from '../../src/subjects.js';
import { definitionOf, type FlowDefinition } from '../../src/runtime/definitions.js';
import { encodeValue } from '../../src/codec.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { waitFor } from '../support/nats-fixture.js';

let server: NatsServer;
let connection: NatsConnection;
let namespaces = 0;

beforeAll(async () => {
  server = await startNatsServer();
  connection = await connect({ servers: server.url });
});
afterAll(async () => {
  await connection?.close();
  await server?.dispose();
});

function flowRun(id: string): RecordedFlowRun & { fences: string[] } {
  const fences: string[] = [];
  return { id, name: 'light-potoo', flowName: 'etl', parentId: undefined, rootId: id, position: undefined, parameters: [{ day: 1 }], tags: [], calls: 0, resumed: false, state: undefined, fences, fence: (reason) => void fences.push(reason) };
}

function flowEvent(id: string, seq: number, name: 'Pending' | 'Running' | 'Completed'): FlowStateEvent {
  const type = name === 'Pending' ? 'PENDING' : name === 'Running' ? 'RUNNING' : 'COMPLETED';
  return { v: 1, type: 'flow.state', seq, flowName: 'etl', flowRunId: id, flowRunName: 'light-potoo', parentFlowRunId: undefined, state: { type, name, timestamp: seq, attempt: 1 }, tags: [] };
}

function recorder(namespace: string, ownerId = randomUUID()): RunRecorder {
  const { logger } = createMemoryLogger();
  return new RunRecorder({ store: createKvStore({ connection, namespace, logger }), ownerId, logger, now: Date.now, writeWindowMs: 5 });
}

/**
 * An owner with a connection of its own (closing it is the owner "dying") and a standby
 * orchestrator, in a fresh namespace, with short leases.
 */
async function ownerAndStandby(logger = createMemoryLogger().logger) {
  const namespace = `records${++namespaces}`;
  const ownerConnection = await connect({ servers: server.url });
  const durable = { leaseMs: 500 };
  const owner = createOrchestrator({ nats: ownerConnection, namespace, execution: 'local', durable, logger });
  const standby = createOrchestrator({ nats: connection, namespace, execution: 'local', durable, logger });
  return {
    owner,
    standby,
    /** The owner dies: its connection goes, its lease lapses. */
    kill: () => ownerConnection.close(),
    close: async () => {
      await standby.close();
      await owner.close().catch(() => {});
    },
  };
}

describe('run records in JetStream KV', { timeout: 20_000 }, () => {
  it('applies a transition delivered twice once', async () => {
    const namespace = `records${++namespaces}`;
    const writer = recorder(namespace);
    const run = flowRun(randomUUID());
    writer.flowState(run, flowEvent(run.id, 1, 'Pending'), undefined, undefined);
    writer.flowState(run, flowEvent(run.id, 2, 'Running'), undefined, undefined);
    writer.flowState(run, flowEvent(run.id, 2, 'Running'), undefined, undefined);
    writer.flowState(run, flowEvent(run.id, 1, 'Pending'), undefined, undefined);
    writer.flowState(run, flowEvent(run.id, 3, 'Completed'), { rows: 3 }, undefined);
    writer.flowState(run, flowEvent(run.id, 3, 'Completed'), { rows: 3 }, undefined);
    await writer.flowSettled(run);

    const entry = await writer.store.get<FlowRunRecord>(RUNS_BUCKET, run.id);
    expect(entry?.value.history.map((state) => state.name)).toEqual(['Pending', 'Running', 'Completed']);
    expect(entry?.value).toMatchObject({ lastSeq: 3, hasResult: true, result: { rows: 3 }, owner: writer.ownerId });
    // A process that takes the record over goes on from its last transition: an old one is still a repeat.
    const other = recorder(namespace);
    const taken = await other.take(entry!.value, entry!.revision, (record) => record);
    const resumed = flowRun(run.id);
    other.adopt(resumed, taken!.record, taken!.revision);
    other.flowState(resumed, flowEvent(run.id, 3, 'Completed'), { rows: 3 }, undefined);
    await other.flowSettled(resumed);
    expect((await other.store.get(RUNS_BUCKET, run.id))?.revision).toBe(taken!.revision);
  });

  it('lets exactly one of several processes racing to take a run take it', async () => {
    const namespace = `records${++namespaces}`;
    const first = recorder(namespace);
    const run = flowRun(randomUUID());
    first.flowState(run, flowEvent(run.id, 1, 'Running'), undefined, undefined);
    await first.flushed();
    const entry = (await first.store.get<FlowRunRecord>(RUNS_BUCKET, run.id))!;
    const racers = Array.from({ length: 8 }, () => recorder(namespace));
    const results = await Promise.all(racers.map((racer) => racer.take(entry.value, entry.revision, (record) => ({ ...record, resumes: record.resumes + 1 }))));
    const winners = results.filter((result) => result !== null);
    expect(winners).toHaveLength(1);
    const stored = (await first.store.get<FlowRunRecord>(RUNS_BUCKET, run.id))!.value;
    expect(stored.owner).toBe(racers[results.findIndex((result) => result !== null)]!.ownerId);
    expect(stored.resumes).toBe(1);
    // The first owner, a zombie now, is fenced at its next write, and its transition is not applied.
    first.flowState(run, flowEvent(run.id, 2, 'Completed'), 'late', undefined);
    await first.flowSettled(run);
    expect(run.fences).toHaveLength(1);
    expect((await first.store.get<FlowRunRecord>(RUNS_BUCKET, run.id))!.value.state.name).toBe('Running');
  });

  it('reports and skips garbled records; a resumed run re-runs a call whose record is garbled', async (context) => {
    const { logger, records } = createMemoryLogger();
    const { owner, standby: server2, kill, close } = await ownerAndStandby(logger);
    const namespace = owner.namespace;
    context.onTestFailed(() => console.info(records.map((r) => `${r.msg} ${JSON.stringify(r).slice(0, 300)}`).join('\n')));
    try {
      const calls: number[] = [];
      const slow = task({ name: 'garble-step' }, async (i: number) => {
        calls.push(i);
        // The first run of the second step hangs until its process "dies"; the resumed one does not.
        if (i === 1 && calls.filter((c) => c === 1).length === 1) await sleep(60_000, undefined, { signal: getRunContext().signal }).catch(() => {});
        return i;
      });
      const twoSteps = flow({ name: 'garble-flow' }, async () => (await slow(0)) + (await slow(1)));
      await server2.serveFlows({ flows: [twoSteps] });
      const run = owner.start(twoSteps);
      await waitFor(() => calls.length === 2, 10_000, 'both steps started');

      const kvm = new Kvm(connection);
      const runsKv = await kvm.open(`${namespace}_runs`);
      const journalKv = await kvm.open(`${namespace}_journal`);
      await runsKv.put('garbage-bytes', new Uint8Array([0xc1, 0xff, 0x00]));
      await runsKv.put('wrong-shape', encodeValue({ v: 1, value: { kind: 'flow', id: 42 } }));
      // The journal entry of the first call, which completed, is garbled: it cannot be trusted, so it runs again.
      await journalKv.put(`${run.id}/0`, encodeValue({ v: 1, value: { kind: 'task', taskName: 7 } }));

      const listed = await server2.runs.list();
      expect(listed.map((record) => record.id)).toEqual([run.id]);
      expect(records.some((record) => /does not parse|garbled/.test(String(record.msg)))).toBe(true);

      // The owner "dies": its connection goes, its lease lapses, the serving orchestrator resumes the run.
      await kill();
      const record = await server2.runs.wait(run.id);
      expect(record.state.name).toBe('Completed');
      expect(record.result).toBe(1);
      expect(calls).toEqual([0, 1, 0, 1]);
    } finally {
      await close();
    }
  });
});

describe('the flow queue', { timeout: 20_000 }, () => {
  it('takes a queued resume even while this process still sees the dead owner\'s lease as live', async () => {
    const namespace = `records${++namespaces}`;
    const { logger } = createMemoryLogger();
    const deadOwner = recorder(namespace);
    const run = flowRun(randomUUID());
    deadOwner.flowState(run, flowEvent(run.id, 1, 'Running'), undefined, undefined);
    await deadOwner.flushed();
    const taker = recorder(namespace);
    const resumed: FlowRunRecord[] = [];
    // The taker's view of leases lags: it still thinks the dead owner is alive.
    const directory = { ownerId: taker.ownerId, leaseMs: 3_000, isLive: () => true, servers: () => [taker.ownerId], owners: new Map(), renew: async () => {}, forget: () => {} };
    const subjects = createSubjects(namespace);
    const server = new FlowServer({
      connection,
      subjects,
      replicas: 1,
      store: taker.store,
      recorder: taker,
      directory: directory as unknown as OwnerDirectory,
      logger,
      now: Date.now,
      isRunning: () => false,
      resume: (_definition, record) => void resumed.push(record),
      publishEvent: () => {},
    });
    try {
      const etl = flow({ name: 'etl' }, async () => 1);
      await server.serve([definitionOf(etl) as FlowDefinition]);
      // Without naming the dead owner, a take of a run held by a live-looking owner is left alone.
      await server.enqueue({ flowRunId: run.id, flowName: 'etl', reason: 'resume' }, `plain:${run.id}`);
      await sleep(300);
      expect(resumed).toEqual([]);
      await server.enqueue({ flowRunId: run.id, flowName: 'etl', reason: 'resume', deadOwner: deadOwner.ownerId }, `named:${run.id}`);
      await waitFor(() => resumed.length === 1, 5_000, 'the run taken');
      expect(resumed[0]).toMatchObject({ id: run.id, owner: taker.ownerId, resumes: 1 });
    } finally {
      await server.close();
    }
  });
});

describe('an owner that closes with a run in flight', { timeout: 20_000 }, () => {
  it('hands the run to a live peer serving its flow, saying so at info level, with no Crashed end nor failure hook of its own', async () => {
    const ownerLog = createMemoryLogger();
    let failureHooks = 0;
    const slowStep = task({ name: 'handed-step' }, async (ms: number) => {
      await sleep(ms, undefined, { signal: getRunContext().signal });
      return ms;
    });
    const handed = flow({ name: 'handed', onFailure: () => void (failureHooks += 1) }, async () => (await slowStep(300)) + (await slowStep(10)));
    const { owner, standby, close } = await ownerAndStandby(ownerLog.logger);
    try {
      await Promise.all([owner.serveFlows({ flows: [handed] }), standby.serveFlows({ flows: [handed] })]);
      const run = owner.start(handed);
      await sleep(100);
      await owner.close();
      await expect(run.result()).rejects.toMatchObject({ code: 'CRASHED' });
      const record = await standby.runs.wait(run.id);
      expect(record).toMatchObject({ state: { name: 'Completed' }, result: 310 });
      expect(ownerLog.records.find((r) => r.msg === `Flow run '${run.name}' is handed over: this process closed; a process that serves the flow resumes it`)).toMatchObject({ level: 30 });
      expect(ownerLog.records.filter((r) => r.level >= 50)).toEqual([]);
      expect(failureHooks).toBe(0);
    } finally {
      await close();
    }
  });
});

describe('a resumed flow run with a subflow', { timeout: 20_000 }, () => {
  it('runs the same subflow run again, reading back the task runs it had completed', async () => {
    const { owner, standby: server2, kill, close } = await ownerAndStandby();
    try {
      const calls: string[] = [];
      const work = task({ name: 'sub-step' }, async (what: string) => {
        calls.push(what);
        if (what === 'inner-1' && calls.filter((c) => c === what).length === 1) await sleep(60_000, undefined, { signal: getRunContext().signal }).catch(() => {});
        return what;
      });
      const inner = flow({ name: 'inner-flow' }, async () => [await work('inner-0'), await work('inner-1')]);
      const outer = flow({ name: 'outer-flow' }, async () => [await work('outer-0'), ...(await inner())]);
      await server2.serveFlows({ flows: [outer, inner] });
      const run = owner.start(outer);
      await waitFor(() => calls.includes('inner-1'), 10_000, 'the subflow\'s second step started');
      const subflowId = (await server2.runs.list()).find((record) => record.flowName === 'inner-flow')?.id;

      await kill();
      const record = await server2.runs.wait(run.id);
      expect(record.state.name).toBe('Completed');
      expect(record.result).toEqual(['outer-0', 'inner-0', 'inner-1']);
      // Only the step in flight ran twice; the subflow kept its id.
      expect(calls).toEqual(['outer-0', 'inner-0', 'inner-1', 'inner-1']);
      const subflows = (await server2.runs.list()).filter((r) => r.flowName === 'inner-flow');
      expect(subflows.map((r) => [r.id, r.state.name])).toEqual([[subflowId, 'Completed']]);
    } finally {
      await close();
    }
  });
});

describe('a resumed flow run whose calls changed order around a subflow', { timeout: 20_000 }, () => {
  it('fails with NonDeterminismError when a task is called where a subflow was', async () => {
    const { owner, standby, kill, close } = await ownerAndStandby();
    try {
      const hang = task({ name: 'hang-step' }, async () => sleep(60_000, undefined, { signal: getRunContext().signal }).catch(() => 0));
      const quick = task({ name: 'quick-step' }, async (what: string) => what);
      const inner = flow({ name: 'inner-hanging' }, async () => hang());
      // Resumed in the standby, the flow calls a task where it called the subflow.
      const fickle = flow({ name: 'subflow-fickle' }, async () => [await quick('a'), getRunContext().orchestrator === standby ? await quick('b') : await inner()]);
      await standby.serveFlows({ flows: [fickle] });
      const run = owner.start(fickle);
      await waitFor(() => owner.activeRuns >= 3, 10_000, 'the subflow running');
      await sleep(300);
      await kill();
      const record = await standby.runs.wait(run.id);
      expect(record.state.name).toBe('Failed');
      expect(record.error).toMatchObject({ name: 'NonDeterminismError' });
      expect(record.error?.message).toMatch(/call #2 is task 'quick-step', but it was subflow 'inner-hanging' before/);
    } finally {
      await close();
    }
  });
});
