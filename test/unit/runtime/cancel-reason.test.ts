/**
 * QA round 7, finding 5: the reason a task run is cancelled for (given to `TaskFuture.cancel`,
 * or passed down by its flow run) is kept, as a flow run keeps its own: in the `Cancelled`
 * state's message, in the `CancelledError` its caller gets and in its body's abort reason.
 * A subflow passes the reason it was given on to its own runs.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CancelledError, flow, getRunContext, task, type RunState, type TaskFuture } from '../../../src/index.js';
import { abortableSleep, createFixture, recordEvents, uniqueName, type Fixture } from './helpers.js';

let fx: Fixture;

beforeEach(() => {
  fx = createFixture();
});

afterEach(async () => {
  await fx.orchestrator.close();
});

/** A task that waits `ms`, or rejects with its signal's reason once cancelled; `aborted` gets that reason. */
function napTask(ms = 5_000, aborted: unknown[] = []) {
  return task({ name: uniqueName('nap') }, async () => {
    const { signal } = getRunContext();
    await abortableSleep(ms, signal).catch((reason: unknown) => {
      aborted.push(reason);
      throw reason;
    });
  });
}

/** What a flow saw of a task run it submitted and then cancelled, 20 ms later, with `cancel`. */
async function cancelSubmitted(nap: ReturnType<typeof napTask>, cancel: (future: TaskFuture<void>) => void) {
  let seen: { name: string; state: RunState; error: unknown } | undefined;
  const caller = flow({ name: uniqueName('caller') }, async () => {
    const future = nap.submit();
    setTimeout(() => cancel(future), 20);
    const state = await future.wait();
    seen = { name: future.name, state, error: await future.result().catch((e: unknown) => e) };
  });
  await fx.orchestrator.start(caller).result();
  return seen!;
}

describe("a task run's cancel reason", () => {
  it('is in the Cancelled state, the CancelledError the caller gets and the reason its body is aborted with', async () => {
    const aborted: unknown[] = [];
    const { name, state, error } = await cancelSubmitted(napTask(5_000, aborted), (future) => future.cancel('lost the race'));

    expect(state).toMatchObject({ name: 'Cancelled', errorCode: 'CANCELLED', message: 'task run was cancelled: lost the race' });
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).code).toBe('CANCELLED');
    expect((error as Error).message).toBe(`task run '${name}' was cancelled: lost the race`);
    expect(aborted).toHaveLength(1);
    expect(aborted[0]).toBeInstanceOf(CancelledError);
    expect((aborted[0] as Error).message).toBe(`task run '${name}' was cancelled: lost the race`);
  });

  it('is left out when the cancel gave none, as for a flow run', async () => {
    const { name, state, error } = await cancelSubmitted(napTask(), (future) => future.cancel());

    expect(state).toMatchObject({ name: 'Cancelled', message: 'task run was cancelled' });
    expect((error as Error).message).toBe(`task run '${name}' was cancelled`);
  });

  it("is the first cancel's: a later cancel of the ended run changes nothing", async () => {
    const { name, state, error } = await cancelSubmitted(napTask(), (future) => {
      future.cancel('first');
      future.cancel('second');
    });

    expect(state.message).toBe('task run was cancelled: first');
    expect((error as Error).message).toBe(`task run '${name}' was cancelled: first`);
  });

  it("is the flow run's timeout when the flow run times out", async () => {
    const nap = napTask();
    const timed = flow({ name: uniqueName('timed'), timeoutMs: 100 }, async () => nap());
    const recorder = recordEvents(fx.orchestrator);
    expect(await fx.orchestrator.start(timed).wait()).toMatchObject({ name: 'TimedOut' });
    const ended = await recorder.untilTaskEnds();

    expect(ended.state).toMatchObject({ name: 'Cancelled', message: 'task run was cancelled: flow run timed out' });
    recorder.close();
  });
});

// Pass once the flow-run machine's `Cancelling` entry gives `cancelChildren` the reason of the
// cancel that led there (it gave 'cancelled', whatever the reason).
describe('a cancel reason passed down through subflows', () => {
  it("reaches a flow run's task runs when the flow run is cancelled with a reason", async () => {
    const nap = napTask();
    const waits = flow({ name: uniqueName('waits'), cancelGraceMs: 1_000 }, async () => nap());
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(waits);
    await recorder.until((event) => event.type === 'task.state' && event.state.name === 'Running');
    run.cancel('the operator stopped it');
    expect(await run.wait()).toMatchObject({ name: 'Cancelled', message: 'flow run was cancelled: the operator stopped it' });
    const ended = await recorder.untilTaskEnds();

    expect(ended.state).toMatchObject({ name: 'Cancelled', message: 'task run was cancelled: the operator stopped it' });
    recorder.close();
  });

  it('reaches every level of top > mid > leaf when top times out', async () => {
    const nap = napTask();
    const [leafName, midName] = [uniqueName('leaf'), uniqueName('mid')];
    const leaf = flow({ name: leafName }, async () => nap());
    const mid = flow({ name: midName }, async () => leaf());
    const top = flow({ name: uniqueName('top'), timeoutMs: 200 }, async () => mid());
    const recorder = recordEvents(fx.orchestrator);
    expect(await fx.orchestrator.start(top).wait()).toMatchObject({ name: 'TimedOut' });
    const ended = (flowName: string) =>
      recorder.until((event) => event.type === 'flow.state' && event.flowName === flowName && event.state.name === 'Cancelled');

    expect((await ended(midName)).state.message).toBe('flow run was cancelled: flow run timed out');
    expect((await ended(leafName)).state.message).toBe('flow run was cancelled: flow run timed out');
    expect((await recorder.untilTaskEnds()).state).toMatchObject({ name: 'Cancelled', message: 'task run was cancelled: flow run timed out' });
    recorder.close();
  });
});
