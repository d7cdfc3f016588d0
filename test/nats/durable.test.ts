/**
 * Durable runs across real processes: the process running a flow is SIGKILLed
 * and another process that serves the flow resumes it, reading back the task
 * runs that completed instead of running them again (the hit server counts
 * their side effects). Each test has its own namespace on one shared server.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { connectOrchestrator, type Orchestrator } from '../../src/index.js';
import { TenazProcesses, type TenazProcess } from '../fixtures/nats/tenaz-process.js';
import { HitServer } from '../support/processes.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import type { FlowRunRecord } from '../../src/durable/records.js';
import { isTerminal, type RunState } from '../../actors/state.js';
import type { RunEvent } from '../../src/events.js';

const DURABLE = 'test/fixtures/nats/durable.ts';
const DURABLE_TASKS = 'test/fixtures/nats/durable-tasks.ts';
const SERVING = /^tenaz: serving flow\(s\) .* on nats:\/\/127\.0\.0\.1:\d+; concurrency \d+$/m;
const TOOK_OVER = /Took over flow run '([^']+)'/;

let server: NatsServer;
let namespaces = 0;

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.dispose();
});

interface Scene {
  namespace: string;
  processes: TenazProcesses;
  hits: HitServer;
  admin: Orchestrator;
  /** `tenaz worker` serving the fixture's flows and tasks. */
  serve(env?: Record<string, string>): Promise<TenazProcess>;
  /** `tenaz worker` serving the fixture's tasks only. */
  serveTasks(): Promise<TenazProcess>;
  /** `tenaz run` of a fixture flow, owning the flow run (its tasks go to the workers). */
  run(flow: string, steps: number, stepMs: number, env?: Record<string, string>): TenazProcess;
  /** The one flow run recorded in the namespace, once there is one. */
  onlyRun(): Promise<FlowRunRecord>;
  stepHits(index: number): number;
}

