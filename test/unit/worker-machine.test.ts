import { describe, expect, it } from 'vitest';
import { SimulatedClock, createActor } from 'xstate';
import { workerMachine } from '../../actors/worker.js';

function startWorker(graceMs = 1_000) {
  const clock = new SimulatedClock();
  const calls: string[] = [];
  const machine = workerMachine.provide({
    actions: {
      startConsuming: () => void calls.push('startConsuming'),
      stopConsuming: () => void calls.push('stopConsuming'),
      handBack: () => void calls.push('handBack'),
      stopped: () => void calls.push('stopped'),
    },
  });
  const actor = createActor(machine, { input: { graceMs }, clock }).start();
  return { actor, clock, calls };
}

describe('workerMachine', () => {
  it('starts consuming and serves, counting the runs it holds', () => {
    const { actor, calls } = startWorker();
    expect(calls).toEqual(['startConsuming']);
    actor.send({ type: 'consuming' });
    actor.send({ type: 'run.taken' });
    actor.send({ type: 'run.taken' });
    actor.send({ type: 'run.finished' });
    expect(actor.getSnapshot().value).toBe('Serving');
    expect(actor.getSnapshot().context.running).toBe(1);
  });

  it('stops at once when it could not start, keeping the reason', () => {
    const { actor, calls } = startWorker();
    actor.send({ type: 'startFailed', error: 'no JetStream' });
    expect(actor.getSnapshot().value).toBe('Stopped');
    expect(actor.getSnapshot().context.startError).toBe('no JetStream');
    expect(calls).toEqual(['startConsuming', 'stopConsuming', 'handBack', 'stopped']);
  });

  it('drains: takes no more runs, stops once the running ones finish, without handing anything back', () => {
    const { actor, calls } = startWorker();
    actor.send({ type: 'consuming' });
    actor.send({ type: 'run.taken' });
    actor.send({ type: 'drain' });
    expect(actor.getSnapshot().value).toBe('Draining');
    actor.send({ type: 'run.finished' });
    expect(actor.getSnapshot().value).toBe('Stopped');
    expect(calls).toEqual(['startConsuming', 'stopConsuming', 'stopped']);
  });

  it('drains an idle worker at once', () => {
    const { actor } = startWorker();
    actor.send({ type: 'consuming' });
    actor.send({ type: 'drain' });
    expect(actor.getSnapshot().value).toBe('Stopped');
  });

  it('hands back what still runs when the grace period ends', () => {
    const { actor, clock, calls } = startWorker(1_000);
    actor.send({ type: 'consuming' });
    actor.send({ type: 'run.taken' });
    actor.send({ type: 'drain', graceMs: 500 });
    clock.increment(499);
    expect(actor.getSnapshot().value).toBe('Draining');
    clock.increment(1);
    expect(actor.getSnapshot().value).toBe('Stopping');
    expect(calls.at(-1)).toBe('handBack');
    actor.send({ type: 'run.finished' });
    expect(actor.getSnapshot().value).toBe('Stopped');
  });

  it('closes at once: hands back, and stops when the handed-back runs have settled', () => {
    const { actor, calls } = startWorker();
    actor.send({ type: 'consuming' });
    actor.send({ type: 'run.taken' });
    actor.send({ type: 'run.taken' });
    actor.send({ type: 'close' });
    expect(calls).toEqual(['startConsuming', 'stopConsuming', 'handBack']);
    actor.send({ type: 'run.finished' });
    expect(actor.getSnapshot().value).toBe('Stopping');
    actor.send({ type: 'run.finished' });
    expect(actor.getSnapshot().value).toBe('Stopped');
  });

  it('hands back a run claimed while stopping', () => {
    const { actor, calls } = startWorker();
    actor.send({ type: 'consuming' });
    actor.send({ type: 'run.taken' });
    actor.send({ type: 'close' });
    actor.send({ type: 'run.taken' });
    expect(calls.filter((c) => c === 'handBack')).toHaveLength(2);
    actor.send({ type: 'run.finished' });
    actor.send({ type: 'run.finished' });
    expect(actor.getSnapshot().value).toBe('Stopped');
  });

  it('lets close cut a drain short', () => {
    const { actor, calls } = startWorker();
    actor.send({ type: 'consuming' });
    actor.send({ type: 'run.taken' });
    actor.send({ type: 'drain' });
    actor.send({ type: 'close' });
    expect(actor.getSnapshot().value).toBe('Stopping');
    expect(calls.at(-1)).toBe('handBack');
  });
});
