import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { PayloadTooLargeError } from '../../src/errors.js';
import { createSubjects } from '../../src/subjects.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { waitFor } from '../support/nats-fixture.js';
import { DispatchPublisher } from '../../src/remote/dispatch-publisher.js';
import { FakeRun } from '../support/fake-remote-run.js';
import { ensureTasksStream } from '../../src/remote/streams.js';

const subjects = createSubjects('dptest');
const subject = subjects.taskDispatch('default', 'work');

describe('DispatchPublisher', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let publisher: DispatchPublisher | undefined;
  let ensured = 0;
  let memory: ReturnType<typeof createMemoryLogger>;

  const create = (ackTimeoutMs?: number) =>
    (publisher = new DispatchPublisher({
      connection: nc,
      logger: memory.logger,
      ackTimeoutMs,
      ensureStream: async () => {
        ensured++;
        await ensureTasksStream(jsm, subjects);
      },
    }));
  const stored = async () => (await jsm.streams.info(subjects.tasksStream)).state.messages;

  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server.dispose();
  });
  beforeEach(async () => {
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    ensured = 0;
    memory = createMemoryLogger();
  });
  afterEach(async () => {
    publisher?.close();
    await jsm.streams.delete(subjects.tasksStream).catch(() => undefined);
    await nc.close();
  });

  it('makes the stream, and stores a dispatch published twice with the same id once', async () => {
    const run = new FakeRun();
    const dispatcher = create();
    dispatcher.publish(run, 1, subject, new Uint8Array([1]), 'run-1:1');
    dispatcher.publish(run, 1, subject, new Uint8Array([1]), 'run-1:1');
    await waitFor(() => ensured === 1);
    await expect.poll(stored).toBe(1);
    expect(run.failures).toEqual([]);
    expect(memory.records.filter((r) => r.level >= 40)).toEqual([]);
  });

  it('makes the stream again when it was deleted, and then stores the dispatch', async () => {
    const run = new FakeRun();
    const dispatcher = create();
    dispatcher.publish(run, 1, subject, new Uint8Array([1]), 'run-1:1');
    await expect.poll(stored).toBe(1);
    await jsm.streams.delete(subjects.tasksStream);

    dispatcher.publish(new FakeRun('run-2'), 1, subject, new Uint8Array([2]), 'run-2:1');
    await expect.poll(stored).toBe(1);
    expect(ensured).toBe(2);
    await waitFor(() => memory.records.some((r) => r.msg === 'dispatched the task run after all'));
    expect(memory.records.filter((r) => r.level >= 40)).toEqual([
      expect.objectContaining({ msg: 'could not dispatch the task run yet; trying again', taskRunId: 'run-2', attempt: 1, err: expect.objectContaining({ code: 'NO_RESPONDERS' }) }),
    ]);
  });

  it('fails the attempt with PayloadTooLargeError, without sending, when the dispatch exceeds max_payload', async () => {
    const run = new FakeRun();
    const dispatcher = create();
    dispatcher.publish(run, 1, subject, new Uint8Array(nc.info!.max_payload + 1), 'run-1:1');
    await waitFor(() => run.failures.length > 0);
    expect(run.failures[0]).toBeInstanceOf(PayloadTooLargeError);
    expect(await stored()).toBe(0);
  });

  it('sends a dispatch again when its ack does not come in time, and stops once the run no longer wants it', async () => {
    // A subscriber that never answers stands in for a stream whose ack is lost.
    const silent = nc.subscribe('dptest.silent.>');
    let received = 0;
    void (async () => {
      for await (const _ of silent) received++;
    })();
    const run = new FakeRun();
    const dispatcher = create(200);
    dispatcher.publish(run, 1, 'dptest.silent.work', new Uint8Array([1]), 'run-1:1');
    await waitFor(() => received >= 3, 5_000, 'three sends');
    expect(memory.records.filter((r) => r.level >= 40)).toEqual([
      expect.objectContaining({ msg: 'could not dispatch the task run yet; trying again', err: expect.objectContaining({ code: 'TIMEOUT' }) }),
    ]);
    run.wanted = false;
    await new Promise((resolve) => setTimeout(resolve, 600));
    const final = received;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(received).toBe(final);
    silent.unsubscribe();
  });
});
