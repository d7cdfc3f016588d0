/**
 * tenaz: a fault-tolerant workflow orchestrator for TypeScript, built on the
 * actor model. The public surface, every export by name.
 */
export { flow, task, unmapped, wait, allSettled, Unmapped } from './api.js';
export type { Flow, Task, MapArgs, WaitOptions, SettledResult } from './api.js';
export { createOrchestrator, connectOrchestrator, Orchestrator, DEFAULT_HEARTBEAT_TIMEOUT_MS } from './runtime/orchestrator.js';
export type { WatchOptions } from './runtime/orchestrator.js';
export { NoHistoryError } from './history.js';
export type { HistoryOptions, Since, HistoricRunEvent } from './history.js';
export type { OrchestratorOptions, ConnectOptions, DrainOptions, EventStream, StartableFlow, DurableRunOptions, ServeFlowsOptions } from './runtime/orchestrator.js';
export type { RunAdmin, RunListFilter, FlowRunDetails, QueuedFlowRun } from './durable/run-admin.js';
export type { FlowRunRecord, TaskRunRecord, RecordedError } from './durable/records.js';
export { TaskWorker } from './remote/worker.js';
export type { WorkerOptions, WorkerDrainOptions, WorkerStats } from './remote/worker.js';
export type { NatsOption, NatsConnectOptions } from './nats/connection.js';
export { getDefaultOrchestrator, setDefaultOrchestrator } from './runtime/ambient.js';
export { getRunContext, getRunLogger } from './runtime/context.js';
export type { RunContext, FlowRunInfo, TaskRunInfo } from './runtime/context.js';
export { FlowRun, TaskFuture } from './runtime/handles.js';
export { exponentialBackoff } from './retry.js';
export type { RetryDelay, RetryDelayFn, ExponentialBackoffOptions } from './retry.js';
export type {
  TaskOptions,
  FlowOptions,
  SupervisorOptions,
  RetryOn,
  RunHook,
  HookInfo,
} from './options.js';
export { STATE_NAMES, STATE_TYPE_BY_NAME, isTerminal, formatState } from '../actors/state.js';
export type { RunState, StateName, StateType } from '../actors/state.js';
export type { RunEvent, FlowStateEvent, TaskStateEvent, EventFilter } from './events.js';
export { createRootLogger } from './log.js';
export type { LoggerOptions, LogFormat } from './log.js';
export { createMemoryBus } from './bus/memory.js';
export type { Bus, BusMessage, Delivery, Subscription, SubscribeOptions, RequestOptions } from './bus/bus.js';
export { createMemoryStore } from './store/memory.js';
export { createKvStore } from './store/kv.js';
export type { KvStore, KvStoreOptions } from './store/kv.js';
export type { Store, StoreEntry, PutOptions } from './store/store.js';
export {
  TenazError,
  RemoteError,
  InvalidArgumentError,
  IllegalStateError,
  ClosedError,
  DrainingError,
  TimeoutError,
  NoRespondersError,
  CancelledError,
  TaskTimeoutError,
  FlowTimeoutError,
  ParameterValidationError,
  UnserializableResultError,
  RestartIntensityError,
  RevisionMismatchError,
  CrashedError,
  PayloadTooLargeError,
  UnknownTaskError,
  NatsRequiredError,
  NonErrorThrownError,
  NonDeterminismError,
  NestingDepthError,
  PermissionDeniedError,
  ResultTooLargeError,
  ConnectionFailedError,
  RunNotFoundError,
  toWireError,
  fromWireError,
} from './errors.js';
export type { ErrorCode, WireError } from './errors.js';
