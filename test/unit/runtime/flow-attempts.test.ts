/**
 * The attempts of a flow run keep apart: the late end of an attempt that was given up touches
 * only the runs it started, and an attempt cancelled before its body began never runs it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createOrchestrator, flow, getRunContext, task } from '../../../src/index.js';
import { createFixture, names, recordEvents, sleep, uniqueName, type Fixture } from './helpers.js';

let fx: Fixture;

beforeEach(() => {
  fx = createFixture();
});

afterEach(async () => {
  await fx.orchestrator.close();
});

/** Waits `ms`, or rejects with the signal's reason once the run is given up. */
function abortableSleep(ms: number): Promise<void> {
  const { signal } = getRunContext();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    });
  });
}

describe('a flow run with a timeout and retries', () => {
  it("completes on its retry though the timed-out attempt's body fails later, while the retry runs", async () => {
    const step = task({ name: uniqueName('step') }, async () => {
      await sleep(100);
      return 'ok';
    });
    let attempts = 0;
    const stale = flow({ name: uniqueName('stale'), timeoutMs: 200, retries: 1 }, async () => {
      if (++attempts === 1) {
        // Ignores its signal, and fails while attempt 2's task runs.
        await sleep(250);
        throw new Error('late failure of attempt 1');
      }
      return step();
    });
    const run = fx.orchestrator.start(stale);
    expect(await run.result()).toBe('ok');
    expect((await run.wait()).attempt).toBe(2);
  });

  it('gives each attempt its full time: out of retries, the run ends TimedOut, not Failed by a cancel of the next attempt', async () => {
    const slow = task({ name: uniqueName('slow') }, async () => abortableSleep(1_000));
    const timed = flow({ name: uniqueName('timed'), timeoutMs: 150, retries: 2 }, async () => {
      await slow();
    });
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(timed);
    const state = await run.wait();
    expect(state).toMatchObject({ name: 'TimedOut', attempt: 3, errorName: 'FlowTimeoutError' });
    await sleep(20);
    // One task run per attempt, each cancelled by its own attempt's timeout.
    const tasks = recorder.taskEvents();
    expect(new Set(tasks.map((event) => event.taskRunId)).size).toBe(3);
    for (const id of new Set(tasks.map((event) => event.taskRunId))) expect(names(recorder.taskEvents(id))).toEqual(['Pending', 'Running', 'Cancelled']);
    recorder.close();
  });
});

describe('a flow run cancelled as it starts', () => {
  for (const [when, between] of [
    ['in the same turn as start()', async () => {}],
    ['one promise turn after start()', () => Promise.resolve()],
  ] as const) {
    it(`${when}: its body never runs, and it ends Cancelled with the reason`, async () => {
      const sideEffects: string[] = [];
      const charge = task({ name: uniqueName('charge') }, async () => {
        sideEffects.push('charged');
      });
      let bodies = 0;
      const checkout = flow({ name: uniqueName('checkout') }, async () => {
        bodies += 1;
        await charge();
      });
      const recorder = recordEvents(fx.orchestrator);
      const run = fx.orchestrator.start(checkout);
      await between();
      run.cancel('the user changed their mind');
      const state = await run.wait();
      await sleep(20);
      expect(state.name).toBe('Cancelled');
      expect(state.message).toContain('the user changed their mind');
      expect(bodies).toBe(0);
      expect(sideEffects).toEqual([]);
      expect(recorder.taskEvents()).toEqual([]);
      expect(names(recorder.flowEvents(run.id))).toEqual(['Pending', 'Running', 'Cancelling', 'Cancelled']);
      recorder.close();
    });
  }
});

describe('a subflow running when its orchestrator closes', () => {
  it('ends in a terminal state before close() resolves, as its parent and task runs do', async () => {
    const orchestrator = createOrchestrator({ logger: fx.logger });
    const work = task({ name: uniqueName('work') }, async () => abortableSleep(3_000));
    const child = flow({ name: uniqueName('child') }, async () => work());
    const parent = flow({ name: uniqueName('parent') }, async () => child());
    const last = new Map<string, string>();
    void (async () => {
      for await (const event of orchestrator.watch({})) {
        last.set(event.type === 'task.state' ? event.taskRunId : event.flowRunId, event.state.name);
      }
    })();
    void orchestrator.start(parent).result().catch(() => {});
    while (last.size < 3) await sleep(5);
    await orchestrator.close();
    expect([...last.values()].sort()).toEqual(['Cancelled', 'Crashed', 'Crashed']);
  });
});

describe('a flow run that times out', () => {
  // Regression: the flow published TimedOut before its task runs and subflows published their
  // ends, so that a watcher stopping at the flow's end saw them still Running.
  it('ends after its task runs and subflows, as a cancelled run does', async () => {
    const slow = task({ name: uniqueName('slow') }, async () => abortableSleep(2_000));
    const child = flow({ name: uniqueName('child') }, async () => slow());
    const timed = flow({ name: uniqueName('timed'), timeoutMs: 100 }, async () => {
      await Promise.all([slow(), child()]);
    });
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(timed);
    expect((await run.wait()).name).toBe('TimedOut');
    await sleep(20);
    const ends = recorder.events.filter((event) => ['Cancelled', 'TimedOut'].includes(event.state.name));
    expect(ends.map((event) => event.state.name)).toEqual(['Cancelled', 'Cancelled', 'Cancelled', 'TimedOut']);
    expect(ends.at(-1)).toMatchObject({ type: 'flow.state', flowRunId: run.id });
    recorder.close();
  });
});

describe('a flow run that times out with a subflow whose body ignores its signal', () => {
  it('ends after the subflow, though they have the same cancelGraceMs', async () => {
    const deaf = flow({ name: uniqueName('deaf'), cancelGraceMs: 200 }, async () => sleep(1_000));
    const timed = flow({ name: uniqueName('timed'), timeoutMs: 50, cancelGraceMs: 200 }, async () => {
      await deaf();
    });
    const recorder = recordEvents(fx.orchestrator, { kind: 'flow' });
    const run = fx.orchestrator.start(timed);
    expect((await run.wait()).name).toBe('TimedOut');
    await sleep(20);
    const ends = recorder.events.filter((event) => ['Cancelled', 'TimedOut'].includes(event.state.name));
    expect(ends.map((event) => event.state.name)).toEqual(['Cancelled', 'TimedOut']);
    recorder.close();
  });
});

describe('close() with runs in flight', () => {
  it('publishes each run end after its children: task runs, then subflows, then the runs that called them', async () => {
    const orchestrator = createOrchestrator({ logger: fx.logger });
    const work = task({ name: uniqueName('work') }, async () => abortableSleep(3_000));
    const child = flow({ name: uniqueName('child') }, async () => work());
    const parent = flow({ name: uniqueName('parent') }, async () => child());
    const ends: string[] = [];
    const started = new Set<string>();
    void (async () => {
      for await (const event of orchestrator.watch({})) {
        const who = event.type === 'task.state' ? 'task' : event.flowName.startsWith('child') ? 'child' : 'parent';
        if (event.state.name === 'Running') started.add(who);
        if (['Cancelled', 'Crashed'].includes(event.state.name)) ends.push(`${who} ${event.state.name}`);
      }
    })();
    void orchestrator.start(parent).result().catch(() => {});
    while (started.size < 3) await sleep(5);
    await orchestrator.close();
    expect(ends).toEqual(['task Cancelled', 'child Crashed', 'parent Crashed']);
  });
});
