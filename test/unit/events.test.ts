import { describe, expect, it } from 'vitest';
import { parseRunEvent } from '../../src/events.js';

const taskEvent = {
  v: 1,
  type: 'task.state',
  seq: 2,
  flowName: 'etl',
  flowRunId: 'run-1',
  taskName: 'load',
  taskRunId: 'task-1',
  taskRunName: 'load-0',
  state: { type: 'RUNNING', name: 'Running', timestamp: 1, attempt: 1 },
  tags: [],
};

describe('parseRunEvent', () => {
  it('accepts flow and task events', () => {
    expect(parseRunEvent(taskEvent)).toMatchObject({ taskRunId: 'task-1', state: { name: 'Running' } });
    const flowEvent = { ...taskEvent, type: 'flow.state', flowRunName: 'light-potoo', parentFlowRunId: undefined };
    expect(parseRunEvent(flowEvent)).toMatchObject({ type: 'flow.state', flowRunName: 'light-potoo' });
  });

  it('reads fields another client wrote as nil as absent', () => {
    const event = parseRunEvent({ ...taskEvent, flowName: null, flowRunId: null, state: { ...taskEvent.state, message: null, errorName: null } });
    expect(event?.state).not.toHaveProperty('message');
    expect(event?.state).not.toHaveProperty('errorName');
  });

  it('rejects what is not a run event', () => {
    for (const garbage of [
      { v: 1, type: 'task.state' },
      { ...taskEvent, v: 2 },
      { ...taskEvent, seq: 0 },
      { ...taskEvent, type: 'task.log' },
      { ...taskEvent, state: { ...taskEvent.state, name: 'Exploded' } },
      { ...taskEvent, state: null },
      { ...taskEvent, taskRunId: 7 },
    ]) {
      expect(parseRunEvent(garbage as never), JSON.stringify(garbage)).toBeNull();
    }
  });
});
