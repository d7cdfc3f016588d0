/**
 * The worker machine: the lifecycle of one worker, from starting to stopped.
 *
 * A worker starts consuming dispatches (`Starting`), serves task runs
 * (`Serving`), and stops in one of two ways: `drain` stops taking runs and
 * waits for the running ones to finish, at most `graceMs`; `close` (or the
 * grace running out) hands what still runs back to its owners, which restart
 * it elsewhere. It is `Stopped` once nothing runs.
 *
 * Pure. The runtime supplies, through `provide()`:
 * - `startConsuming`, which answers `consuming` or `startFailed`;
 * - `stopConsuming`, after which no new run is taken;
 * - `handBack`, which aborts every running body and reports it to its owner as
 *   handed back (each then sends `run.finished` as it settles);
 * - `stopped`, on entry to the final state.
 * The runtime sends `run.taken` and `run.finished` as bodies start and settle.
 */
import { assign, setup } from 'xstate';

export interface WorkerInput {
  /** How long `drain` lets running bodies finish before handing them back, in ms. */
  graceMs: number;
}

export interface WorkerContext {
  graceMs: number;
  /** Task runs claimed and not yet settled. */
  running: number;
  /** Why the worker could not start, if it could not. */
  startError: unknown;
}

export type WorkerEvent =
  | { type: 'consuming' }
  | { type: 'startFailed'; error: unknown }
  | { type: 'run.taken' }
  | { type: 'run.finished' }
  /** Stop taking runs; let the running ones finish within `graceMs` (or the one given). */
  | { type: 'drain'; graceMs?: number }
  /** Stop now: hand the running runs back. */
  | { type: 'close' };

export const workerMachine = setup({
  types: {
    input: {} as WorkerInput,
    context: {} as WorkerContext,
    events: {} as WorkerEvent,
  },
  actions: {
    startConsuming: () => {},
    stopConsuming: () => {},
    handBack: () => {},
    stopped: () => {},
    countTaken: assign({ running: ({ context }) => context.running + 1 }),
    countFinished: assign({ running: ({ context }) => Math.max(0, context.running - 1) }),
  },
  delays: {
    grace: ({ context }) => context.graceMs,
  },
  guards: {
    idle: ({ context }) => context.running === 0,
  },
}).createMachine({
  id: 'worker',
  context: ({ input }) => ({ graceMs: input.graceMs, running: 0, startError: undefined }),
  initial: 'Starting',
  states: {
    Starting: {
      entry: 'startConsuming',
      on: {
        consuming: 'Serving',
        startFailed: { target: 'Stopping', actions: assign({ startError: ({ event }) => event.error }) },
        drain: 'Stopping',
        close: 'Stopping',
      },
    },
    Serving: {
      on: {
        'run.taken': { actions: 'countTaken' },
        'run.finished': { actions: 'countFinished' },
        drain: {
          target: 'Draining',
          actions: assign({ graceMs: ({ context, event }) => event.graceMs ?? context.graceMs }),
        },
        close: 'Stopping',
      },
    },
    Draining: {
      entry: 'stopConsuming',
      always: { guard: 'idle', target: 'Stopped' },
      after: { grace: 'Stopping' },
      on: {
        // A run may still be taken while consumers stop: it was claimed before they did.
        'run.taken': { actions: 'countTaken' },
        'run.finished': { actions: 'countFinished' },
        close: 'Stopping',
      },
    },
    Stopping: {
      entry: ['stopConsuming', 'handBack'],
      always: { guard: 'idle', target: 'Stopped' },
      on: {
        'run.taken': { actions: ['countTaken', 'handBack'] },
        'run.finished': { actions: 'countFinished' },
      },
    },
    Stopped: { type: 'final', entry: 'stopped' },
  },
});
