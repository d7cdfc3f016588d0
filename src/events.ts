/**
 * Observer events: every transition of every flow run and task run.
 * Discriminated on `type`; every event carries the wire version `v`.
 */
import { z } from 'zod';
import { STATE_TYPE_BY_NAME, type RunState, type StateName, type StateType } from '../actors/state.js';
import type { BusMessage } from './bus/bus.js';

export const EVENT_VERSION = 1;

// Object-literal types, not interfaces extending `BusMessage`: an interface would inherit the
// bus's open index signature, so a misspelt field (`e.taskRunNmae`) would type-check as `unknown`.
// A closed object-literal type refuses it, and still has the implicit index signature that lets
// `bus.publish()` take the event as a `BusMessage`.
type RunEventBase = {
  v: typeof EVENT_VERSION;
  /** Position of this event in its run's own sequence, from 1: the order of the run's transitions. */
  seq: number;
  flowName: string | undefined;
  flowRunId: string | undefined;
  state: RunState;
  tags: string[];
};

/** A flow run changed state. */
export type FlowStateEvent = RunEventBase & {
  type: 'flow.state';
  flowName: string;
  flowRunId: string;
  flowRunName: string;
  /** Set for subflows: the flow run that called this one. */
  parentFlowRunId: string | undefined;
};

/** A task run changed state. `flowRunId` is undefined for a task called outside any flow. */
export type TaskStateEvent = RunEventBase & {
  type: 'task.state';
  taskName: string;
  taskRunId: string;
  taskRunName: string;
};

export type RunEvent = FlowStateEvent | TaskStateEvent;

/** Which events `watch()` yields; every field narrows, none means all. */
export interface EventFilter {
  flowName?: string;
  flowRunId?: string;
  kind?: 'flow' | 'task';
}

const stateNames = Object.keys(STATE_TYPE_BY_NAME) as [StateName, ...StateName[]];
const stateTypes = [...new Set(Object.values(STATE_TYPE_BY_NAME))] as [StateType, ...StateType[]];

const runStateSchema = z.object({
  type: z.enum(stateTypes),
  name: z.enum(stateNames),
  timestamp: z.number(),
  attempt: z.number().int(),
  message: z.string().nullish(),
  errorName: z.string().nullish(),
  errorCode: z.string().nullish(),
  scheduledAt: z.number().nullish(),
});

const eventBase = {
  v: z.literal(EVENT_VERSION),
  seq: z.number().int().min(1),
  // nullish: a client of another language may write absent fields as nil.
  flowName: z.string().nullish(),
  flowRunId: z.string().nullish(),
  state: runStateSchema,
  tags: z.array(z.string()).default([]),
};

const runEventSchema = z.discriminatedUnion('type', [
  z.looseObject({
    ...eventBase,
    type: z.literal('flow.state'),
    flowName: z.string(),
    flowRunId: z.string(),
    flowRunName: z.string(),
    parentFlowRunId: z.string().nullish(),
  }),
  z.looseObject({
    ...eventBase,
    type: z.literal('task.state'),
    taskName: z.string(),
    taskRunId: z.string(),
    taskRunName: z.string(),
  }),
]);

/** A run event from the bus, or `null` when the message is not one (events may come from other processes). */
export function parseRunEvent(message: BusMessage): RunEvent | null {
  const parsed = runEventSchema.safeParse(message);
  if (!parsed.success) return null;
  const event = parsed.data as unknown as RunEvent;
  // What another client wrote as nil reads as absent, as the types say.
  for (const key of OPTIONAL_STATE_FIELDS) if (event.state[key] === null) delete event.state[key];
  return event;
}

const OPTIONAL_STATE_FIELDS = ['message', 'errorName', 'errorCode', 'scheduledAt'] as const;
