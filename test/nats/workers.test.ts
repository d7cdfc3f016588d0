/**
 * Workers as a user sees them: cancellation reaches bodies in other processes,
 * a task run with no worker waits (with a warning) until one comes,
 * concurrency holds, and a worker that closes hands its runs back.
 */
import { describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { encode, parseMessage } from '../../src/codec.js';
import { RemoteError } from '../../src/errors.js';
import { jetstream } from '@nats-io/jetstream';
import { useNatsFixture, waitFor } from '../support/nats-fixture.js';
import { busyFanOut, cachedFlow, cancellable, deaf, deafTimedOut, failing, gpuFlow, onGpu, roundTrip, slowChain, spread, timingOut } from '../fixtures/nats/tasks.js';

// Default heartbeat timeout: nothing here is about crashes, and a loaded machine must not fake one.
const fixture = useNatsFixture({ claimWarningMs: 300 });

function taskStates(): string[][] {
  const { events } = fixture;
  const byRun = new Map<string, string[]>();
  for (const event of events.events) {
    if (event.type !== 'task.state') continue;
    const list = byRun.get(event.taskRunId) ?? [];
    list.push(event.state.name);
    byRun.set(event.taskRunId, list);
  }
  return [...byRun.values()];
}


describe('workers', () => {
  it('runs a flow of 50 tasks over 3 workers with the right result, spreading the work', async () => {
    const { processes, server, owner, events } = fixture;
    const workers = await Promise.all([1, 2, 3].map(() => processes.startWorker(server.url, 4)));
    // What the workers send the owner: claims and outcomes of one turn travel as one batch.
    const tap = await connect({ servers: server.url });
    const toOwner: Array<{ type: string; items?: unknown[] }> = [];
    tap.subscribe('tenaz.owner.>', { callback: (_, msg) => void toOwner.push(parseMessage(msg.data) as { type: string; items?: unknown[] }) });
    await tap.flush();
    const result = await owner.start(spread, 50, 20).result();
    await tap.close();

    expect(result.map((r) => r.i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const pids = new Set(result.map((r) => r.pid));
    // Events travel over NATS: the flow's last one may come after its result.
    await events.untilFlowEnds();
    for (const worker of workers) expect(pids.has(worker.pid)).toBe(true);
    for (const states of taskStates()) expect(states).toEqual(['Pending', 'Running', 'Completed']);
    const items = toOwner.flatMap((m) => (m.type === 'task.batch' ? (m.items as Array<{ type: string }>) : m.type === 'task.heartbeat' ? [] : [m]));
    expect(items.filter((i) => i.type === 'task.claim')).toHaveLength(50);
    expect(items.filter((i) => i.type === 'task.outcome')).toHaveLength(50);
    expect(toOwner.filter((m) => m.type === 'task.batch').length).toBeGreaterThan(0);
  });

  it('aborts a body whose claim the owner refuses, and sends no outcome for it', async () => {
    const { processes, server, owner, hits } = fixture;
    await processes.startWorker(server.url, 2);
    const ownerSubject = `tenaz.owner.${owner.ownerId}`;
    const tap = await connect({ servers: server.url });
    const toOwner: Array<Record<string, unknown>> = [];
    tap.subscribe(ownerSubject, {
      callback: (_, msg) => {
        const message = parseMessage(msg.data);
        if (message?.type === 'task.batch') toOwner.push(...(message.items as Array<Record<string, unknown>>));
        else if (message) toOwner.push(message);
      },
    });
    // A first delivery starts its body before the owner answers its claim; here the owner has no such run.
    const dispatch = { v: 1, type: 'task.dispatch', taskRunId: 'no-such-run-here', taskRunName: 'sleep-or-abort-0', taskName: 'sleep-or-abort', attempt: 1, args: [5_000, hits.url], owner: ownerSubject, heartbeatMs: 1_000, idempotencyKey: 'k' };
    await jetstream(tap).publish('tenaz.task.default.sleep-or-abort', encode(dispatch));
    await hits.until((hit) => hit.what === 'aborted');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await tap.flush();
    expect(toOwner.filter((m) => m.taskRunId === 'no-such-run-here').map((m) => m.type)).toEqual(['task.claim']);
    expect(hits.hits.some((hit) => hit.what === 'slept')).toBe(false);
    await tap.close();
  });

  it('frees the slot of a body whose claim was refused even when the body ignores its signal', async () => {
    const { processes, server, owner, hits } = fixture;
    await processes.startWorker(server.url, 1);
    const tap = await connect({ servers: server.url });
    const ownerSubject = `tenaz.owner.${owner.ownerId}`;
    const dispatch = { v: 1, type: 'task.dispatch', taskRunId: 'no-such-deaf-run', taskRunName: 'deaf-once-0', taskName: 'deaf-once', attempt: 1, args: [hits.url], owner: ownerSubject, heartbeatMs: 1_000, idempotencyKey: 'k' };
    await jetstream(tap).publish('tenaz.task.default.deaf-once', encode(dispatch));
    await hits.until((hit) => hit.what === 'start');
    await tap.close();
    // The worker's one slot is free again: a real run goes through it.
    const result = await owner.start(spread, 3, 0).result();
    expect(result.map((r) => r.i)).toEqual([0, 1, 2]);
  });

  it('frees the slot of a timed-out body that ignores its signal, so that the retry can run on the same worker', async () => {
    const { processes, server, owner, hits } = fixture;
    const worker = await processes.startWorker(server.url, 1);
    // Attempt 1 times out after 500 ms and never ends; attempt 2 needs the worker's one slot.
    expect(await owner.start(deafTimedOut, hits.url).result()).toBe(worker.pid);
    expect(hits.hits.filter((hit) => hit.what === 'start')).toHaveLength(2);
    await waitFor(() => /has not ended 5000 ms after its signal was aborted; its slot is freed/.test(worker.logs()), 5_000, 'the worker warning');
  });

  it('cancels a flow run: the body on the worker sees its signal abort, and the runs end Cancelled', async () => {
    const { processes, server, owner, events, hits } = fixture;
    await processes.startWorker(server.url, 2);
    const run = owner.start(cancellable, hits.url);
    await hits.until((hit) => hit.what === 'start');
    run.cancel();

    await expect(run.result()).rejects.toMatchObject({ code: 'CANCELLED' });
    // Told by the body's abort listener, in the run's context: the worker process lives on.
    const aborted = await hits.until((hit) => hit.what === 'aborted');
    expect(aborted).toMatchObject({ attempt: 1, task: 'until-aborted-0' });
    await events.untilFlowEnds();
    expect(events.flowEvents().at(-1)?.state.name).toBe('Cancelled');
    expect(events.taskEvents().at(-1)?.state.name).toBe('Cancelled');
  });

  it('keeps a task run that no worker can take Pending, warns, and runs it once a worker comes', async () => {
    const { processes, server, owner, events, hits, records } = fixture;
    const run = owner.start(slowChain, 1, 10, hits.url);
    await waitFor(() => records.some((r) => String(r.msg).startsWith('Waiting for a worker of pool')), 5_000, 'the warning');
    expect(events.taskEvents().map((e) => e.state.name)).toEqual(['Pending']);

    await processes.startWorker(server.url, 1);
    const result = await run.result();
    expect(result).toHaveLength(1);
  });

  it('runs at most `concurrency` task bodies at once on a worker', async () => {
    const { processes, server, owner, hits } = fixture;
    const worker = await processes.startWorker(server.url, 2);
    await owner.start(busyFanOut, 6, 150, hits.url).result();

    let running = 0;
    let most = 0;
    for (const hit of [...hits.hits].sort((a, b) => a.at - b.at)) {
      running += hit.what.startsWith('start') ? 1 : -1;
      most = Math.max(most, running);
    }
    expect(hits.hits.every((hit) => hit.pid === worker.pid)).toBe(true);
    expect(most).toBe(2);
  });

  it('hands the runs of a closing worker back to their owner, which restarts them at once on another worker', async () => {
    const { processes, server, owner, events, hits } = fixture;
    const connection = await connect({ servers: server.url });
    const local = createOrchestrator({ nats: connection, logger: pino({ level: 'silent' }), execution: 'local' });
    try {
      // This in-process worker takes the first task; a worker process waits beside it.
      const worker = local.worker({ concurrency: 1 });
      await worker.ready();
      const run = owner.start(slowChain, 1, 60_000, hits.url);
      await hits.until((hit) => hit.what === 'start-0');
      const other = await processes.startWorker(server.url, 1);
      await worker.close();
      await hits.until((hit) => hit.what === 'start-0' && hit.pid === other.pid);
      run.cancel();
      await run.result().catch(() => undefined);
      const retry = events.taskEvents().find((e) => e.state.name === 'AwaitingRetry');
      expect(retry?.state.errorCode).toBe('CRASHED');
      // Handed back by the worker, not found out by missed heartbeats.
      expect(retry?.state.message).toBe('the worker running the task run stopped');
    } finally {
      await local.close();
      await connection.close();
    }
  });

  it('closes a worker whose task body ignores its signal without waiting for it, and the run goes on elsewhere', async () => {
    const { processes, server, owner, hits } = fixture;
    const connection = await connect({ servers: server.url });
    const local = createOrchestrator({ nats: connection, logger: pino({ level: 'silent' }), execution: 'local' });
    try {
      const worker = local.worker({ concurrency: 1 });
      await worker.ready();
      const run = owner.start(deaf, hits.url);
      await hits.until((hit) => hit.what === 'start');
      const other = await processes.startWorker(server.url, 1);
      await worker.close();
      expect(await run.result()).toBe(other.pid);
    } finally {
      await local.close();
      await connection.close();
    }
  });

  it('drains at once after running a task run whose timed-out attempt and its retry were both on it', async () => {
    const { server, owner } = fixture;
    const connection = await connect({ servers: server.url });
    const local = createOrchestrator({ nats: connection, logger: pino({ level: 'silent' }), execution: 'local' });
    try {
      const worker = local.worker({ concurrency: 8 });
      await worker.ready();
      // Every retry comes back to this one worker, often while its first attempt is still ending.
      expect(await owner.start(timingOut, 4).result()).toEqual([2, 2, 2, 2]);
      await waitFor(() => worker.stats.running === 0, 5_000);
      // Before, a retry held under its task run's id hid the first attempt: the worker counted
      // one run too many, and a drain waited for it for ever.
      await worker.drain({ graceMs: 60_000 });
      expect(worker.stats).toMatchObject({ running: 0, finished: 8 });
    } finally {
      await local.close();
      await connection.close();
    }
  });

  it("fails a task run with the worker's error, name, code and stack included in the owner's log", async () => {
    const { processes, server, owner, records } = fixture;
    await processes.startWorker(server.url, 1);
    const error = await owner.start(failing).result().catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({ name: 'TypeError', message: 'boom on the worker' });
    // Its class says where it was thrown: the log's `type` too.
    expect(error).toBeInstanceOf(RemoteError);
    const line = records.find((r) => r.level === 50 && String(r.msg).startsWith('Finished in state Failed') && 'taskRunId' in r);
    expect(line?.err).toMatchObject({ type: 'RemoteError', message: 'boom on the worker' });
    expect((line?.err as { stack?: string } | undefined)?.stack).toContain('fixtures/nats/tasks.ts');
  });

  it('carries arguments and results to a worker and back with their types: Map, Set, Date, bigint, bytes', async () => {
    const { processes, server, owner } = fixture;
    const worker = await processes.startWorker(server.url, 1);
    const value = {
      map: new Map<unknown, unknown>([[1, 'one'], ['nested', new Map([[2n, new Set([new Date(0)])]])]]),
      bytes: new Uint8Array([1, 2, 3]),
      list: [new Map([['a', 1]]), { plain: true }],
    };
    const result = (await owner.start(roundTrip, value).result()) as { got: typeof value; extra: Map<string, number> };
    expect(result.got).toEqual(value);
    expect(result.got.map).toBeInstanceOf(Map);
    expect((result.got.map.get('nested') as Map<bigint, Set<Date>>).get(2n)).toEqual(new Set([new Date(0)]));
    expect(result.got.list[0]).toBeInstanceOf(Map);
    expect(result.got.list[1]).toEqual({ plain: true });
    expect(result.extra.get('pid')).toBe(worker.pid);
  });

  it('serves a cached task result to a flow run owned by another process, in state Cached', async () => {
    const { processes, server, owner } = fixture;
    await processes.startWorker(server.url, 1);
    const key = `key-${Date.now()}`;
    const first = await owner.start(cachedFlow, key).result();

    const connection = await connect({ servers: server.url });
    const other = createOrchestrator({ nats: connection, logger: pino({ level: 'silent' }) });
    try {
      const otherEvents: string[] = [];
      const stream = other.watch({ kind: 'task' });
      void (async () => {
        for await (const event of stream) otherEvents.push(event.state.name);
      })();
      const second = await other.start(cachedFlow, key).result();
      expect(second).toEqual(first);
      await waitFor(() => otherEvents.includes('Cached'), 5_000, 'a Cached task run');
      stream.close();
    } finally {
      await other.close();
      await connection.close();
    }
  });

  it('cancels a flow run from another process by its id, reaching the body on the worker', async () => {
    const { processes, server, owner, events, hits } = fixture;
    await processes.startWorker(server.url, 1);
    const run = owner.start(cancellable, hits.url);
    await hits.until((hit) => hit.what === 'start');

    const connection = await connect({ servers: server.url });
    const other = createOrchestrator({ nats: connection, logger: pino({ level: 'silent' }) });
    try {
      await other.cancelRun(run.id, 'stopped by an operator');
      await expect(run.result()).rejects.toMatchObject({ code: 'CANCELLED' });
      await hits.until((hit) => hit.what === 'aborted');
      await events.untilFlowEnds();
      expect(events.flowEvents().map((e) => e.state.name)).toEqual(['Pending', 'Running', 'Cancelling', 'Cancelled']);
      // Garbage and unknown ids on the control subject change nothing.
      connection.publish(`tenaz.ctl.${run.id}`, new Uint8Array([1, 2, 3]));
      await other.cancelRun('no-such-run');
    } finally {
      await other.close();
      await connection.close();
    }
  });

  it("routes a task run to the workers of its task's pool only", async () => {
    const { processes, server, owner, events } = fixture;
    const connection = await connect({ servers: server.url });
    const local = createOrchestrator({ nats: connection, logger: pino({ level: 'silent' }), execution: 'local' });
    try {
      // This worker serves the task, but for pool 'cpu': the run waits for a 'gpu' worker.
      const wrongPool = local.worker({ tasks: [onGpu], pool: 'cpu' });
      await wrongPool.ready();
      const run = owner.start(gpuFlow);
      await waitFor(() => events.taskEvents().length > 0, 5_000, 'the task run');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(events.taskEvents().map((e) => e.state.name)).toEqual(['Pending']);
      expect(wrongPool.stats.finished).toBe(0);

      // A worker serving each task's own pool takes it.
      const worker = await processes.startWorker(server.url, 1);
      expect(await run.result()).toBe(worker.pid);
    } finally {
      await local.close();
      await connection.close();
    }
  });
});
