/**
 * Dispatches withdrawn from the tasks stream when their attempt is given up before any
 * worker claims it. Regression test for QA round 7b F4: the task runs of a flow run that
 * was cancelled while they waited for a worker of their pool still started their bodies
 * on the first worker of that pool to come (a first delivery starts its body while the
 * claim is on its way), long after the run had ended `Cancelled`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { flow, task } from '../../src/index.js';
import { createSubjects } from '../../src/subjects.js';
import { ensureTasksStream } from '../../src/remote/streams.js';
import { DispatchPublisher } from '../../src/remote/dispatch-publisher.js';
import { FakeRun } from '../support/fake-remote-run.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { useNatsFixture, waitFor } from '../support/nats-fixture.js';
import { untilReady } from '../support/processes.js';

const fixture = useNatsFixture({ claimWarningMs: 300 });

const storedIn = async (jsm: JetStreamManager, stream: string): Promise<number> => (await jsm.streams.info(stream).catch(() => null))?.state.messages ?? 0;

/** A task of a pool that no worker of the shared fixture serves. Its body, on a worker, appends a line to a file. */
const POOL = 'withdrawn';
const appendLine = task({ name: 'append-line', pool: POOL }, async (i: number): Promise<number> => i);
const appendFanOut = flow({ name: 'append-fan-out' }, async (n: number) => Promise.all(Array.from({ length: n }, (_, i) => appendLine(i))));

/**
 * A worker process that serves `append-line` alone (so that its dispatches come to it first,
 * not while the worker is still making the consumers of other tasks): its body appends
 * `start <i> <key>` to $APPEND_LOG before it returns.
 */
const WORKER_SCRIPT = `
import { appendFileSync } from 'node:fs';
import { pino } from 'pino';
import { connectOrchestrator, task, getRunContext } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)};
const line = task({ name: 'append-line', pool: '${POOL}' }, async (i) => {
  appendFileSync(process.env.APPEND_LOG, 'start ' + i + ' ' + getRunContext().idempotencyKey + '\\n');
  await new Promise((resolve) => setTimeout(resolve, 50));
  return i;
});
const logger = pino({ level: 'debug' }, pino.destination(2));
const orchestrator = await connectOrchestrator({ nats: process.env.NATS_URL, logger, execution: 'local' });
await orchestrator.worker({ tasks: [line] }).ready();
process.stdout.write('READY ' + process.pid + '\\n');
`;

describe('withdrawn dispatches', () => {
  let dir: string;
  let log: string;
  let child: ChildProcess | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tenaz-withdrawn-'));
    log = join(dir, 'bodies.log');
  });
  afterEach(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    child = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function startAppendWorker(): Promise<() => string> {
    const worker = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', WORKER_SCRIPT], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NATS_URL: fixture.server.url, APPEND_LOG: log },
    });
    child = worker;
    let logs = '';
    worker.stderr!.setEncoding('utf8').on('data', (chunk: string) => (logs += chunk));
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await untilReady(worker, exited, 15_000, () => `append worker:\n${logs}`);
    return () => logs;
  }
  const bodies = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((line) => line !== '') : []);

  it('starts no body of a flow run cancelled while its task runs waited for a worker, once a worker comes', async () => {
    const { owner, events, connection } = fixture;
    const jsm = await jetstreamManager(connection);
    // No worker of the pool: the three task runs wait Pending, their dispatches in the stream.
    const run = owner.start(appendFanOut, 3);
    await waitFor(() => events.taskEvents().filter((e) => e.state.name === 'Pending').length === 3, 5_000, 'three Pending task runs');
    await expect.poll(() => storedIn(jsm, 'tenaz_tasks')).toBe(3);

    run.cancel('not wanted');
    await expect(run.result()).rejects.toMatchObject({ code: 'CANCELLED' });
    expect((await events.untilFlowEnds()).state.name).toBe('Cancelled');
    await expect.poll(() => storedIn(jsm, 'tenaz_tasks'), { timeout: 3_000 }).toBe(0);

    const workerLogs = await startAppendWorker();
    // Time enough for the worker to be handed anything left in the stream.
    await sleep(1_500);
    expect(bodies()).toEqual([]);
    expect(workerLogs()).not.toMatch(/the owner refused the claim/);
    // The worker does take work: a later run goes through it, and only its bodies start.
    expect(await owner.start(appendFanOut, 2).result()).toEqual([0, 1]);
    expect(bodies().map((line) => line.split(' ')[1]).sort()).toEqual(['0', '1']);
    // Only the attempts given up unclaimed were withdrawn: none of the claimed ones was even tried.
    expect(fixture.records.filter((r) => r.msg === 'withdrew the dispatch of an attempt given up before a worker claimed it')).toHaveLength(3);
    expect(fixture.records.filter((r) => String(r.msg).startsWith('could not withdraw'))).toEqual([]);
  });
});

