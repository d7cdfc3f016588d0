/**
 * Every error tenaz raises has a stable `code`; receivers branch on the code,
 * never on `instanceof` (which does not survive the wire) or on message text.
 */

export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'ILLEGAL_STATE'
  | 'CLOSED'
  | 'DRAINING'
  | 'TIMEOUT'
  | 'NO_RESPONDERS'
  | 'CANCELLED'
  | 'TASK_TIMED_OUT'
  | 'FLOW_TIMED_OUT'
  | 'PARAMETER_VALIDATION'
  | 'TASK_FAILED'
  | 'FLOW_FAILED'
  | 'UNSERIALIZABLE_RESULT'
  | 'RESTART_INTENSITY'
  | 'CRASHED'
  | 'REVISION_MISMATCH'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNKNOWN_TASK'
  | 'NATS_REQUIRED'
  | 'INVALID_MESSAGE'
  | 'CONNECTION_FAILED'
  | 'USER_ERROR'
  | 'NON_DETERMINISM'
  | 'RESULT_TOO_LARGE'
  | 'NOT_FOUND'
  | 'NESTING_TOO_DEEP'
  | 'PERMISSION_DENIED';

export interface TenazErrorOptions {
  cause?: unknown;
  /** Whether a retry policy may retry after this error. @default true */
  retryable?: boolean;
}

export class TenazError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, options: TenazErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TenazError';
    this.code = code;
    this.retryable = options.retryable ?? true;
  }
}

function defineError(name: string, code: ErrorCode, retryable: boolean) {
  return class extends TenazError {
    constructor(message: string, options: TenazErrorOptions = {}) {
      super(code, message, { retryable, ...options });
      this.name = name;
    }
  };
}

/** A bad argument to a tenaz API: thrown at once, never retried. */
export class InvalidArgumentError extends defineError('InvalidArgumentError', 'INVALID_ARGUMENT', false) {}
/**
 * A resumed flow run called its tasks in another order than before: the recorded
 * results cannot be matched to the calls, so the run fails instead of guessing.
 */
export class NonDeterminismError extends defineError('NonDeterminismError', 'NON_DETERMINISM', false) {}
/** A result larger than the durable store keeps (`maxResultBytes`). */
export class ResultTooLargeError extends defineError('ResultTooLargeError', 'RESULT_TOO_LARGE', false) {}
/** No run with that id is recorded. */
export class RunNotFoundError extends defineError('RunNotFoundError', 'NOT_FOUND', false) {}
/**
 * A flow or task was called from a chain of nested runs already 200 runs deep (`MAX_RUN_DEPTH`;
 * a run called outside any run is depth 1, and each call from a flow or task body adds one):
 * almost surely a flow or task that calls itself without end, directly or through others. The call is refused before any run is created, so it has no run and no events: it
 * throws at once (`task.submit()`, `orchestrator.start()`) or rejects (calling the flow or
 * task). Unless its body catches it, the run that made the call then fails with it, as with
 * any error its body throws, and so on up to the top-level run. Never retried.
 */
export class NestingDepthError extends defineError('NestingDepthError', 'NESTING_TOO_DEEP', false) {}
/**
 * The NATS server refused this user something tenaz needs (publishing a task run's dispatch, say):
 * the user's permissions do not allow it (see deploy/nats/auth.conf for what each role may do).
 * The message names the subject; `cause` holds the client's error, in the server's words.
 * Never retried: no retry changes a user's permissions.
 */
