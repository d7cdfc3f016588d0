/**
 * The wire messages between the process that owns a task run and the workers
 * that run it. Plain maps with a version field, validated on receipt: a
 * message of the wrong shape is dropped and counted, never trusted.
 *
 * The exchange for one attempt:
 * 1. owner → tasks stream: `task.dispatch` (JetStream, deduplicated by
 *    `<taskRunId>:<attempt>`);
 * 2. worker → owner: `task.claim` (request). The owner accepts only the
 *    attempt it is waiting for, once: the attempt number is the fencing token.
 *    The worker acks the stream message only after an accepted claim, so a
 *    worker that dies before claiming leaves the message to be delivered again.
 *    A first delivery starts its body without waiting for the answer (its
 *    outcome follows the claim); a refused claim aborts it;
 * 3. worker → owner: `task.heartbeat` while it runs (one message per owner
 *    for all the attempts the worker holds);
 * 4. worker → owner: `task.outcome` (request, repeated until answered),
 *    accepted only from the worker whose claim was;
 * 5. owner → worker: `task.cancel` when the owner gives the attempt up.
 *
 * Claims and outcomes a worker has for one owner in the same turn of its event
 * loop travel together, as one `task.batch` request answered by one
 * `task.batch.reply`: under load, one message instead of dozens.
 */
import { z } from 'zod';
import type { BusMessage } from '../bus/bus.js';

export const WIRE_VERSION = 1;

const id = z.string().min(1).max(200);
const attempt = z.number().int().min(1);

const wireError = z.object({
  name: z.string(),
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
  stack: z.string().max(10_000).optional(),
});

export const taskDispatchSchema = z.object({
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.dispatch'),
  taskRunId: id,
  taskRunName: z.string(),
  taskName: z.string().min(1),
  attempt,
  args: z.array(z.unknown()),
  /** Subject of the owner: where claims, heartbeats and outcomes go. */
  owner: z.string().min(1),
  /** How often the worker heartbeats this attempt, in ms. */
  heartbeatMs: z.number().int().positive(),
  idempotencyKey: z.string(),
  flowRunId: id.optional(),
  flowRunName: z.string().optional(),
  flowName: z.string().optional(),
  /**
   * How many runs deep the task run is (1: called outside any run): the calls its body makes
   * on the worker nest below it, so the limit on nesting holds across processes. Absent from
   * the dispatches of owners older than this field.
   */
  depth: z.number().int().min(0).optional(),
});
export type TaskDispatch = z.infer<typeof taskDispatchSchema>;

export const taskClaimSchema = z.object({
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.claim'),
  taskRunId: id,
  attempt,
  workerId: id,
  /** Subject the owner sends `task.cancel` to. */
  worker: z.string().min(1),
});
export type TaskClaim = z.infer<typeof taskClaimSchema>;

export const claimReplySchema = z.object({
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.claim.reply'),
  accepted: z.boolean(),
  reason: z.string().optional(),
});
export type ClaimReply = z.infer<typeof claimReplySchema>;

export const taskHeartbeatSchema = z.object({
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.heartbeat'),
  workerId: id,
  /** `[taskRunId, attempt]` of every attempt the worker holds for this owner. */
  runs: z.array(z.tuple([id, attempt])).max(100_000),
});
export type TaskHeartbeat = z.infer<typeof taskHeartbeatSchema>;

const outcomeBase = {
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.outcome'),
  taskRunId: id,
  attempt,
  workerId: id,
};

export const taskOutcomeSchema = z.discriminatedUnion('ok', [
  z.object({ ...outcomeBase, ok: z.literal(true), value: z.unknown() }),
  z.object({ ...outcomeBase, ok: z.literal(false), error: wireError }),
]);
export type TaskOutcome = z.infer<typeof taskOutcomeSchema>;

export const outcomeReplySchema = z.object({
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.outcome.reply'),
  accepted: z.boolean(),
});
export type OutcomeReply = z.infer<typeof outcomeReplySchema>;

export const taskCancelSchema = z.object({
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.cancel'),
  taskRunId: id,
  attempt,
  reason: z.string(),
});
export type TaskCancel = z.infer<typeof taskCancelSchema>;

/** Claims and outcomes sent in one request: at most this many. */
export const MAX_BATCH_ITEMS = 1_000;

/**
 * The claims and outcomes a worker has for one owner at the same moment, in one
 * request. The owner applies them in order, as if each had come alone.
 */
export const taskBatchSchema = z.object({
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.batch'),
  items: z.array(z.union([taskClaimSchema, taskOutcomeSchema])).min(1).max(MAX_BATCH_ITEMS),
});
export type TaskBatch = z.infer<typeof taskBatchSchema>;

/** The owner's answer to a batch: the reply each item would have had alone, in order. */
export const batchReplySchema = z.object({
  v: z.literal(WIRE_VERSION),
  type: z.literal('task.batch.reply'),
  replies: z.array(z.union([claimReplySchema, outcomeReplySchema])).max(MAX_BATCH_ITEMS),
});
export type BatchReply = z.infer<typeof batchReplySchema>;

/** Messages a worker sends to an owner. */
export const toOwnerSchema = z.union([taskClaimSchema, taskHeartbeatSchema, taskOutcomeSchema, taskBatchSchema]);
export type ToOwner = z.infer<typeof toOwnerSchema>;

/** `Omit<M, 'v'>` for each member of a union. */
type WithoutVersion<M> = M extends unknown ? Omit<M, 'v'> : never;

/** Builds a message of the current wire version; the type checker keeps the shape right. */
export function wire<M extends { v: number; type: string }>(message: WithoutVersion<M>): M & BusMessage {
  return { v: WIRE_VERSION, ...message } as M & BusMessage;
}