describe('DispatchPublisher.withdraw', () => {
  const subjects = createSubjects('wdtest');
  const subject = subjects.taskDispatch('default', 'work');

  async function setUp() {
    const jsm = await jetstreamManager(fixture.connection);
    await jsm.streams.delete(subjects.tasksStream).catch(() => undefined);
    const memory = createMemoryLogger();
    const publisher = new DispatchPublisher({ connection: fixture.connection, logger: memory.logger, ensureStream: () => ensureTasksStream(jsm, subjects) });
    const stored = () => storedIn(jsm, subjects.tasksStream);
    const said = (msg: string) => memory.records.filter((r) => r.msg === msg);
    return { jsm, publisher, stored, said, records: memory.records };
  }

  it('deletes a stored dispatch, and leaves the others', async () => {
    const { publisher, stored, said } = await setUp();
    const receipt = publisher.publish(new FakeRun('a'), 1, subject, new Uint8Array([1]), 'a:1');
    publisher.publish(new FakeRun('b'), 1, subject, new Uint8Array([2]), 'b:1');
    await expect.poll(stored).toBe(2);
    await waitFor(() => receipt.ack !== undefined, 5_000, 'the ack');

    publisher.withdraw(receipt);
    await expect.poll(stored).toBe(1);
    await waitFor(() => said('withdrew the dispatch of an attempt given up before a worker claimed it').length === 1);
    expect(said('withdrew the dispatch of an attempt given up before a worker claimed it')[0]).toMatchObject({ taskRunId: 'a', attempt: 1, seq: receipt.ack!.seq });
    publisher.close();
  });

  it('deletes a dispatch given up before its ack came, once the ack comes', async () => {
    const { publisher, stored, said } = await setUp();
    // The first publish makes the stream: the next one goes out at once.
    publisher.publish(new FakeRun('first'), 1, subject, new Uint8Array([1]), 'first:1');
    await expect.poll(stored).toBe(1);

    const run = new FakeRun('late-ack');
    const receipt = publisher.publish(run, 1, subject, new Uint8Array([2]), 'late-ack:1');
    run.wanted = false;
    publisher.withdraw(receipt);
    expect(receipt.ack).toBeUndefined();
    await waitFor(() => said('withdrew the dispatch of an attempt given up before a worker claimed it').length === 1, 5_000, 'the withdrawal');
    expect(await stored()).toBe(1);
    publisher.close();
  });

  it('deletes a dispatch published again with the same id by the seq the duplicate ack names', async () => {
    const { publisher, stored, said } = await setUp();
    const first = publisher.publish(new FakeRun('dup'), 1, subject, new Uint8Array([1]), 'dup:1');
    await waitFor(() => first.ack !== undefined, 5_000, 'the first ack');
    // As after a reconnect: the server deduplicates it and acks it with the first one's seq.
    const again = publisher.publish(new FakeRun('dup'), 1, subject, new Uint8Array([1]), 'dup:1');
    await waitFor(() => again.ack !== undefined, 5_000, 'the second ack');
    expect(again.ack).toMatchObject({ seq: first.ack!.seq, duplicate: true });
    expect(await stored()).toBe(1);

    publisher.withdraw(again);
    await expect.poll(stored).toBe(0);
    expect(said('withdrew the dispatch of an attempt given up before a worker claimed it')).toHaveLength(1);
    publisher.close();
  });

  it('sends the withdrawals still queued when it closes: a process closes right after its run was cancelled', async () => {
    const { publisher, stored } = await setUp();
    const receipts = Array.from({ length: 100 }, (_, i) => publisher.publish(new FakeRun(`many-${i}`), 1, subject, new Uint8Array([i]), `many-${i}:1`));
    await waitFor(() => receipts.every((receipt) => receipt.ack !== undefined), 5_000, 'the acks');
    // More than are asked for at once: most wait in the queue when close() comes.
    for (const receipt of receipts) publisher.withdraw(receipt);
    publisher.close();
    await expect.poll(stored).toBe(0);
  });

  it('says at debug level, and nothing louder, when the dispatch is gone already', async () => {
    const { jsm, publisher, stored, said, records } = await setUp();
    const receipt = publisher.publish(new FakeRun('taken'), 1, subject, new Uint8Array([1]), 'taken:1');
    await waitFor(() => receipt.ack !== undefined, 5_000, 'the ack');
    // A worker took it first: on a work queue, an acked message is gone.
    await jsm.streams.deleteMessage(subjects.tasksStream, receipt.ack!.seq);
    expect(await stored()).toBe(0);

    publisher.withdraw(receipt);
    publisher.withdraw(receipt);
    const failed = 'could not withdraw the dispatch of an attempt given up; a worker that takes it has its claim refused';
    await waitFor(() => said(failed).length > 0, 5_000, 'the debug line');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(said(failed)).toEqual([expect.objectContaining({ level: 20, taskRunId: 'taken', attempt: 1, seq: receipt.ack!.seq })]);
    expect(records.filter((r) => r.level >= 40)).toEqual([]);
    publisher.close();
  });
});
