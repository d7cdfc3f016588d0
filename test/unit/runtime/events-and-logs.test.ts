import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { flow, task } from '../../../src/index.js';
import type { RunEvent } from '../../../src/events.js';
import { formatPrettyLine } from '../../../src/log.js';
import { createFixture, names, recordEvents, uniqueName, type Fixture } from './helpers.js';

let fx: Fixture;

beforeEach(() => {
  fx = createFixture();
});

afterEach(async () => {
  await fx.orchestrator.close();
});

const runIdOf = (e: RunEvent): string => (e.type === 'task.state' ? e.taskRunId : e.flowRunId);

describe('run events', () => {
  it('every transition of a flow with three chained tasks is an event, numbered 1..n per run in transition order', async () => {
    const inc = task({ name: 'inc' }, async (n: number) => n + 1);
    const flowName = uniqueName('chain');
    const chain = flow({ name: flowName }, async (n: number) => inc(await inc(await inc(n))));
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(chain, 0);
    await expect(run.result()).resolves.toBe(3);
    await recorder.untilFlowEnds(run.id);
    const { events } = recorder;

    expect(names(recorder.flowEvents(run.id))).toEqual(['Pending', 'Running', 'Completed']);
    const taskRuns = [...new Set(recorder.taskEvents().map((e) => e.taskRunId))];
    expect(taskRuns).toHaveLength(3);
    for (const id of taskRuns) {
      const own = recorder.taskEvents(id);
      expect(names(own)).toEqual(['Pending', 'Running', 'Completed']);
      expect(own.every((e) => e.flowRunId === run.id && e.flowName === flowName && e.v === 1)).toBe(true);
    }
    expect(recorder.taskEvents().map((e) => e.taskRunName)).toEqual([
      ...Array(3).fill('inc-0'),
      ...Array(3).fill('inc-1'),
      ...Array(3).fill('inc-2'),
    ]);
    const byRun = new Map<string, number[]>();
    for (const event of events) byRun.set(runIdOf(event), [...(byRun.get(runIdOf(event)) ?? []), event.seq]);
    for (const seqs of byRun.values()) expect(seqs).toEqual(seqs.map((_, i) => i + 1));

    const flowRunning = events.findIndex((e) => e.type === 'flow.state' && e.state.name === 'Running');
    const firstTaskPending = events.findIndex((e) => e.type === 'task.state' && e.state.name === 'Pending');
    const flowCompleted = events.findIndex((e) => e.type === 'flow.state' && e.state.name === 'Completed');
    const lastTaskCompleted = events.findLastIndex((e) => e.type === 'task.state' && e.state.name === 'Completed');
    expect(flowRunning).toBeLessThan(firstTaskPending);
    expect(lastTaskCompleted).toBeLessThan(flowCompleted);
    const timestamps = events.map((e) => e.state.timestamp);
    expect(timestamps).toEqual([...timestamps].sort((a, b) => a - b));
    recorder.close();
  });
});

