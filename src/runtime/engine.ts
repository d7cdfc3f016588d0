/**
 * What the per-run runtime objects share within one orchestrator: clock,
 * loggers, bus, store, subjects, the provided machines and the registries the
 * machines' implementations look runs up in.
 */
import type { Actor, AnyActorRef } from 'xstate';
import type { Logger } from 'pino';
import type { flowRunMachine } from '../../actors/flow-run.js';
import type { supervisorMachine } from '../../actors/supervisor.js';
import type { taskRunMachine } from '../../actors/task-run.js';
import type { Bus } from '../bus/bus.js';
import type { RunEvent } from '../events.js';
import type { Store } from '../store/store.js';
import type { TaskDispatcher } from '../remote/dispatcher.js';
import type { RunRecorder } from '../durable/run-recorder.js';
import type { createSubjects } from '../subjects.js';
import type { FlowRunRuntime } from './flow-run.js';
import type { Orchestrator } from './orchestrator.js';
import type { TaskRunRuntime } from './task-run.js';

export type Subjects = ReturnType<typeof createSubjects>;
export type SupervisorActor = Actor<typeof supervisorMachine>;

export interface Engine {
  readonly orchestrator: Orchestrator;
  readonly namespace: string;
  readonly logger: Logger;
  /** Lines from the engine itself: `tenaz.engine - Created flow run ...`. */
  readonly engineLogger: Logger;
  readonly bus: Bus;
  readonly store: Store;
  readonly subjects: Subjects;
  now(): number;
  random(): number;
  readonly machines: {
    readonly task: typeof taskRunMachine;
    /** For the calls of a resumed flow run: looks each up in the journal first. */
    readonly resumedTask: typeof taskRunMachine;
    readonly flow: typeof flowRunMachine;
    readonly supervisor: typeof supervisorMachine;
  };
  /**
   * The parent of the task-run actors that can never set a timer (local, without `timeoutMs`
   * or `retries`): they share its actor system instead of each making one, which halves
   * their memory. Actors that may set timers keep a system of their own: XState stops an
   * actor by scanning every timer of its system. Their errors reach it, named by the actor's
   * id (the run's), instead of each actor carrying a subscription of its own.
   */
  readonly actorParent: AnyActorRef;
  readonly taskRuns: Map<string, TaskRunRuntime>;
  readonly flowRuns: Map<string, FlowRunRuntime>;
  publishEvent(subject: string, event: RunEvent): void;
  /** Ends `Crashed` the task runs another process left in flight in a resumed run (NATS with a history only). */
  endLostTaskRuns(run: FlowRunRuntime): void;
  /** Set when runs are durable: their transitions are recorded in the store. */
  readonly durable: RunRecorder | undefined;
  /** Set when task runs execute on workers over NATS. */
  readonly remote: RemoteExecution | undefined;
}

export interface RemoteExecution {
  readonly dispatcher: TaskDispatcher;
  /** An attempt without a heartbeat for this long has crashed. */
  readonly heartbeatTimeoutMs: number;
  /** How often workers heartbeat. */
  readonly heartbeatMs: number;
  /** How long a dispatched attempt waits for a worker before a warning. */
  readonly claimWarningMs: number;
}