export class PermissionDeniedError extends defineError('PermissionDeniedError', 'PERMISSION_DENIED', false) {}
/** An operation called in a state that does not allow it. */
export class IllegalStateError extends defineError('IllegalStateError', 'ILLEGAL_STATE', false) {}
/** The orchestrator, bus or worker is closed. */
export class ClosedError extends defineError('ClosedError', 'CLOSED', false) {}
/** The orchestrator or worker is draining and takes no new work. */
export class DrainingError extends defineError('DrainingError', 'DRAINING', false) {}
/** A bus request or wait that ran out of time. */
export class TimeoutError extends defineError('TimeoutError', 'TIMEOUT', true) {}
/** A bus request to a subject nobody listens on. */
export class NoRespondersError extends defineError('NoRespondersError', 'NO_RESPONDERS', true) {}
/** The run was cancelled. */
export class CancelledError extends defineError('CancelledError', 'CANCELLED', false) {}
/** A task attempt ran past its `timeoutMs`. Retryable, as Prefect treats it. */
export class TaskTimeoutError extends defineError('TaskTimeoutError', 'TASK_TIMED_OUT', true) {}
/** A flow attempt ran past its `timeoutMs`. */
export class FlowTimeoutError extends defineError('FlowTimeoutError', 'FLOW_TIMED_OUT', true) {}
/** Flow parameters failed their schema; names the field. Never retried. */
export class ParameterValidationError extends defineError('ParameterValidationError', 'PARAMETER_VALIDATION', false) {}
/** A task or flow returned a value that cannot be serialised. Never retried. */
export class UnserializableResultError extends defineError('UnserializableResultError', 'UNSERIALIZABLE_RESULT', false) {}
/** The supervisor restarted task runs too often within its window and gave up. */
export class RestartIntensityError extends defineError('RestartIntensityError', 'RESTART_INTENSITY', false) {}
/** The infrastructure running the run failed (process closed, worker died). */
export class CrashedError extends defineError('CrashedError', 'CRASHED', true) {}
/** A message (task arguments, a result) is larger than the server takes. */
export class PayloadTooLargeError extends defineError('PayloadTooLargeError', 'PAYLOAD_TOO_LARGE', false) {}
/** A worker was handed a task it does not serve. */
export class UnknownTaskError extends defineError('UnknownTaskError', 'UNKNOWN_TASK', false) {}
/** An operation that needs a NATS connection on an orchestrator that has none. */
export class NatsRequiredError extends defineError('NatsRequiredError', 'NATS_REQUIRED', false) {}
/** A conditional store write found another revision than the one expected. */
export class RevisionMismatchError extends defineError('RevisionMismatchError', 'REVISION_MISMATCH', false) {}
/** Bytes from the wire that are not a valid tenaz message (e.g. a garbage reply to a request). */
export class InvalidMessageError extends defineError('InvalidMessageError', 'INVALID_MESSAGE', false) {}
/**
 * Could not connect to the message server; the message names the servers, `cause` holds the
 * client's error. Retryable, except when the server refused the credentials.
 */
export class ConnectionFailedError extends defineError('ConnectionFailedError', 'CONNECTION_FAILED', true) {}
/**
 * A value a user body threw that was not an Error (a string, `undefined`, ...),
 * wrapped so it has a name and a message.
 */
export class NonErrorThrownError extends defineError('NonErrorThrownError', 'USER_ERROR', true) {
  readonly thrown: unknown;
  constructor(thrown: unknown) {
    super(`a non-Error value was thrown: ${describeThrown(thrown)}`);
    this.thrown = thrown;
  }
}

function describeThrown(thrown: unknown): string {
  if (thrown === undefined) return 'undefined';
  if (typeof thrown === 'string') return JSON.stringify(thrown.length > 200 ? `${thrown.slice(0, 200)}…` : thrown);
  try {
    const text = JSON.stringify(thrown);
    return text === undefined ? String(thrown) : text.slice(0, 200);
  } catch {
    return Object.prototype.toString.call(thrown);
  }
}

/** Normalises anything thrown into an Error with a name and a message. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new NonErrorThrownError(thrown);
}

/** An error as it travels on the wire and in run state. */
export interface WireError {
  name: string;
  code: string;
  message: string;
  retryable: boolean;
  /** Where it was thrown, in the process that threw it (a worker's stack, seen in the owner's logs). */
  stack?: string;
}

const MAX_WIRE_STACK_CHARS = 4_000;

export function toWireError(thrown: unknown): WireError {
  const error = toError(thrown);
  const code = error instanceof TenazError ? error.code : 'USER_ERROR';
  const retryable = error instanceof TenazError ? error.retryable : true;
  return { name: error.name, code, message: error.message, retryable };
}

/** `toWireError`, with the stack: for errors that cross to another process, whose logs should show where they came from. */
export function toRemoteWireError(thrown: unknown): WireError {
  const wire = toWireError(thrown);
  const stack = toError(thrown).stack;
  if (typeof stack === 'string') wire.stack = stack.slice(0, MAX_WIRE_STACK_CHARS);
  return wire;
}

/**
 * An error rebuilt from its wire form: thrown in another process (a task body on a worker,
 * say), it keeps its name, code, message and stack there, and says so by its class.
 */
export class RemoteError extends TenazError {}

/** Rebuilds an Error from its wire form; `name` and `code` survive, the class does not (it is a `RemoteError`). */
export function fromWireError(wire: WireError): TenazError {
  const error = new RemoteError(wire.code as ErrorCode, wire.message, { retryable: wire.retryable });
  error.name = wire.name;
  if (typeof wire.stack === 'string') error.stack = wire.stack;
  return error;
}
