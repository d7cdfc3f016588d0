/**
 * Hand-written checks of the wire messages every task run sends several of:
 * what a worker sends its owner (claim, heartbeat, outcome), the dispatch a
 * worker takes, and the owner's replies. Each accepts exactly what its zod
 * schema in `messages.ts` accepts (the schemas stay the specification, and a
 * test holds the two together), and returns a fresh object with only the
 * fields of the schema, as zod does. They cost a fraction of a generic
 * schema walk, which the owner pays several times per task run.
 */
import type { BusMessage } from '../bus/bus.js';
import {
  MAX_BATCH_ITEMS,
  WIRE_VERSION,
  type BatchReply,
  type ClaimReply,
  type OutcomeReply,
  type TaskBatch,
  type TaskClaim,
  type TaskDispatch,
  type TaskOutcome,
  type ToOwner,
} from './messages.js';

/** Bounds of the schemas in `messages.ts`. */
const MAX_ID_LENGTH = 200;
const MAX_STACK_LENGTH = 10_000;
const MAX_HEARTBEAT_RUNS = 100_000;

type WireError = Extract<TaskOutcome, { ok: false }>['error'];

/** A message a worker sends an owner, or `null` when it is not one (`toOwnerSchema`). */
export function parseToOwner(message: BusMessage): ToOwner | null {
  if (message.v !== WIRE_VERSION) return null;
  switch (message.type) {
    case 'task.claim':
      return parseClaim(message);
    case 'task.outcome':
      return parseOutcome(message);
    case 'task.batch': {
      const { items } = message;
      if (!Array.isArray(items) || items.length === 0 || items.length > MAX_BATCH_ITEMS) return null;
      const parsed: TaskBatch['items'] = [];
      for (let i = 0; i < items.length; i++) {
        const item: unknown = items[i];
        if (!isRecord(item) || item.v !== WIRE_VERSION) return null;
        const one = item.type === 'task.claim' ? parseClaim(item) : item.type === 'task.outcome' ? parseOutcome(item) : null;
        if (one === null) return null;
        parsed.push(one);
      }
      return { v: WIRE_VERSION, type: 'task.batch', items: parsed };
    }
    case 'task.heartbeat': {
      const { workerId, runs } = message;
      if (!isId(workerId) || !Array.isArray(runs) || runs.length > MAX_HEARTBEAT_RUNS) return null;
      for (let i = 0; i < runs.length; i++) {
        const run: unknown = runs[i];
        if (!Array.isArray(run) || run.length !== 2 || !isId(run[0]) || !isAttempt(run[1])) return null;
      }
      // Checked element by element above: the array itself needs no copy.
      return { v: WIRE_VERSION, type: 'task.heartbeat', workerId, runs: runs as Array<[string, number]> };
    }
    default:
      return null;
  }
}

function parseClaim(message: Record<string, unknown>): TaskClaim | null {
  const { taskRunId, attempt, workerId, worker } = message;
  if (!isId(taskRunId) || !isAttempt(attempt) || !isId(workerId) || !isNonEmptyString(worker)) return null;
  return { v: WIRE_VERSION, type: 'task.claim', taskRunId, attempt, workerId, worker };
}

function parseOutcome(message: Record<string, unknown>): TaskOutcome | null {
  const { taskRunId, attempt, workerId, ok } = message;
  if (!isId(taskRunId) || !isAttempt(attempt) || !isId(workerId)) return null;
  if (ok === true) {
    // `value` may be anything, `undefined` included, but the key must be there.
    if (!('value' in message)) return null;
    return { v: WIRE_VERSION, type: 'task.outcome', taskRunId, attempt, workerId, ok: true, value: message.value };
  }
  if (ok !== false) return null;
  const error = parseWireError(message.error);
  if (error === null) return null;
  return { v: WIRE_VERSION, type: 'task.outcome', taskRunId, attempt, workerId, ok: false, error };
}

