/**
 * The state vocabulary shared by flow runs and task runs, named as Prefect
 * users know it. Each state name belongs to one state type.
 */

export const STATE_TYPE_BY_NAME = {
  Scheduled: 'SCHEDULED',
  Pending: 'PENDING',
  Running: 'RUNNING',
  AwaitingRetry: 'SCHEDULED',
  Retrying: 'RUNNING',
  Completed: 'COMPLETED',
  Cached: 'COMPLETED',
  Failed: 'FAILED',
  TimedOut: 'FAILED',
  Crashed: 'CRASHED',
  Cancelling: 'CANCELLING',
  Cancelled: 'CANCELLED',
  Paused: 'PAUSED',
} as const;

export type StateName = keyof typeof STATE_TYPE_BY_NAME;
export type StateType = (typeof STATE_TYPE_BY_NAME)[StateName];

export const STATE_NAMES = Object.keys(STATE_TYPE_BY_NAME) as StateName[];

/** States a run never leaves. */
export const TERMINAL_STATE_NAMES: ReadonlySet<StateName> = new Set<StateName>([
  'Completed',
  'Cached',
  'Failed',
  'TimedOut',
  'Crashed',
  'Cancelled',
]);

export function isStateName(value: unknown): value is StateName {
  return typeof value === 'string' && Object.hasOwn(STATE_TYPE_BY_NAME, value);
}

export function isTerminal(name: StateName): boolean {
  return TERMINAL_STATE_NAMES.has(name);
}

/** Why a run attempt ended without a result. */
export type FailureKind = 'error' | 'timeout' | 'crash';

/** A run error as kept in state and sent on the wire (see `WireError` in src/errors.ts). */
export interface StateError {
  name: string;
  code: string;
  message: string;
  retryable: boolean;
}

/**
 * The failure of a run ended by a cancel: `cancelled`, with the cancel's reason in its message
 * when it gave one that says more than the word itself.
 */
export function cancelledFailure(cancelled: StateError, reason: string | undefined): { kind: 'error'; error: StateError } {
  if (reason === undefined || reason === '' || reason === 'cancelled') return { kind: 'error', error: cancelled };
  return { kind: 'error', error: { ...cancelled, message: `${cancelled.message}: ${reason}` } };
}

/** One state of a run, as published in events and kept in the run's history. */
export interface RunState {
  type: StateType;
  name: StateName;
  /** Milliseconds since the epoch, from the runtime's clock. */
  timestamp: number;
  /** Attempt number, from 1. */
  attempt: number;
  /** Failure message, or a note (e.g. the retry delay). */
  message?: string;
  /** The error's class name for failures. */
  errorName?: string;
  /** The error's stable code for failures. */
  errorCode?: string;
  /** For `AwaitingRetry`: when the next attempt starts, ms since the epoch. */
  scheduledAt?: number;
}

/** `Completed()`, `Failed('boom')`: how states print in log lines, as Prefect prints them. */
export function formatState(state: Pick<RunState, 'name' | 'message'>): string {
  return state.message === undefined ? `${state.name}()` : `${state.name}('${state.message}')`;
}