async function scene(context: TestContext, adminLogger = silentLogger()): Promise<Scene> {
  const namespace = `durable${++namespaces}`;
  const processes = new TenazProcesses();
  const hits = new HitServer();
  await hits.start();
  const admin = await connectOrchestrator({ nats: server.url, namespace, durable: true, execution: 'local', logger: adminLogger });
  context.onTestFinished(async () => {
    await processes.killAll();
    await admin.close();
    await hits.stop();
  });
  const env = { TENAZ_NAMESPACE: namespace, TENAZ_NATS_URL: server.url, TENAZ_LOG_FORMAT: 'json' };
  return {
    namespace,
    processes,
    hits,
    admin,
    async serve(extra = {}) {
      const worker = processes.spawn(['worker', DURABLE], { ...env, ...extra });
      await worker.waitFor('stderr', SERVING);
      return worker;
    },
    async serveTasks() {
      const worker = processes.spawn(['worker', DURABLE_TASKS], env);
      await worker.waitFor('stderr', /^tenaz: serving durable-step/m);
      return worker;
    },
    run(flow, steps, stepMs, extra = {}) {
      return processes.spawn(['run', DURABLE, '--flow', flow, '--param', `hitUrl=${hits.url}`, '--param', `steps=${steps}`, '--param', `stepMs=${stepMs}`], { ...env, ...extra });
    },
    async onlyRun() {
      for (;;) {
        const [run] = await admin.runs.list();
        if (run) return run;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    stepHits: (index) => hits.hits.filter((hit) => hit.what === `step-${index}`).length,
  };
}

/**
 * The last state of each task run of a flow run in the history, read from the start until
 * `enough` says so of what was read (or 10 s passed).
 */
async function lastTaskStates(admin: Orchestrator, flowRunId: string, enough: (states: RunState[]) => boolean): Promise<RunState[]> {
  const last = new Map<string, RunState>();
  const events = admin.watch({ flowRunId, kind: 'task', since: { seq: 0 } });
  const timer = setTimeout(() => events.close(), 10_000);
  try {
    for await (const event of events) {
      if (event.type !== 'task.state') continue;
      last.set(event.taskRunId, event.state);
      if (enough([...last.values()])) break;
    }
  } finally {
    clearTimeout(timer);
    events.close();
  }
  return [...last.values()];
}

/** Whether `count` task runs were read and all of them ended. */
const allEnded = (count: number) => (states: RunState[]) => states.length === count && states.every((state) => isTerminal(state.name));
/** Whether one task run ended Crashed and none is left in flight. */
const crashedAndNoneInFlight = (states: RunState[]) => states.some((state) => state.name === 'Crashed') && states.every((state) => isTerminal(state.name));

/** The history's events of one run (its own, or its task runs'), from the start until `last` matches one. */
async function eventsUntil(admin: Orchestrator, flowRunId: string, kind: 'flow' | 'task' | undefined, last: (event: RunEvent) => boolean): Promise<RunEvent[]> {
  const seen: RunEvent[] = [];
  const events = admin.watch({ flowRunId, ...(kind === undefined ? {} : { kind }), since: { seq: 0 } });
  const timer = setTimeout(() => events.close(), 10_000);
  try {
    for await (const event of events) {
      seen.push(event);
      if (last(event)) break;
    }
  } finally {
    clearTimeout(timer);
    events.close();
  }
  return seen;
}

/** The admin orchestrator's own lines are not what these tests read. */
function silentLogger() {
  return pino({ level: 'silent' });
}

describe('durable flow runs', { timeout: 40_000 }, () => {
  it('resumes a flow run in another serving process after SIGKILL of its own, without running completed task runs again', async (context) => {
    const { hits, admin, serve, run, onlyRun, stepHits } = await scene(context);
    const servers = await Promise.all([serve(), serve()]);
    const owner = run('durable-steps', 6, 400);
    await hits.until((hit) => hit.what === 'step-3');
    owner.signal('SIGKILL');
    const killedAt = Date.now();
    expect((await owner.exited).signal).toBe('SIGKILL');

    const record = await admin.runs.wait((await onlyRun()).id);
    const takers = servers.filter((worker) => TOOK_OVER.test(worker.stderr));
    const takenAt = Number((takers[0]?.stderr.split('\n').find((line) => TOOK_OVER.test(line)) ?? '').match(/"time":(\d+)/)?.[1]);
    console.info(`[W5-like] SIGKILL of the flow's process to its flow run taken over: ${takenAt - killedAt} ms (lease 3000 ms)`);

    expect(record.state.name).toBe('Completed');
    expect(record.result).toMatchObject({ total: 150 });
    expect(record.resumes).toBe(1);
    // Exactly one of the two serving processes took the run over.
    expect(takers).toHaveLength(1);
    // Steps 0 to 2 had completed: their side effects happened once. Step 3 was in flight: at least once.
    for (const index of [0, 1, 2]) expect(stepHits(index), `step ${index}`).toBe(1);
    expect(stepHits(3)).toBeGreaterThanOrEqual(1);
    for (const index of [4, 5]) expect(stepHits(index), `step ${index}`).toBe(1);
    const { taskRuns } = await admin.runs.show(record.id);
    expect(taskRuns.map((task) => [task.position, task.state.name])).toEqual([0, 1, 2, 3, 4, 5].map((position) => [position, 'Completed']));

    // The task run the dead process left running ends in the history too: Crashed, told by the taker.
    const lastStates = await lastTaskStates(admin, record.id, allEnded(7));
    const ends = lastStates.map((state) => state.name).sort();
    expect(ends).toEqual(['Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Crashed']);
    const lost = lastStates.find((state) => state.name === 'Crashed');
    expect(lost?.message).toMatch(/^the process that ran flow run '[a-z]+-[a-z]+' died; the flow run resumed in another process/);
  });

  it('resumes a subflow as the same run (name, record, event sequence) and ends the task run its dead process left in flight', async (context) => {
    const { hits, admin, serve, run } = await scene(context);
    await Promise.all([serve(), serve()]);
    const owner = run('durable-nested', 5, 400);
    await hits.until((hit) => hit.what === 'step-2');
    owner.signal('SIGKILL');
    expect((await owner.exited).signal).toBe('SIGKILL');

    const parent = await waitUntil(async () => (await admin.runs.list({ flowName: 'durable-nested' }))[0]);
    const record = await admin.runs.wait(parent.id);
    expect(record.state.name).toBe('Completed');
    expect(record.result).toMatchObject({ total: 100 });
    const [subflow] = await admin.runs.list({ flowName: 'durable-steps' });
    expect(subflow).toMatchObject({ parentId: record.id, state: { name: 'Completed' }, resumes: 1 });

    // One run before and after the kill: its events numbered on from where they were, under one name.
    const flowEvents = await eventsUntil(admin, subflow!.id, 'flow', (event) => event.state.name === 'Completed');
    expect(flowEvents.map((event) => event.seq)).toEqual(flowEvents.map((_, index) => index + 1));
    expect(new Set(flowEvents.map((event) => (event.type === 'flow.state' ? event.flowRunName : undefined)))).toEqual(new Set([subflow!.name]));
    // The subflow's step in flight at the kill ends in the history, Crashed, told by the taker.
    const lastStates = await lastTaskStates(admin, subflow!.id, allEnded(6));
    expect(lastStates.map((state) => state.name).sort()).toEqual(['Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Crashed']);
  });

  it('fails a resumed flow run whose task calls changed order, with an error that says so; with the code rolled back, a retry completes it', async (context) => {
    const { hits, admin, serve, run, onlyRun, stepHits } = await scene(context);
    const changed = await serve({ TENAZ_TEST_REORDER: '1' });
    const owner = run('durable-fickle', 4, 1_000);
    await hits.until((hit) => hit.what === 'step-1');
    // Past the write window: step-1's record says Running when its process dies.
    await new Promise((resolve) => setTimeout(resolve, 600));
    owner.signal('SIGKILL');

    const record = await admin.runs.wait((await onlyRun()).id);
    expect(record.state.name).toBe('Failed');
    expect(record.error?.name).toBe('NonDeterminismError');
    expect(record.error?.message).toMatch(/call #1 is task 'other-step', but it was task 'durable-step' before/);
    // Regression: the refused call was written over the recorded one (the result of step-0 lost),
    // and the call in flight at the kill, never made again, showed Running for ever.
    // The record of the run's end is written before the calls it left are ended: a moment later.
    const taskRuns = await waitUntil(async () => {
      const shown = (await admin.runs.show(record.id)).taskRuns;
      return shown.every((task) => isTerminal(task.state.name)) ? shown : undefined;
    }, 5_000);
    expect(taskRuns.map((task) => [task.position, task.taskName, task.state.name])).toEqual([
      [0, 'durable-step', 'Completed'],
      [1, 'durable-step', 'Crashed'],
    ]);

    // The code rolled back: a retry reuses step-0's result and completes.
    changed.signal('SIGKILL');
    await serve();
    await admin.runs.retry(record.id);
    const retried = await admin.runs.wait(record.id);
    expect(retried.state.name).toBe('Completed');
    expect(stepHits(0)).toBe(1);
  });

  it("marks Crashed, with the reason, a flow run whose process died when no live process serves its flow", async (context) => {
    const { hits, admin, run, serveTasks } = await scene(context);
    await serveTasks();
    // Another owner stays alive to notice; it serves no flow.
    const survivor = run('durable-steps', 100, 200);
    const victim = run('durable-steps', 100, 200);
    await hits.until((hit) => hit.what === 'step-1' && hit.pid !== 0);
    const runs = await waitForRuns(admin, 2);
    victim.signal('SIGKILL');
    // The two runs are told apart by their owner's process: only the victim's run crashes.
    const crashed = await waitUntil(async () => (await admin.runs.list({ state: 'Crashed' }))[0]);
    expect(crashed.error?.message).toMatch(/its process stopped, and no live process serves flow 'durable-steps'/);
    expect(runs.map((r) => r.id)).toContain(crashed.id);
    // Its task run in flight ends Crashed too: nobody resumes the run to end it.
    const states = await lastTaskStates(admin, crashed.id, crashedAndNoneInFlight);
    expect(states.filter((state) => !isTerminal(state.name))).toEqual([]);
    expect(states.find((state) => state.name === 'Crashed')?.message).toMatch(/ended Crashed: its process stopped/);
    const others = (await admin.runs.list()).filter((r) => r.id !== crashed.id);
    expect(others.map((r) => r.state.name)).toEqual(['Running']);
    survivor.signal('SIGKILL');
  });
});

describe('durable flow runs when every process died', { timeout: 40_000 }, () => {
  it('shows Crashed, not Running, a run whose process died while no tenaz process watched', async (context) => {
    const adminLog = createMemoryLogger('info');
    const { hits, admin, run, serveTasks } = await scene(context, adminLog.logger);
    const worker = await serveTasks();
    const owner = run('durable-steps', 100, 1_000);
    await hits.until((hit) => hit.what === 'step-1');
    // Past the write window: step-1's record says Running when its process dies.
    await new Promise((resolve) => setTimeout(resolve, 600));
    owner.signal('SIGKILL');
    worker.signal('SIGKILL');
    const [running] = await admin.runs.list();
    expect(running?.state.name).toBe('Running');
    // Once its lease is long gone, reading the runs ends it, as a watching process would have.
    const crashed = await waitUntil(async () => {
      const [record] = await admin.runs.list();
      return record?.state.name === 'Crashed' ? record : undefined;
    });
    expect(crashed.id).toBe(running!.id);
    expect(crashed.error?.message).toMatch(/no live process serves flow 'durable-steps'/);
    const states = await lastTaskStates(admin, crashed.id, crashedAndNoneInFlight);
    expect(states.filter((state) => !isTerminal(state.name))).toEqual([]);
    expect(states.find((state) => state.name === 'Crashed')?.message).toMatch(/ended Crashed: its process stopped/);
    // And in its record (regression: `runs show` listed it Running for ever).
    const { taskRuns } = await admin.runs.show(crashed.id);
    expect(taskRuns.filter((task) => !isTerminal(task.state.name))).toEqual([]);
    expect(taskRuns.find((task) => task.state.name === 'Crashed')?.error?.message).toMatch(/ended Crashed: its process stopped/);
    // Its end comes after its task runs' in the history, as when a run ends itself.
    const history = await eventsUntil(admin, crashed.id, undefined, (event) => event.type === 'flow.state' && event.state.name === 'Crashed');
    const taskEnds = history.filter((event) => event.type === 'task.state' && event.state.name === 'Crashed');
    expect(taskEnds.length).toBeGreaterThan(0);
    expect(history.at(-1)).toMatchObject({ type: 'flow.state', state: { name: 'Crashed' } });
    // The reader that ended it says so at info level: listing runs is no error of its own.
    const line = adminLog.records.find((r) => /Finished in state Crashed/.test(r.msg));
    expect(line).toMatchObject({ level: 30, flowRunId: crashed.id });
  });
});

async function waitForRuns(admin: Orchestrator, count: number): Promise<FlowRunRecord[]> {
  return waitUntil(async () => {
    const runs = await admin.runs.list();
    return runs.length >= count ? runs : undefined;
  });
}

async function waitUntil<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