function parseWireError(value: unknown): WireError | null {
  if (!isRecord(value)) return null;
  const { name, code, message, retryable, stack } = value;
  if (typeof name !== 'string' || typeof code !== 'string' || typeof message !== 'string' || typeof retryable !== 'boolean') return null;
  if (stack === undefined) return { name, code, message, retryable };
  if (typeof stack !== 'string' || stack.length > MAX_STACK_LENGTH) return null;
  return { name, code, message, retryable, stack };
}

/** A dispatch, or `null` when the message is not one (`taskDispatchSchema`). */
export function parseTaskDispatch(message: BusMessage): TaskDispatch | null {
  if (message.v !== WIRE_VERSION || message.type !== 'task.dispatch') return null;
  const { taskRunId, taskRunName, taskName, attempt, args, owner, heartbeatMs, idempotencyKey, flowRunId, flowRunName, flowName, depth } = message;
  if (!isId(taskRunId) || typeof taskRunName !== 'string' || !isNonEmptyString(taskName) || !isAttempt(attempt)) return null;
  if (!Array.isArray(args) || !isNonEmptyString(owner) || typeof idempotencyKey !== 'string') return null;
  if (!Number.isSafeInteger(heartbeatMs) || (heartbeatMs as number) <= 0) return null;
  if (flowRunId !== undefined && !isId(flowRunId)) return null;
  if ((flowRunName !== undefined && typeof flowRunName !== 'string') || (flowName !== undefined && typeof flowName !== 'string')) return null;
  if (depth !== undefined && !isDepth(depth)) return null;
  const dispatch: TaskDispatch = {
    v: WIRE_VERSION,
    type: 'task.dispatch',
    taskRunId,
    taskRunName,
    taskName,
    attempt,
    args,
    owner,
    heartbeatMs: heartbeatMs as number,
    idempotencyKey,
  };
  if (flowRunId !== undefined) dispatch.flowRunId = flowRunId;
  if (flowRunName !== undefined) dispatch.flowRunName = flowRunName;
  if (flowName !== undefined) dispatch.flowName = flowName;
  if (depth !== undefined) dispatch.depth = depth;
  return dispatch;
}

/** The owner's answer to a claim, or `null` (`claimReplySchema`). */
export function parseClaimReply(message: BusMessage): ClaimReply | null {
  if (message.v !== WIRE_VERSION || message.type !== 'task.claim.reply') return null;
  const { accepted, reason } = message;
  if (typeof accepted !== 'boolean') return null;
  if (reason === undefined) return { v: WIRE_VERSION, type: 'task.claim.reply', accepted };
  return typeof reason === 'string' ? { v: WIRE_VERSION, type: 'task.claim.reply', accepted, reason } : null;
}

/** The owner's answer to an outcome, or `null` (`outcomeReplySchema`). */
export function parseOutcomeReply(message: BusMessage): OutcomeReply | null {
  if (message.v !== WIRE_VERSION || message.type !== 'task.outcome.reply' || typeof message.accepted !== 'boolean') return null;
  return { v: WIRE_VERSION, type: 'task.outcome.reply', accepted: message.accepted };
}

/** The owner's answer to a batch, or `null` (`batchReplySchema`). */
export function parseBatchReply(message: BusMessage): BatchReply | null {
  if (message.v !== WIRE_VERSION || message.type !== 'task.batch.reply') return null;
  const { replies } = message;
  if (!Array.isArray(replies) || replies.length > MAX_BATCH_ITEMS) return null;
  const parsed: BatchReply['replies'] = [];
  for (let i = 0; i < replies.length; i++) {
    const reply: unknown = replies[i];
    if (!isRecord(reply)) return null;
    const one = parseClaimReply(reply as BusMessage) ?? parseOutcomeReply(reply as BusMessage);
    if (one === null) return null;
    parsed.push(one);
  }
  return { v: WIRE_VERSION, type: 'task.batch.reply', replies: parsed };
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= MAX_ID_LENGTH;
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1;
}

/** As `z.number().int().min(1)`: a safe integer, so neither NaN, infinite nor fractional. */
function isAttempt(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 1;
}

/** As `z.number().int().min(0)`. */
function isDepth(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
