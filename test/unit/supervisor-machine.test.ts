import { describe, it, expect } from 'vitest';
import { createActor } from 'xstate';
import { supervisorMachine, type ChildFailedEvent, type SupervisorInput } from '../../actors/supervisor.js';
import type { StateError } from '../../actors/state.js';

const boom: StateError = { name: 'Error', code: 'BOOM', message: 'boom', retryable: true };

/** Starts a supervisor whose actions only record their calls. */
function startSupervisor(input: Partial<SupervisorInput> = {}) {
  const restarted: { childId: string; delayMs: number }[] = [];
  const givenUp: string[] = [];
  const escalations: string[] = [];
  const machine = supervisorMachine.provide({
    actions: {
      restartChild: (_, params) => void restarted.push(params),
      giveUpChild: (_, params) => void givenUp.push(params.childId),
      escalate: (_, params) => void escalations.push(params.reason),
    },
  });
  const actor = createActor(machine, { input: { id: 'flow-1', maxRestarts: 10, windowMs: 1_000, ...input } });
  actor.start();
  return { actor, restarted, givenUp, escalations };
}

/** A first failure by error of child `task-a` at t=0, with budget to spare unless overridden. */
function childFailed(overrides: Partial<Omit<ChildFailedEvent, 'type'>> = {}): ChildFailedEvent {
  return {
    type: 'child.failed',
    childId: 'task-a',
    kind: 'error',
    error: boom,
    retryable: true,
    failures: 1,
    crashes: 0,
    retries: 3,
    crashRestarts: 1,
    delayMs: 100,
    at: 0,
    ...overrides,
  };
}

