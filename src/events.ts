/**
 * Observer events: every transition of every flow run and task run.
 * Discriminated on `type`; every event carries the wire version `v`.
 */
import type { RunState } from '../actors/state.js';
import type { BusMessage } from './bus/bus.js';

export const EVENT_VERSION = 1;

interface RunEventBase extends BusMessage {
  v: typeof EVENT_VERSION;
  /** Position of this event in its run's own sequence, from 1: the order of the run's transitions. */
  seq: number;
  flowName: string | undefined;
  flowRunId: string | undefined;
  state: RunState;
  tags: string[];
}

/** A flow run changed state. */
export interface FlowStateEvent extends RunEventBase {
  type: 'flow.state';
  flowName: string;
  flowRunId: string;
  flowRunName: string;
  /** Set for subflows: the flow run that called this one. */
  parentFlowRunId: string | undefined;
}

/** A task run changed state. `flowRunId` is undefined for a task called outside any flow. */
export interface TaskStateEvent extends RunEventBase {
  type: 'task.state';
  taskName: string;
  taskRunId: string;
  taskRunName: string;
}

export type RunEvent = FlowStateEvent | TaskStateEvent;

/** Which events `watch()` yields; every field narrows, none means all. */
export interface EventFilter {
  flowName?: string;
  flowRunId?: string;
  kind?: 'flow' | 'task';
}
