/**
 * The machines of one orchestrator, given their I/O with `provide()` once
 * (never per run: providing builds a new machine). Implementations find their
 * run by id in the engine's registries.
 */
import { assign } from 'xstate';
import { flowRunMachine } from '../../actors/flow-run.js';
import { supervisorMachine } from '../../actors/supervisor.js';
import { resumedTaskRunMachine, taskRunMachine } from '../../actors/task-run.js';
import type { Engine } from './engine.js';

type Registries = Pick<Engine, 'taskRuns' | 'flowRuns'>;

/**
 * Actions that reach other actors do so after the current action returns, so
 * that no actor runs a transition nested inside another actor's action.
 */
const afterAction = queueMicrotask;

export function provideMachines(registries: Registries): Engine['machines'] {
  const { taskRuns, flowRuns } = registries;

  // Both task-run machines are one definition with two initial states: they take the same actions.
  const provideTask = (machine: typeof taskRunMachine) =>
    machine.provide({
      actions: {
        startAttempt: ({ context }) => taskRuns.get(context.taskRunId)?.startAttempt(context.attempt),
        abortAttempt: ({ context }, params) => taskRuns.get(context.taskRunId)?.abortAttempt(params.reason),
        lookupCache: ({ context }) => taskRuns.get(context.taskRunId)?.lookupCache(),
        lookupJournal: ({ context }) => taskRuns.get(context.taskRunId)?.lookupJournal(),
        replayed: ({ context }) => taskRuns.get(context.taskRunId)?.onReplayed(context),
        publish: ({ context }, params) => taskRuns.get(context.taskRunId)?.onState(params.state, context),
        reportFailure: ({ context }) => afterAction(() => taskRuns.get(context.taskRunId)?.reportFailure(context)),
        warnUnclaimed: ({ context }) => taskRuns.get(context.taskRunId)?.warnUnclaimed(context.attempt),
      },
    });
  const task = provideTask(taskRunMachine);
  const resumedTask = provideTask(resumedTaskRunMachine);

  const flow = flowRunMachine.provide({
    actions: {
      startBody: ({ context }) => flowRuns.get(context.flowRunId)?.startBody(context.attempt),
      abortBody: ({ context }, params) => flowRuns.get(context.flowRunId)?.abortBody(params.reason),
      publish: ({ context }, params) => flowRuns.get(context.flowRunId)?.onState(params.state, context),
      // Not through afterAction: the run itself defers the cancelling, and must be found now,
      // while it is registered (a final state unregisters it before a microtask would run).
      cancelChildren: ({ context }, params) => flowRuns.get(context.flowRunId)?.cancelChildren(params.reason),
      decideRetryDelay: assign({ retryDelayMs: ({ context }) => Math.max(0, flowRuns.get(context.flowRunId)?.retryDelayMs(context) ?? 0) }),
    },
  });

  const supervisor = supervisorMachine.provide({
    actions: {
      restartChild: (_, params) => afterAction(() => taskRuns.get(params.childId)?.restart(params.delayMs)),
      giveUpChild: (_, params) => afterAction(() => taskRuns.get(params.childId)?.giveUp()),
      escalate: ({ context }, params) => afterAction(() => flowRuns.get(context.id)?.escalate(params.reason)),
    },
  });

  return { task, resumedTask, flow, supervisor };
}