describe('watch(filter)', () => {
  const awkwardName = uniqueName('etl.daily run*');
  const plainName = uniqueName('etl');
  const step = task({ name: 'step.one *' }, async () => 'ok');
  const awkward = flow({ name: awkwardName }, async () => step());
  const plain = flow({ name: plainName }, async () => step());

  async function runAll(filters: Parameters<typeof recordEvents>[1][]) {
    const recorders = filters.map((filter) => recordEvents(fx.orchestrator, filter));
    const all = recordEvents(fx.orchestrator);
    const runs = [fx.orchestrator.start(awkward), fx.orchestrator.start(plain), fx.orchestrator.start(awkward)];
    await Promise.all(runs.map((run) => run.result()));
    await Promise.all(runs.map((run) => all.untilFlowEnds(run.id)));
    for (const recorder of [...recorders, all]) recorder.close();
    return { recorders, all, runs };
  }

  it('watch({ flowName }) yields only the events of that flow, names with dots, spaces and * included', async () => {
    const { recorders, all } = await runAll([{ flowName: awkwardName }, { flowName: plainName }, { flowName: '*' }]);
    const [onlyAwkward, onlyPlain, literalStar] = recorders as [ReturnType<typeof recordEvents>, ReturnType<typeof recordEvents>, ReturnType<typeof recordEvents>];
    expect(all.events).toHaveLength(18);
    expect(onlyAwkward.events).toHaveLength(12);
    expect(onlyAwkward.events.every((e) => e.flowName === awkwardName)).toBe(true);
    expect(onlyPlain.events).toHaveLength(6);
    expect(onlyPlain.events.every((e) => e.flowName === plainName)).toBe(true);
    expect(literalStar.events).toEqual([]);
  });

  it('watch({ kind }) yields only task events or only flow events', async () => {
    const { recorders } = await runAll([{ kind: 'task' }, { kind: 'flow' }, { kind: 'task', flowName: plainName }]);
    const [tasks, flows, plainTasks] = recorders as [ReturnType<typeof recordEvents>, ReturnType<typeof recordEvents>, ReturnType<typeof recordEvents>];
    expect(tasks.events).toHaveLength(9);
    expect(tasks.events.every((e) => e.type === 'task.state' && e.taskName === 'step.one *')).toBe(true);
    expect(flows.events).toHaveLength(9);
    expect(flows.events.every((e) => e.type === 'flow.state')).toBe(true);
    expect(plainTasks.events).toHaveLength(3);
    expect(plainTasks.events.every((e) => e.type === 'task.state' && e.flowName === plainName)).toBe(true);
  });

  it('watch({ flowRunId }) yields only the events of that run and its task runs', async () => {
    const recorder = recordEvents(fx.orchestrator);
    const first = fx.orchestrator.start(awkward);
    const only = recordEvents(fx.orchestrator, { flowRunId: first.id });
    const second = fx.orchestrator.start(awkward);
    await Promise.all([first.result(), second.result()]);
    await Promise.all([recorder.untilFlowEnds(first.id), recorder.untilFlowEnds(second.id), only.untilFlowEnds(first.id)]);
    only.close();
    recorder.close();
    // Watched right after start() returned the id: the run's first event is seen too.
    const firstEvents = recorder.events.filter((e) => e.flowRunId === first.id);
    expect(firstEvents).toHaveLength(6);
    expect(only.events).toEqual(firstEvents);
    expect(only.events.at(-1)).toMatchObject({ type: 'flow.state', state: { name: 'Completed' } });
    expect(recorder.events.filter((e) => e.flowRunId === second.id)).toHaveLength(6);
  });
});

describe('log records', () => {
  const strip = ({ time, pid, hostname, ...rest }: Record<string, unknown>) => {
    expect(time).toEqual(expect.any(Number));
    expect(pid).toBe(process.pid);
    expect(hostname).toEqual(expect.any(String));
    return rest;
  };

  it('the engine logs "Created flow run" and the flow run logs "Finished in state Completed()"', async () => {
    const flowName = uniqueName('get-repo-info');
    const main = flow({ name: flowName }, async () => 1);
    const run = fx.orchestrator.start(main);
    await run.result();
    const created = fx.records.filter((r) => r.component === 'tenaz.engine' && r.msg.startsWith('Created flow run'));
    expect(created.map(strip)).toEqual([
      { level: 30, component: 'tenaz.engine', flowRunId: run.id, msg: `Created flow run '${run.name}' for flow '${flowName}'` },
    ]);
    const finished = fx.records.filter((r) => r.flowRunId === run.id && r.msg.startsWith('Finished in state'));
    expect(finished.map(strip)).toEqual([
      { level: 30, flowRunId: run.id, flowRunName: run.name, flowName, msg: 'Finished in state Completed()' },
    ]);
  });

  it("a failed task's final record is at level error, names the Failed state and carries the error", async () => {
    const broken = task({ name: 'broken' }, async () => {
      throw new Error('boom');
    });
    const flowName = uniqueName('failing');
    const main = flow({ name: flowName }, async () => broken());
    const run = fx.orchestrator.start(main);
    await run.wait();
    const taskRecords = fx.records.filter((r) => r.taskRunName === 'broken-0');
    const last = taskRecords.at(-1)!;
    expect(strip(last)).toEqual({
      level: 50,
      flowRunId: run.id,
      flowRunName: run.name,
      flowName,
      taskRunId: expect.any(String),
      taskRunName: 'broken-0',
      taskName: 'broken',
      err: expect.objectContaining({ type: 'Error', message: 'boom', stack: expect.stringContaining('boom') }),
      msg: expect.stringContaining('Failed('),
    });
    expect(last.msg).toContain('boom');
    const flowFinished = fx.records.find((r) => r.flowRunId === run.id && !r.taskRunId && r.msg.startsWith('Finished in state'));
    expect(flowFinished?.level).toBe(50);
    expect(flowFinished?.msg).toContain('Failed(');
  });

  it.each(['task', 'flow'])("a retried %s run's warning names the error without its stack, which goes at debug level", async (kind) => {
    let attempts = 0;
    const failOnce = async () => {
      if (++attempts === 1) throw new Error('first attempt fails');
      return 'ok';
    };
    const flaky = task({ name: uniqueName('flaky'), retries: 1 }, failOnce);
    const main =
      kind === 'task'
        ? flow({ name: uniqueName('calls-flaky') }, async () => flaky())
        : flow({ name: uniqueName('flaky-flow'), retries: 1 }, failOnce);
    await fx.orchestrator.start(main).result();
    const warning = fx.records.find((r) => r.level === 40 && r.msg.startsWith('Encountered an exception'));
    expect(warning?.msg).toContain('Error: first attempt fails - Retry 1/1');
    expect(warning).not.toHaveProperty('err');
    const detail = fx.records.find((r) => r.level === 20 && r.msg === 'The exception of the failed attempt');
    expect(detail?.err).toEqual(expect.objectContaining({ message: 'first attempt fails', stack: expect.stringContaining('first attempt fails') }));
  });
});

