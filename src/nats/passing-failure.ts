/**
 * Failures of NATS operations that only say the server is away for now: worth
 * trying again, and routine enough to log in one line, without a stack.
 */
import { PermissionDeniedError, TenazError } from '../errors.js';

/**
 * Whether a failed NATS operation says only that the server is away for now (timed out,
 * nobody answered, JetStream not back yet after a restart): worth trying again, and routine
 * enough to log without a stack. A connection closed for good is not, nor is anything else.
 */
export function isPassingFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof TenazError) return error.code === 'TIMEOUT' || error.code === 'NO_RESPONDERS';
  if (PASSING_ERROR_NAMES.has(error.name)) return true;
  // nats.js wraps a request's timeout or missing responders in a RequestError.
  if (error.name === 'RequestError' && error.cause !== undefined) return isPassingFailure(error.cause);
  // JetStream answers 503 for a while after the server starts again.
  return (error.name === 'JetStreamApiError' || error.name === 'JetStreamError') && /temporarily unavailable|no responders|timeout/i.test(error.message);
}

/** nats.js's errors of a server away for now (`NoResponders` is the name of its NoRespondersError). */
const PASSING_ERROR_NAMES = new Set(['TimeoutError', 'NoResponders', 'NoRespondersError']);

/** `Name: message`, for a log line that needs no stack. */
export function describeFailure(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** nats.js's errors of a connection that is closing or closed: expected on the way out. */
const CLOSING_ERROR_NAMES = new Set(['ClosedConnectionError', 'DrainingConnectionError']);

/** Whether `error` says only that the connection (or tenaz's bus over it) is closing or closed. */
export function isClosingFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof TenazError) return error.code === 'CLOSED' || error.code === 'DRAINING';
  if (CLOSING_ERROR_NAMES.has(error.name)) return true;
  return error.name === 'RequestError' && (isClosingFailure(error.cause) || /connection (closed|draining)/i.test(error.message));
}

/**
 * The log fields for a failed NATS operation: a routine one (the server away for now, the
 * connection closing) in one line as `reason`; anything else as `err`, with its stack.
 */
export function failureFields(error: unknown): { reason: string } | { err: unknown } {
  // A refused permission is the user's role, not a bug: its stack would say nothing more.
  return isPassingFailure(error) || isClosingFailure(error) || isRefusedPermission(error) ? { reason: describeFailure(error) } : { err: error };
}

/**
 * The server refusing this user the operation, when `error` is that or has it as a cause:
 * its permissions, which no retry changes. The returned error's message is the server's words.
 */
export function refusedPermission(error: unknown): Error | undefined {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth += 1) {
    if (cause.name === 'PermissionViolationError' || /^Permissions Violation/i.test(cause.message)) return cause;
  }
  return undefined;
}

/** Whether `error` (or its cause) is the server refusing this user the operation. */
export function isRefusedPermission(error: unknown): boolean {
  return refusedPermission(error) !== undefined;
}

/**
 * `error` as a `PermissionDeniedError` naming what the server refused this user, when it is
 * (or has as a cause) such a refusal; undefined for any other error. The original error is
 * kept as the `cause`, so `refusedPermission` still finds the server's words in it.
 */
export function toPermissionDenied(error: unknown): PermissionDeniedError | undefined {
  if (error instanceof PermissionDeniedError) return error;
  const refusal = refusedPermission(error);
  if (refusal === undefined) return undefined;
  // The server's words: `Permissions Violation for Publish to "<subject>"` (or `Subscription to`).
  const match = /(Publish|Subscription) to "(\S+)"/i.exec(refusal.message);
  const verb = match?.[1]?.toLowerCase() === 'subscription' ? 'subscribe to' : 'publish to';
  const where = match?.[2] === undefined ? 'a subject it needs' : `'${match[2]}'`;
  return new PermissionDeniedError(`the NATS user is not allowed to ${verb} ${where}; see deploy/nats/auth.conf for what each role may do`, { cause: error });
}

/**
 * A publish the server refused this user, from a connection's error status: the subject (the
 * server names nothing else, so every publish waiting on it is refused alike) and the error
 * to fail them with. `undefined` for any other status error.
 */
export function refusedPublish(error: unknown): { subject: string; error: PermissionDeniedError } | undefined {
  const refusal = refusedPermission(error) as (Error & { operation?: unknown; subject?: unknown }) | undefined;
  if (refusal === undefined || refusal.operation !== 'publish' || typeof refusal.subject !== 'string') return undefined;
  return { subject: refusal.subject, error: toPermissionDenied(refusal)! };
}

/** Whether the server (or nats.js before it) refused a message for being over `max_payload`: no retry makes it smaller. */
export function isPayloadTooLarge(error: unknown): boolean {
  return /max_payload|maximum payload/i.test(String((error as Error | undefined)?.message ?? ''));
}
