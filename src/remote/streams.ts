/**
 * The JetStream pieces task dispatch stands on: one work-queue stream of
 * dispatches per namespace, and one durable pull consumer per pool and task.
 * Owners and workers both make sure they exist, in whichever order they start;
 * creating them is idempotent.
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Subjects } from '../subjects.js';

/** How long a dispatch id is remembered, so that a dispatch published twice is stored once. */
const DUPLICATE_WINDOW_MS = 120_000;
/**
 * How long a worker may hold a dispatch without acking it before it is delivered
 * again. Workers ack right after their claim is accepted, and mark a dispatch they
 * hold but have not started as in progress, so this bounds only how long the
 * dispatch of a worker that died before claiming waits.
 */
export const DISPATCH_ACK_WAIT_MS = 10_000;

export function ensureTasksStream(jsm: JetStreamManager, subjects: Subjects, replicas = 1): Promise<void> {
  return ensureWorkQueueStream(jsm, subjects.tasksStream, subjects.allTaskDispatch, replicas);
}

/**
 * Makes sure a work-queue stream (deduplicated by message id) exists, whichever
 * process gets there first, with `replicas` copies on a cluster; an existing stream
 * is used as it is.
 */
export async function ensureWorkQueueStream(jsm: JetStreamManager, name: string, subject: string, replicas = 1): Promise<void> {
  try {
    await jsm.streams.info(name);
    return;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  try {
    await jsm.streams.add({
      name,
      subjects: [subject],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      num_replicas: replicas,
    });
  } catch (error) {
    // Another process created it between our look and our add: 2.9 says so as "name already
    // in use" or as "subjects overlap", depending on the timing. Either way it is there now.
    const exists = await jsm.streams.info(name).then(
      () => true,
      () => false,
    );
    if (!exists) throw error;
  }
}

export async function ensureTaskConsumer(jsm: JetStreamManager, subjects: Subjects, pool: string, taskName: string): Promise<string> {
  const name = subjects.taskConsumer(pool, taskName);
  await jsm.consumers.add(subjects.tasksStream, {
    durable_name: name,
    filter_subject: subjects.taskDispatch(pool, taskName),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(DISPATCH_ACK_WAIT_MS),
    max_deliver: -1,
  });
  return name;
}

function isNotFound(error: unknown): boolean {
  const text = String((error as Error)?.message ?? error);
  return /not found/i.test(text);
}
