/**
 * The workloads W1-W3, each written for every system measured side by side:
 * tenaz embedded, plain async functions (the floor) and raw XState.
 *
 * W1 chain:   FLOWS flows of three chained tasks, IN_FLIGHT flows at a time.
 * W2 fan-out: one flow fanning out FAN_OUT tasks.
 * W3 retry:   FLOWS flows whose one task fails once, then succeeds.
 */
import { assign, createActor, fromPromise, setup, type AnyActorLogic } from 'xstate';
import { flow, task, type Orchestrator } from '../src/index.js';

export interface Workload {
  /** Task runs per unit (a flow). */
  tasksPerFlow: number;
  flows: number;
  inFlight: number;
  /** Runs one flow; resolves when it is done. */
  runFlow(i: number): Promise<unknown>;
}

export const W1_FLOWS = 10_000;
export const W2_FAN_OUT = 10_000;
export const W3_FLOWS = 10_000;
export const IN_FLIGHT = 100;

// ---- tenaz ----------------------------------------------------------------

const increment = task({ name: 'increment' }, async (x: number) => x + 1);
const chain = flow({ name: 'chain' }, async (x: number) => increment(await increment(await increment(x))));
const fanOut = flow({ name: 'fan-out' }, async (n: number) => {
  const results = await Promise.all(increment.map(Array.from({ length: n }, (_, i) => i)));
  return results.length;
});

const failedOnce = new Set<number>();
const failsOnce = task({ name: 'fails-once', retries: 1 }, async (x: number) => {
  if (!failedOnce.has(x)) {
    failedOnce.add(x);
    throw new Error('first attempt fails');
  }
  return x;
});
const retrying = flow({ name: 'retrying' }, async (x: number) => failsOnce(x));

export function tenazWorkloads(orchestrator: Orchestrator) {
  return {
    w1: { tasksPerFlow: 3, flows: W1_FLOWS, inFlight: IN_FLIGHT, runFlow: (i) => orchestrator.start(chain, i).result() },
    w2: { tasksPerFlow: W2_FAN_OUT, flows: 1, inFlight: 1, runFlow: () => orchestrator.start(fanOut, W2_FAN_OUT).result() },
    w3: {
      tasksPerFlow: 1,
      flows: W3_FLOWS,
      inFlight: IN_FLIGHT,
      runFlow: (i) => {
        failedOnce.delete(i);
        return orchestrator.start(retrying, i).result();
      },
    },
  } satisfies Record<string, Workload>;
}

// ---- plain async functions (the floor) --------------------------------------

const plainIncrement = async (x: number) => x + 1;

export function plainWorkloads() {
  const failed = new Set<number>();
  const plainFailsOnce = async (x: number) => {
    if (!failed.has(x)) {
      failed.add(x);
      throw new Error('first attempt fails');
    }
    return x;
  };
  return {
    w1: { tasksPerFlow: 3, flows: W1_FLOWS, inFlight: IN_FLIGHT, runFlow: async (i) => plainIncrement(await plainIncrement(await plainIncrement(i))) },
    w2: {
      tasksPerFlow: W2_FAN_OUT,
      flows: 1,
      inFlight: 1,
      runFlow: async () => (await Promise.all(Array.from({ length: W2_FAN_OUT }, (_, i) => plainIncrement(i)))).length,
    },
    w3: {
      tasksPerFlow: 1,
      flows: W3_FLOWS,
      inFlight: IN_FLIGHT,
      runFlow: async (i) => {
        failed.delete(i);
        for (let attempt = 1; ; attempt++) {
          try {
            return await plainFailsOnce(i);
          } catch (error) {
            if (attempt > 1) throw error;
          }
        }
      },
    },
  } satisfies Record<string, Workload>;
}

// ---- raw XState -------------------------------------------------------------

const step = fromPromise<number, number>(async ({ input }) => input + 1);

/** A flow machine invoking one `fromPromise` child per task: how one would write W1 in plain XState. */
const rawChainMachine = setup({ actors: { step }, types: { context: {} as { value: number }, input: {} as number } }).createMachine({
  context: ({ input }) => ({ value: input }),
  initial: 'first',
  states: {
    first: { invoke: { src: 'step', input: ({ context }) => context.value, onDone: { target: 'second', actions: assign({ value: ({ event }) => event.output }) } } },
    second: { invoke: { src: 'step', input: ({ context }) => context.value, onDone: { target: 'third', actions: assign({ value: ({ event }) => event.output }) } } },
    third: { invoke: { src: 'step', input: ({ context }) => context.value, onDone: { target: 'done', actions: assign({ value: ({ event }) => event.output }) } } },
    done: { type: 'final' },
  },
});

function runToCompletion(logic: AnyActorLogic, input?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const actor = createActor(logic, { input });
    actor.subscribe({ complete: () => resolve(actor.getSnapshot().output), error: reject });
    actor.start();
  });
}

export function rawXStateWorkloads() {
  const failed = new Set<number>();
  const flaky = fromPromise<number, number>(async ({ input }) => {
    if (!failed.has(input)) {
      failed.add(input);
      throw new Error('first attempt fails');
    }
    return input;
  });
  /** A flow machine whose one invoked task is re-entered once on error. */
  const rawRetryMachine = setup({ actors: { flaky }, types: { context: {} as { value: number; attempt: number }, input: {} as number } }).createMachine({
    context: ({ input }) => ({ value: input, attempt: 1 }),
    initial: 'running',
    states: {
      running: {
        invoke: {
          src: 'flaky',
          input: ({ context }) => context.value,
          onDone: 'done',
          onError: [
            { guard: ({ context }) => context.attempt < 2, target: 'running', reenter: true, actions: assign({ attempt: ({ context }) => context.attempt + 1 }) },
            { target: 'failed' },
          ],
        },
      },
      done: { type: 'final' },
      failed: { type: 'final' },
    },
  });
  return {
    w1: { tasksPerFlow: 3, flows: W1_FLOWS, inFlight: IN_FLIGHT, runFlow: (i) => runToCompletion(rawChainMachine, i) },
    // A machine holding 10,000 children redoes work per child (about 170 tasks/s here), so the
    // fan-out baseline is the faster way: one root actor per task.
    w2: {
      tasksPerFlow: W2_FAN_OUT,
      flows: 1,
      inFlight: 1,
      runFlow: async () => (await Promise.all(Array.from({ length: W2_FAN_OUT }, (_, i) => runToCompletion(step, i)))).length,
    },
    w3: {
      tasksPerFlow: 1,
      flows: W3_FLOWS,
      inFlight: IN_FLIGHT,
      runFlow: (i) => {
        failed.delete(i);
        return runToCompletion(rawRetryMachine, i);
      },
    },
  } satisfies Record<string, Workload>;
}

/** One `createActor` of a `fromPromise` per task, chained: the lightest use of XState actors. */
export function rawActorPerTaskW1(): Workload {
  return {
    tasksPerFlow: 3,
    flows: W1_FLOWS,
    inFlight: IN_FLIGHT,
    runFlow: async (i) => {
      const a = (await runToCompletion(step, i)) as number;
      const b = (await runToCompletion(step, a)) as number;
      return runToCompletion(step, b);
    },
  };
}
