/**
 * Task runs on real worker processes over a real nats-server, and what happens
 * when workers die, stall, freeze or the server restarts. The test process owns
 * the flow runs; workers are separate processes killed with real signals.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createOrchestrator, type Orchestrator } from '../../src/runtime/orchestrator.js';
import type { TaskStateEvent } from '../../src/events.js';
import { createMemoryLogger, recordEvents, type EventRecorder, type LogRecord } from '../unit/runtime/helpers.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { HitServer, Processes } from '../support/processes.js';
import { slowChain, spread, stalled } from '../fixtures/nats/tasks.js';

const HEARTBEAT_TIMEOUT_MS = 600;

let server: NatsServer;
let hits: HitServer;
let processes: Processes;
let connection: NatsConnection;
let owner: Orchestrator;
let events: EventRecorder;
let records: LogRecord[];

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.dispose();
});

beforeEach(async () => {
  if (server.pid === undefined) await server.start();
  hits = new HitServer();
  await hits.start();
  processes = new Processes();
  connection = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const memory = createMemoryLogger();
  records = memory.records;
  owner = createOrchestrator({ nats: connection, logger: memory.logger, heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS });
  events = recordEvents(owner);
});

afterEach(async () => {
  events.close();
  await owner.close();
  await connection.close();
  await processes.stopAll();
  await hits.stop();
});

function taskStates(): string[][] {
  const byRun = new Map<string, string[]>();
  for (const event of events.events) {
    if (event.type !== 'task.state') continue;
    const list = byRun.get(event.taskRunId) ?? [];
    list.push(event.state.name);
    byRun.set(event.taskRunId, list);
  }
  return [...byRun.values()];
}

describe('task runs on worker processes', () => {
  it('runs a flow of 50 tasks over 3 workers with the right result, spreading the work', async () => {
    const workers = await Promise.all([1, 2, 3].map(() => processes.startWorker(server.url, 4)));
    const result = await owner.start(spread, 50, 20).result();

    expect(result.map((r) => r.i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const pids = new Set(result.map((r) => r.pid));
    // Events travel over NATS: the flow's last one may come after its result.
    await events.untilFlowEnds();
    for (const worker of workers) expect(pids.has(worker.pid)).toBe(true);
    for (const states of taskStates()) expect(states).toEqual(['Pending', 'Running', 'Completed']);
  });

  it('restarts on another worker a task run whose worker was SIGKILLed, and the flow completes', async () => {
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
    await waitFor(() => records.some((r) => r.msg === 'ignored the outcome of an attempt that was already given up'));
    const ignored = records.find((r) => r.msg === 'ignored the outcome of an attempt that was already given up');
    expect(ignored).toMatchObject({ attempt: 1 });
    expect(events.flowEvents().at(-1)?.state.name).toBe('Completed');
  });

  it('completes a flow across a nats-server restart in the middle of it', async () => {
    await processes.startWorker(server.url, 2);
    const run = owner.start(slowChain, 6, 150, hits.url);
    await hits.until((hit) => hit.what === 'start-2');
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await server.start();
    const result = await run.result();
    expect(result.map((r) => r.i)).toEqual([0, 1, 2, 3, 4, 5]);
  }, 30_000);
});

async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
