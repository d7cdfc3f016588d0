import { describe, expect, it } from 'vitest';
import type { RunState } from '../../actors/state.js';
import type { FlowStateEvent, TaskStateEvent } from '../events.js';
import { createEventFormatter, formatClock } from './format-event.js';

const at = new Date(2026, 0, 2, 18, 2, 4, 289).getTime();

function flowEvent(state: Partial<RunState> = {}): FlowStateEvent {
  return {
    v: 1,
    type: 'flow.state',
    seq: 1,
    flowName: 'etl',
    flowRunId: 'run-1',
    flowRunName: 'light-potoo',
    parentFlowRunId: undefined,
    state: { type: 'RUNNING', name: 'Running', timestamp: at, attempt: 1, ...state },
    tags: [],
  };
}

/** `flowRun: null` makes a task run outside any flow. */
function taskEvent(state: Partial<RunState> = {}, flowRun: string | null = 'run-1'): TaskStateEvent {
  const flowRunId = flowRun ?? undefined;
  return {
    v: 1,
    type: 'task.state',
    seq: 2,
    flowName: flowRunId === undefined ? undefined : 'etl',
    flowRunId,
    taskName: 'double',
    taskRunId: 'task-1',
    taskRunName: 'double-3',
    state: { type: 'COMPLETED', name: 'Completed', timestamp: at + 12, attempt: 1, ...state },
    tags: [],
  };
}

describe('createEventFormatter', () => {
  it('prints a flow line with the flow and run names, and task lines with the flow run they belong to', () => {
    const format = createEventFormatter();
    expect(format(flowEvent())).toBe("18:02:04.289 | flow etl 'light-potoo' → Running");
    expect(format(taskEvent())).toBe("18:02:04.301 | task double-3 'light-potoo' → Completed");
  });

  it('names a flow run it has not seen by its id, and leaves it out for a task run outside any flow', () => {
    const format = createEventFormatter();
    expect(format(taskEvent({}, 'run-9'))).toBe("18:02:04.301 | task double-3 'run-9' → Completed");
    expect(format(taskEvent({}, null))).toBe('18:02:04.301 | task double-3 → Completed');
  });

  it('adds the attempt after the first, the retry delay, and the error of a failure on the same line', () => {
    const format = createEventFormatter();
    expect(format(taskEvent({ name: 'Running', type: 'RUNNING', attempt: 2 }))).toMatch(/→ Running \(attempt 2\)$/);
    const retry = taskEvent({ name: 'AwaitingRetry', type: 'SCHEDULED', errorName: 'Error', message: 'HTTP 503', scheduledAt: at + 212 });
    expect(format(retry)).toMatch(/→ AwaitingRetry \(retry in 200 ms\): Error: HTTP 503$/);
    const restart = taskEvent({ name: 'AwaitingRetry', type: 'SCHEDULED', errorName: 'CrashedError', errorCode: 'CRASHED', message: 'the worker running the task stopped sending heartbeats', scheduledAt: at + 12 });
    expect(format(restart)).toMatch(/→ AwaitingRetry \(crashed, restart in 0 ms\): CrashedError: the worker running the task stopped sending heartbeats$/);
    const failed = taskEvent({ name: 'Failed', type: 'FAILED', attempt: 3, errorName: 'TypeError', message: 'x is undefined\n  at body' });
    expect(format(failed)).toMatch(/→ Failed \(attempt 3\): TypeError: x is undefined at body$/);
  });

  it('colours the state name only when asked', () => {
    expect(createEventFormatter({ colorize: true })(taskEvent())).toContain('→ \u001b[32mCompleted\u001b[0m');
  });

  it('prints the whole event as one line of JSON under json', () => {
    const event = taskEvent();
    expect(JSON.parse(createEventFormatter({ json: true })(event))).toEqual(event);
  });
});


describe('formatClock', () => {
  it('pads every field', () => {
    expect(formatClock(new Date(2026, 0, 2, 3, 4, 5, 6).getTime())).toBe('03:04:05.006');
  });
});
