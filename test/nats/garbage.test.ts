/**
 * Garbage on every subject tenaz uses, while flows run: random bytes, msgpack
 * of the wrong shape, messages that look right but name nothing real, huge
 * payloads, dispatches of unknown tasks. No process crashes, the flows in
 * progress finish with the right results, and later flows run as before.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { Packr } from 'msgpackr';
import { parseMessage } from '../../src/codec.js';
import { useNatsFixture, waitFor } from '../support/nats-fixture.js';
import { spread } from '../fixtures/nats/tasks.js';

const fixture = useNatsFixture();
const packr = new Packr({ useRecords: false });

function garbage(): Uint8Array[] {
  const run = { taskRunId: 'no-such-run', attempt: 1, workerId: 'w', worker: 'tenaz.worker.w' };
  return [
    new Uint8Array(),
    randomBytes(1),
    randomBytes(64),
    randomBytes(900 * 1024),
    packr.pack([1, 2, 3]),
    packr.pack('a string'),
    packr.pack({ v: 1 }),
    packr.pack({ v: 99, type: 'task.dispatch' }),
    packr.pack({ v: 1, type: 'unknown.type', x: 1 }),
    packr.pack({ v: 1, type: 'flow.state', seq: 'x', state: null }),
    packr.pack({ v: 1, type: 'task.claim', ...run }),
    packr.pack({ v: 1, type: 'task.heartbeat', workerId: 'w', runs: [['no-such-run', 1], ['x', -1]] }),
    packr.pack({ v: 1, type: 'task.outcome', ...run, ok: true, value: 'forged' }),
    packr.pack({ v: 1, type: 'task.batch', items: [{ v: 1, type: 'task.claim', ...run }, { v: 1, type: 'task.outcome', ...run, ok: true, value: 'forged' }] }),
    packr.pack({ v: 1, type: 'task.batch', items: [{ v: 1, type: 'task.claim', ...run }, 'not an item'] }),
    packr.pack({ v: 1, type: 'task.batch', items: Array.from({ length: 5_000 }, () => ({ v: 1, type: 'task.claim', ...run })) }),
    packr.pack({ v: 1, type: 'task.batch.reply', replies: [{ v: 1, type: 'task.claim.reply', accepted: true }] }),
    packr.pack({ v: 1, type: 'task.cancel', taskRunId: 'no-such-run', attempt: 1, reason: 'cancel' }),
    packr.pack({ v: 1, type: 'task.dispatch', taskRunId: 'r', taskRunName: 'r', taskName: 'whoami', attempt: 1, args: [1, 0], owner: '>', heartbeatMs: 100, idempotencyKey: 'k' }),
    packr.pack({ v: 1, type: 'task.dispatch', taskRunId: 'r', taskRunName: 'r', taskName: 'whoami', attempt: 1, args: [1, 0], owner: 'tenaz.owner.nobody', heartbeatMs: 100, idempotencyKey: 'k' }),
    packr.pack({ v: 1, type: 'task.dispatch', taskRunId: 'r', taskRunName: 'r', taskName: 'no-such-task', attempt: 1, args: [], owner: 'tenaz.owner.nobody', heartbeatMs: 100, idempotencyKey: 'k' }),
  ];
}

describe('garbage on every subject', () => {
  it('crashes no process and loses no flow', async () => {
    const { processes, server, owner, events } = fixture;
    const workers = await Promise.all([processes.startWorker(server.url, 4), processes.startWorker(server.url, 4)]);

    // Learn the owner's and the workers' subjects the way an attacker on the bus could.
    const tap = await connect({ servers: server.url });
    const seen = new Set<string>();
    tap.subscribe('tenaz.owner.>', {
      callback: (_, msg) => {
        seen.add(msg.subject);
        // A claim names its worker's subject, alone or in a batch.
        const message = parseMessage(msg.data);
        const items: unknown[] = Array.isArray(message?.items) ? message.items : [message];
        for (const item of items) {
          const worker = (item as { worker?: unknown } | null)?.worker;
          if (typeof worker === 'string') seen.add(worker);
        }
      },
    });
    const run = owner.start(spread, 40, 30);
    await waitFor(() => [...seen].some((s) => s.startsWith('tenaz.worker.')), 10_000, 'a claim on the bus');

    const subjects = [
      ...seen,
      'tenaz.task.default.whoami',
      'tenaz.task.default.slow-step',
      'tenaz.task.default.no-such-task',
      'tenaz.task.other-pool.whoami',
      'tenaz.evt.spread.x.flow',
      'tenaz.evt.spread.x.task.whoami.y',
      'tenaz.log.spread.x.y',
      'tenaz.ctl.x',
      'tenaz.owner.nobody',
      'tenaz.worker.nobody',
    ];
    for (const subject of subjects) for (const bytes of garbage()) tap.publish(subject, bytes);
    await tap.flush();

    const result = await run.result();
    expect(result.map((r) => r.i)).toEqual(Array.from({ length: 40 }, (_, i) => i));

    // Everything still works after the flood.
    const again = await owner.start(spread, 10, 0).result();
    expect(again).toHaveLength(10);
    await events.untilFlowEnds();
    for (const worker of workers) expect(worker.child.exitCode).toBeNull();
    // The garbage did arrive, and was dropped where it landed.
    await waitFor(() => workers.some((w) => w.logs().includes('dropped a dispatch that is not a valid task run')), 10_000, 'a dropped dispatch');
    await waitFor(() => fixture.records.some((r) => r.msg === 'dropped a message to this owner that is not a claim, heartbeat or outcome'), 10_000, 'a dropped owner message');
    await waitFor(() => fixture.records.some((r) => /^dropped a message .* that is not a run event$/.test(String(r.msg))), 10_000, 'a dropped event');
    const flowEnds = events.flowEvents().filter((e) => e.state.name === 'Completed');
    expect(flowEnds.length).toBeGreaterThanOrEqual(1);
    await tap.close();
  });

  it("tells a flood of forged outcomes sent to the owner in a line or two, not one line each", async () => {
    const { server, owner } = fixture;
    const tap = await connect({ servers: server.url });
    const outcomes = Array.from({ length: 1_000 }, (_, i) => ({ v: 1, type: 'task.outcome', taskRunId: `forged-${i}`, attempt: 1, workerId: 'w', ok: true, value: i }));
    const reply = await tap.request(`tenaz.owner.${owner.ownerId}`, packr.pack({ v: 1, type: 'task.batch', items: outcomes }), { timeout: 5_000 });
    const replies = (packr.unpack(reply.data) as { replies: Array<{ accepted: boolean }> }).replies;
    expect(replies).toHaveLength(1_000);
    expect(replies.every((r) => r.accepted === false)).toBe(true);
    await tap.close();
    const lines = fixture.records.filter((r) => /^ignored the /.test(String(r.msg)));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines[0]?.msg).toMatch(/^ignored the outcome of a task run that has ended or that this process never owned/);
  });

  it('crashes no process serving flows, and loses no run, with garbage in the flow queue and the run records', async () => {
    const { processes, server, owner } = fixture;
    await processes.startWorker(server.url, 4);
    const { logger, records } = createMemoryLogger();
    const standbyConnection = await connect({ servers: server.url });
    const standby = createOrchestrator({ nats: standbyConnection, execution: 'local', durable: { leaseMs: 500 }, logger });
    const tap = await connect({ servers: server.url });
    try {
      await standby.serveFlows({ flows: [spread] });
      const first = owner.start(spread, 10, 0);
      await first.result();
      const take = { v: 1, type: 'flow.take', flowName: 'spread', reason: 'resume' };
      const durableGarbage = [
        ...garbage(),
        packr.pack({ ...take, flowRunId: 'no-such-run' }),
        packr.pack({ ...take, flowRunId: first.id }),
        packr.pack({ ...take, flowRunId: first.id, flowName: 'other-flow' }),
        packr.pack({ ...take, flowRunId: 42, reason: 'because' }),
      ];
      const js = jetstream(tap);
      for (const subject of ['tenaz.flowq.spread', 'tenaz.flowq.no-such-flow']) {
        for (const bytes of durableGarbage) await js.publish(subject, bytes).catch(() => {});
      }
      // Straight into the KV buckets' streams: records, journal entries, active runs and leases that do not parse.
      for (const subject of [`$KV.tenaz_runs.${first.id}-x`, `$KV.tenaz_runs.garbage`, `$KV.tenaz_journal.${first.id}/7`, '$KV.tenaz_active.garbage', '$KV.tenaz_owners.garbage']) {
        for (const bytes of garbage().slice(0, 9)) await js.publish(subject, bytes).catch(() => {});
      }

      // Runs go on, and are recorded and listed as before.
      const second = owner.start(spread, 10, 0);
      expect(await second.result()).toHaveLength(10);
      const listed = await standby.runs.list();
      const ours = listed.filter((record) => record.id === first.id || record.id === second.id);
      expect(ours.map((record) => record.state.name)).toEqual(['Completed', 'Completed']);
      expect(listed.every((record) => record.state.name === 'Completed')).toBe(true);
      expect((await standby.runs.show(first.id)).run.state.name).toBe('Completed');
      await waitFor(() => records.some((r) => /flow queue message|does not parse|garbled|owner lease/.test(String(r.msg))), 10_000, 'garbage reported');
    } finally {
      await tap.close();
      await standby.close();
      await standbyConnection.close();
    }
  });
});