describe('formatPrettyLine', () => {
  const time = new Date(2024, 0, 2, 1, 50, 4, 289).getTime();

  it('renders engine records as "HH:MM:SS.mmm | INFO    | tenaz.engine - msg"', () => {
    const line = formatPrettyLine({ time, level: 30, component: 'tenaz.engine', msg: "Created flow run 'light-potoo' for flow 'x'" }, 'msg', false);
    expect(line).toBe("01:50:04.289 | INFO    | tenaz.engine - Created flow run 'light-potoo' for flow 'x'");
  });

  it("renders flow run records as \"Flow run '<name>'\" and task run records as \"Task run '<name>'\"", () => {
    const flowRecord = { time, level: 30, flowRunName: 'light-potoo', flowRunId: 'f', msg: 'Finished in state Completed()' };
    expect(formatPrettyLine(flowRecord, 'msg', false)).toBe("01:50:04.289 | INFO    | Flow run 'light-potoo' - Finished in state Completed()");
    const taskRecord = { ...flowRecord, level: 50, taskRunName: 'call-api-0', msg: "Finished in state Failed('x')" };
    expect(formatPrettyLine(taskRecord, 'msg', false)).toBe("01:50:04.289 | ERROR   | Task run 'call-api-0' - Finished in state Failed('x')");
    expect(formatPrettyLine({ time, level: 40, taskRunName: 'y-1', msg: 'm' }, 'msg', false)).toBe("01:50:04.289 | WARNING | Task run 'y-1' - m");
  });
});

describe('run names', () => {
  it('flow runs get adjective-animal names and task runs get <task>-<n> per flow run', async () => {
    const fetchIt = task({ name: 'fetch' }, async (n: number) => n);
    const save = task({ name: 'save' }, async () => undefined);
    const taskRunNames: string[] = [];
    const main = flow({ name: uniqueName('names') }, async () => {
      const futures = [fetchIt.submit(1), fetchIt.submit(2), fetchIt.submit(3), save.submit()];
      taskRunNames.push(...futures.map((f) => f.name));
      await Promise.all(futures);
    });
    const runs = Array.from({ length: 5 }, () => fx.orchestrator.start(main));
    await Promise.all(runs.map((run) => run.result()));
    for (const run of runs) expect(run.name).toMatch(/^[a-z]+-[a-z]+$/);
    expect(taskRunNames.slice(0, 4)).toEqual(['fetch-0', 'fetch-1', 'fetch-2', 'save-0']);
    expect(taskRunNames.slice(4, 8)).toEqual(['fetch-0', 'fetch-1', 'fetch-2', 'save-0']);
  });
});
