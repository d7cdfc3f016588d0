/**
 * Task runs on real worker processes over a real nats-server, and what happens
 * when workers die, stall, freeze or the server restarts. The test process owns
 * the flow runs; workers are separate processes killed with real signals.
 */
import { describe, expect, it } from 'vitest';
import type { TaskStateEvent } from '../../src/events.js';
import { useNatsFixture, waitFor } from '../support/nats-fixture.js';
import { slowChain, stalled } from '../fixtures/nats/tasks.js';

// Short, so that crashes are found quickly; long enough that a loaded CI machine does not miss heartbeats.
const HEARTBEAT_TIMEOUT_MS = 1_000;
const fixture = useNatsFixture({ heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS });

describe('task runs on worker processes', () => {
  it('restarts on another worker a task run whose worker was SIGKILLed, and the flow completes', async () => {
    const { processes, server, owner, events, hits } = fixture;
    const [first, second] = await Promise.all([processes.startWorker(server.url, 1), processes.startWorker(server.url, 1)]);
    const run = owner.start(slowChain, 3, 300, hits.url);
    const started = await hits.until((hit) => hit.what === 'start-1');
    const victim = started.pid === first.pid ? first : second;
    const survivor = victim === first ? second : first;
    victim.child.kill('SIGKILL');
    const killedAt = performance.now();
    const again = await hits.until((hit) => hit.what === 'start-1' && hit.pid === survivor.pid);
    const result = await run.result();

    console.info(`[W4-like] SIGKILL to the task running again: ${Math.round(again.at - killedAt)} ms (heartbeat timeout ${HEARTBEAT_TIMEOUT_MS} ms)`);
    expect(result.map((r) => r.i)).toEqual([0, 1, 2]);
    expect(result[1]!.pid).toBe(survivor.pid);
    const crashed = events.events.find((e): e is TaskStateEvent => e.type === 'task.state' && e.state.name === 'AwaitingRetry');
    expect(crashed?.state.errorCode).toBe('CRASHED');
    expect(await victim.exited).toBe('SIGKILL');
  });

  it('leaves a stalled but living worker to the task timeout, not to crash detection', async () => {
    const { processes, server, owner, events, hits } = fixture;
    await processes.startWorker(server.url, 2);
    const result = await owner.start(stalled, hits.url).result();

    expect(result.attempt).toBe(2);
    await events.untilFlowEnds();
    const names = events.events.filter((e) => e.type === 'task.state').map((e) => e.state.name);
    expect(names).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Pending', 'Retrying', 'Completed']);
    const retry = events.events.find((e) => e.state.name === 'AwaitingRetry');
    expect(retry?.state.errorCode).toBe('TASK_TIMED_OUT');
  });

  it('ignores the late result of a frozen worker (SIGSTOP, then SIGCONT) and keeps the new one', async () => {
    const { processes, server, owner, events, hits, records } = fixture;
    const [first, second] = await Promise.all([processes.startWorker(server.url, 1), processes.startWorker(server.url, 1)]);
    const run = owner.start(slowChain, 1, 400, hits.url);
    const started = await hits.until((hit) => hit.what === 'start-0');
    const frozen = started.pid === first.pid ? first : second;
    const other = frozen === first ? second : first;
    frozen.child.kill('SIGSTOP');
    await hits.until((hit) => hit.what === 'start-0' && hit.pid === other.pid);
    const result = await run.result();
    expect(result[0]!.pid).toBe(other.pid);

    // Thawed, the zombie finishes its attempt and reports it: the owner ignores it.
    frozen.child.kill('SIGCONT');
    // Ignored and logged: as a late outcome while the run goes on, or as one for a run that has ended.
    const late = (r: { msg?: unknown }) => /^ignored the (late outcome of attempt 1 of a task run|outcome of a task run that has ended)/.test(String(r.msg));
    await waitFor(() => records.some(late));
    const ignored = records.find(late);
    expect(ignored).toMatchObject({ attempt: 1 });
    expect(events.flowEvents().at(-1)?.state.name).toBe('Completed');
  });

  it('completes a flow across a nats-server restart in the middle of it', async () => {
    const { processes, server, owner, hits } = fixture;
    await processes.startWorker(server.url, 2);
    const run = owner.start(slowChain, 6, 150, hits.url);
    await hits.until((hit) => hit.what === 'start-2');
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await server.start();
    const result = await run.result();
    expect(result.map((r) => r.i)).toEqual([0, 1, 2, 3, 4, 5]);

    // The live watcher missed nothing while the server was away: every run's seq counts up without a gap.
    const { events } = fixture;
    await events.untilFlowEnds();
    const seqs = new Map<string, number[]>();
    for (const e of events.events) {
      const id = e.type === 'flow.state' ? e.flowRunId : e.taskRunId;
      seqs.set(id, [...(seqs.get(id) ?? []), e.seq]);
    }
    expect(seqs.size).toBe(7);
    for (const list of seqs.values()) expect(list).toEqual(list.map((_, i) => i + 1));
  }, 30_000);

  it('does not take a server outage longer than the heartbeat timeout for a crash of the workers', async () => {
    const { processes, server, owner, events, hits } = fixture;
    await processes.startWorker(server.url, 1);
    const run = owner.start(slowChain, 1, 5_000, hits.url);
    await hits.until((hit) => hit.what === 'start-0');
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 2.5 * HEARTBEAT_TIMEOUT_MS));
    await server.start();
    const result = await run.result();
    expect(result).toHaveLength(1);
    await events.untilFlowEnds();
    expect(events.taskEvents().map((e) => e.state.name)).toEqual(['Pending', 'Running', 'Completed']);
    expect(hits.hits.filter((hit) => hit.what === 'start-0')).toHaveLength(1);
  }, 30_000);
});
