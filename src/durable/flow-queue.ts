/**
 * The queue of flow runs waiting for a process that serves their flow: a
 * JetStream work-queue stream (`<ns>_flows`), one durable consumer per flow.
 * A message only names the run; the run's record says what to do with it, and
 * taking it is compare-and-set on that record, so a message delivered twice,
 * late or to two processes starts the run once.
 */
import { AckPolicy, DeliverPolicy, jetstream, type JetStreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { encodeValue } from '../codec.js';
import type { Subjects } from '../subjects.js';
import { ensureWorkQueueStream } from '../remote/streams.js';

/** How long a process may hold a take without acking it before it goes to another. */
export const FLOW_TAKE_ACK_WAIT_MS = 30_000;

export type FlowTakeReason = 'start' | 'resume' | 'retry';

export const flowTakeSchema = z.object({
  v: z.literal(1),
  type: z.literal('flow.take'),
  flowRunId: z.string().min(1).max(200),
  flowName: z.string().min(1).max(1_000),
  reason: z.enum(['start', 'resume', 'retry']),
  /**
   * For a resume: the owner whose lease lapsed, as judged by the process that queued it.
   * The taker trusts that judgement even if its own view of the lease is a moment behind.
   */
  deadOwner: z.string().min(1).max(200).nullish(),
});

export type FlowTake = z.infer<typeof flowTakeSchema>;

export function ensureFlowsStream(jsm: JetStreamManager, subjects: Subjects, replicas = 1): Promise<void> {
  return ensureWorkQueueStream(jsm, subjects.flowsStream, subjects.allFlowQueue, replicas);
}

export async function ensureFlowConsumer(jsm: JetStreamManager, subjects: Subjects, flowName: string): Promise<string> {
  const name = subjects.flowConsumer(flowName);
  await jsm.consumers.add(subjects.flowsStream, {
    durable_name: name,
    filter_subject: subjects.flowQueue(flowName),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(FLOW_TAKE_ACK_WAIT_MS),
    max_deliver: -1,
  });
  return name;
}

/**
 * Queues a flow run for the processes serving its flow. `dedupeId` makes a repeat
 * (two processes queueing the same resume) a no-op on the server. Resolves with
 * false when it was one.
 */
export async function enqueueFlowRun(
  connection: NatsConnection,
  jsm: JetStreamManager,
  subjects: Subjects,
  take: Omit<FlowTake, 'v' | 'type'>,
  dedupeId: string,
  replicas = 1,
): Promise<boolean> {
  await ensureFlowsStream(jsm, subjects, replicas);
  const message: FlowTake = { v: 1, type: 'flow.take', ...take };
  const ack = await jetstream(connection).publish(subjects.flowQueue(take.flowName), encodeValue(message), { msgID: dedupeId });
  return !ack.duplicate;
}
