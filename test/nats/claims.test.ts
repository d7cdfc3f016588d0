/**
 * Claims, as a worker makes them, by hand: the owner accepts the attempt it waits for from
 * one worker, and the same claim again from that worker (whose first answer a reconnect may
 * have lost), never another worker's. Regression: the repeated claim was refused, the worker
 * gave the attempt up, and the owner restarted it as crashed once no heartbeat came.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { task, flow } from '../../src/api.js';
import { encode, parseMessage } from '../../src/codec.js';
import { WIRE_VERSION, type TaskClaim, type TaskDispatch, type TaskOutcome } from '../../src/remote/messages.js';
import { createSubjects } from '../../src/subjects.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { useNatsFixture } from '../support/nats-fixture.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import type { BusMessage } from '../../src/bus/bus.js';

const fixture = useNatsFixture();

/** In a pool no worker serves: its dispatch waits in the stream for the test to claim by hand. */
const unserved = task({ name: 'hand-claimed', pool: 'by-hand' }, async () => 'run by a worker');
const byHand = flow({ name: 'by-hand' }, async () => unserved());

/** Asks the owner as a worker would, and reads its answer. */
async function request(subject: string, message: Omit<TaskClaim, 'v'> | Omit<TaskOutcome, 'v'>): Promise<BusMessage | null> {
  const reply = await fixture.connection.request(subject, encode({ v: WIRE_VERSION, ...message } as BusMessage), { timeout: 2_000 });
  return parseMessage(reply.data);
}

describe('claims', () => {
  it("accepts the same claim again from the worker that holds the attempt, refuses another worker's, and takes the holder's outcome", async () => {
    const { owner, events } = fixture;
    const run = owner.start(byHand);
    const subjects = createSubjects();
    const jsm = await jetstreamManager(fixture.connection);
    const stored = async () => jsm.streams.getMessage(subjects.tasksStream, { last_by_subj: subjects.taskDispatch('by-hand', 'hand-claimed') }).catch(() => null);
    let message = await stored();
    for (const deadline = Date.now() + 5_000; message === null && Date.now() < deadline; message = await stored()) await sleep(50);
    const dispatch = parseMessage(message!.data) as unknown as TaskDispatch;

    const claim = (workerId: string) => request(dispatch.owner, { type: 'task.claim', taskRunId: dispatch.taskRunId, attempt: dispatch.attempt, workerId, worker: `w.${workerId}` });
    expect(await claim('worker-a')).toMatchObject({ accepted: true });
    expect(await claim('worker-a')).toMatchObject({ accepted: true });
    expect(await claim('worker-b')).toMatchObject({ accepted: false });

    const outcome = { type: 'task.outcome' as const, taskRunId: dispatch.taskRunId, attempt: dispatch.attempt, workerId: 'worker-a', ok: true as const, value: 'done by a' };
    expect(await request(dispatch.owner, outcome)).toMatchObject({ accepted: true });
    await expect(run.result()).resolves.toBe('done by a');
    expect(events.taskEvents().map((e) => e.state.name)).toEqual(['Pending', 'Running', 'Completed']);
  });
});

describe('outcomes', () => {
  // Without the fix the worker tries for a minute, longer than this test may take.
  it("stops handing an outcome to an owner that is gone within seconds, freeing the worker's slot (it held it a minute)", { timeout: 45_000 }, async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const bodyStarted = new Promise<void>((resolve) => (started = resolve));
    const gated = task({ name: 'gated-outcome', pool: 'gone-owner' }, async () => {
      started();
      await released;
      return 'late';
    });
    const gatedFlow = flow({ name: 'gated-outcome' }, async () => gated());
    // The worker in this process, on the fixture's connection; the owner on a connection of its own, closed under it.
    const workerLog = createMemoryLogger('warn');
    const local = createOrchestrator({ nats: fixture.connection, execution: 'local', durable: false, logger: workerLog.logger });
    const ownerConnection = await connect({ servers: fixture.server.url });
    const owner = createOrchestrator({ nats: ownerConnection, durable: false, logger: pino({ level: 'silent' }) });
    try {
      const worker = local.worker({ tasks: [gated], pool: 'gone-owner', concurrency: 1 });
      await worker.ready();
      const running = (async () => {
        for await (const event of owner.watch({ kind: 'task' })) if (event.state.name === 'Running') return;
      })();
      void owner.start(gatedFlow).result().catch(() => undefined);
      // The claim accepted: the owner counts the attempt as running on this worker.
      await Promise.all([bodyStarted, running]);
      // Gone without a word, as a process that died: no cancel reaches the worker.
      await ownerConnection.close();
      release();
      while (worker.stats.running > 0) await sleep(100);
      expect(workerLog.records.map((r) => r.msg)).toContain(
        'could not hand the outcome to the owner; the task run runs again: restarted by its owner, or, if the owner died, by the process that resumes its flow run',
      );
    } finally {
      await owner.close();
      await local.close();
    }
  });
});