describe('supervisorMachine', () => {
  describe('retry budget', () => {
    it('restarts a child within its retries with the delay its policy gave', () => {
      const { actor, restarted, givenUp } = startSupervisor();
      actor.send(childFailed({ failures: 1, delayMs: 250 }));
      actor.send(childFailed({ failures: 2, delayMs: 500, at: 10 }));
      actor.send(childFailed({ failures: 3, delayMs: 0, at: 20 }));

      expect(restarted).toEqual([
        { childId: 'task-a', delayMs: 250 },
        { childId: 'task-a', delayMs: 500 },
        { childId: 'task-a', delayMs: 0 },
      ]);
      expect(givenUp).toEqual([]);
      expect(actor.getSnapshot().context.restartTimes).toEqual([0, 10, 20]);
    });

    it('gives a child up once its failures exceed its retries', () => {
      const { actor, restarted, givenUp } = startSupervisor();
      actor.send(childFailed({ failures: 4, retries: 3 }));

      expect(givenUp).toEqual(['task-a']);
      expect(restarted).toEqual([]);
    });

    it('gives a child up after one failure when it has no retries', () => {
      const { actor, restarted, givenUp } = startSupervisor();
      actor.send(childFailed({ failures: 1, retries: 0 }));

      expect(givenUp).toEqual(['task-a']);
      expect(restarted).toEqual([]);
    });

    it('gives a child up at once on a non-retryable error', () => {
      const { actor, restarted, givenUp } = startSupervisor();
      actor.send(childFailed({ retryable: false, failures: 1, retries: 5 }));

      expect(givenUp).toEqual(['task-a']);
      expect(restarted).toEqual([]);
    });

    it('spends the retries budget on timeouts as on errors', () => {
      const { actor, restarted, givenUp } = startSupervisor();
      actor.send(childFailed({ kind: 'timeout', failures: 1, retries: 1 }));
      actor.send(childFailed({ kind: 'timeout', failures: 2, retries: 1, at: 10 }));

      expect(restarted).toEqual([{ childId: 'task-a', delayMs: 100 }]);
      expect(givenUp).toEqual(['task-a']);
    });

    it('restarts crashes from the crashRestarts budget, whatever the retries', () => {
      const { actor, restarted, givenUp } = startSupervisor();
      actor.send(childFailed({ kind: 'crash', crashes: 1, crashRestarts: 2, failures: 0, retries: 0 }));
      actor.send(childFailed({ kind: 'crash', crashes: 2, crashRestarts: 2, failures: 0, retries: 0, at: 10 }));
      expect(restarted).toHaveLength(2);
      expect(givenUp).toEqual([]);

      actor.send(childFailed({ kind: 'crash', crashes: 3, crashRestarts: 2, failures: 0, retries: 5, at: 20 }));
      expect(givenUp).toEqual(['task-a']);
      expect(restarted).toHaveLength(2);
    });

    it('keeps a crash budget apart from spent retries', () => {
      const { actor, restarted, givenUp } = startSupervisor();
      actor.send(childFailed({ kind: 'crash', crashes: 1, crashRestarts: 1, failures: 3, retries: 3 }));
      actor.send(childFailed({ kind: 'error', crashes: 1, crashRestarts: 1, failures: 4, retries: 3, at: 10 }));

      expect(restarted).toEqual([{ childId: 'task-a', delayMs: 100 }]);
      expect(givenUp).toEqual(['task-a']);
    });

    it('does not count a child given up for its budget as a restart', () => {
      const { actor, restarted, escalations } = startSupervisor({ maxRestarts: 1 });
      actor.send(childFailed({ childId: 'task-a', failures: 2, retries: 1 }));
      expect(actor.getSnapshot().context.restartTimes).toEqual([]);

      actor.send(childFailed({ childId: 'task-b', at: 10 }));
      expect(restarted).toEqual([{ childId: 'task-b', delayMs: 100 }]);
      expect(escalations).toEqual([]);
      expect(actor.getSnapshot().value).toBe('Supervising');
    });
  });

  describe('restart intensity', () => {
    /** Three restarts of three children at t=0, 10 and 20 under maxRestarts 3 within 1000 ms. */
    function startAtLimit() {
      const supervisor = startSupervisor({ maxRestarts: 3, windowMs: 1_000 });
      for (const [i, at] of [0, 10, 20].entries()) {
        supervisor.actor.send(childFailed({ childId: `task-${i}`, at }));
      }
      expect(supervisor.restarted).toHaveLength(3);
      return supervisor;
    }

    it('escalates and gives the child up when a restart would exceed maxRestarts within the window', () => {
      const { actor, restarted, givenUp, escalations } = startAtLimit();
      actor.send(childFailed({ childId: 'task-3', at: 30 }));

      expect(escalations).toEqual([expect.stringMatching(/\S/)]);
      expect(givenUp).toEqual(['task-3']);
      expect(restarted).toHaveLength(3);
      const snapshot = actor.getSnapshot();
      expect(snapshot.value).toBe('Escalated');
      expect(snapshot.context.escalation).toBe(escalations[0]);
    });

    it('restarts instead once the earlier restarts have slid out of the window', () => {
      const { actor, restarted, givenUp, escalations } = startAtLimit();
      actor.send(childFailed({ childId: 'task-3', at: 1_100 }));

      expect(escalations).toEqual([]);
      expect(givenUp).toEqual([]);
      expect(restarted.at(-1)).toEqual({ childId: 'task-3', delayMs: 100 });
      expect(actor.getSnapshot().value).toBe('Supervising');
      expect(actor.getSnapshot().context.restartTimes).toEqual([1_100]);
    });

    it('counts only the restarts still inside the window', () => {
      const { actor, restarted, escalations } = startAtLimit();
      // At t=1005 the restart at t=0 has left the window; those at 10 and 20 have not.
      actor.send(childFailed({ childId: 'task-3', at: 1_005 }));
      expect(restarted).toHaveLength(4);
      expect(actor.getSnapshot().context.restartTimes).toEqual([10, 20, 1_005]);

      actor.send(childFailed({ childId: 'task-4', at: 1_006 }));
      expect(escalations).toHaveLength(1);
      expect(actor.getSnapshot().value).toBe('Escalated');
    });

    it('counts repeated restarts of a single child against the limit', () => {
      const { actor, restarted, escalations } = startSupervisor({ maxRestarts: 2, windowMs: 1_000 });
      actor.send(childFailed({ failures: 1, at: 0 }));
      actor.send(childFailed({ failures: 2, at: 10 }));
      actor.send(childFailed({ failures: 3, at: 20 }));

      expect(restarted).toHaveLength(2);
      expect(escalations).toHaveLength(1);
    });

    it('gives up every child that fails after escalating, within budget or not', () => {
      const { actor, restarted, givenUp, escalations } = startAtLimit();
      actor.send(childFailed({ childId: 'task-3', at: 30 }));
      actor.send(childFailed({ childId: 'task-4', at: 5_000 }));
      actor.send(childFailed({ childId: 'task-5', kind: 'crash', crashes: 1, at: 10_000 }));
      actor.send(childFailed({ childId: 'task-6', failures: 9, retries: 1, at: 20_000 }));

      expect(givenUp).toEqual(['task-3', 'task-4', 'task-5', 'task-6']);
      expect(restarted).toHaveLength(3);
      expect(escalations).toHaveLength(1);
      expect(actor.getSnapshot().value).toBe('Escalated');
    });

    it('gives up a child out of budget without escalating even at the limit', () => {
      const { actor, givenUp, escalations } = startAtLimit();
      actor.send(childFailed({ childId: 'task-3', retryable: false, at: 30 }));

      expect(givenUp).toEqual(['task-3']);
      expect(escalations).toEqual([]);
      expect(actor.getSnapshot().value).toBe('Supervising');
    });
  });
});
