/**
 * W1-W3 across processes, for tenaz over NATS and its two raw NATS floors. The
 * bench process is the flow owner; two worker processes (nats-worker.ts) run
 * the tasks. BullMQ's version is in bullmq.ts.
 *
 * - tenaz: the flows of nats-tasks.ts, task runs dispatched through the
 *   `tenaz_tasks` work-queue stream, claimed, heartbeated and answered by
 *   request/reply.
 * - raw NATS: each task is one core NATS request to a queue group; the flow
 *   retries a failed reply itself.
 * - raw JetStream: each task is published to a work-queue stream, taken by a
 *   pull consumer, acked, and answered on core NATS to the publisher's inbox.
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createInbox, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Orchestrator } from '../src/index.js';
import { JS_STREAM, JS_SUBJECT_PREFIX, RAW_SUBJECT_PREFIX, RAW_TASKS, decode, encode, jsConsumerName, type RawReply, type RawTaskName } from './nats-raw.js';
import { chain, fanOut, retrying } from './nats-tasks.js';
import type { Workload } from './workloads.js';

export interface Counts {
  w1Flows: number;
  w2FanOut: number;
  w3Flows: number;
  /** Flows in flight at once (W1, W3). */
  inFlight: number;
}

export type Workloads = Record<'w1' | 'w2' | 'w3', Workload>;

/** Attempts of the fail-once task: the first fails, the second succeeds. */
const W3_ATTEMPTS = 2;
const REQUEST_TIMEOUT_MS = 60_000;

// ---- tenaz over NATS ----------------------------------------------------------

export function tenazNatsWorkloads(orchestrator: Orchestrator, counts: Counts): Workloads {
  return {
    w1: { tasksPerFlow: 3, flows: counts.w1Flows, inFlight: counts.inFlight, runFlow: (i) => orchestrator.start(chain, i).result() },
    w2: { tasksPerFlow: counts.w2FanOut, flows: 1, inFlight: 1, runFlow: () => orchestrator.start(fanOut, counts.w2FanOut).result() },
    w3: { tasksPerFlow: 1, flows: counts.w3Flows, inFlight: counts.inFlight, runFlow: (i) => orchestrator.start(retrying, i).result() },
  };
}

// ---- shared by both raw floors ------------------------------------------------

type Send = (taskName: RawTaskName, args: unknown[], attempt: number) => Promise<RawReply>;

/** Runs one task through `send`, retrying a failed attempt up to `attempts` in all. */
async function runTask(send: Send, taskName: RawTaskName, args: unknown[], attempts = 1): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    const reply = await send(taskName, args, attempt);
    if (reply.ok) return reply.value;
    if (attempt >= attempts) throw new Error(reply.error);
  }
}

/** Runs `n` tasks with at most `window` in flight. */
async function fanOutWindowed(n: number, window: number, run: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const lane = async () => {
    while (next < n) await run(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, lane));
  return n;
}

function rawWorkloads(send: Send, counts: Counts, fanOutWindow: number): Workloads {
  return {
    w1: {
      tasksPerFlow: 3,
      flows: counts.w1Flows,
      inFlight: counts.inFlight,
      runFlow: async (i) => runTask(send, 'increment', [await runTask(send, 'increment', [await runTask(send, 'increment', [i])])]),
    },
    w2: {
      tasksPerFlow: counts.w2FanOut,
      flows: 1,
      inFlight: 1,
      runFlow: () =>
        fanOutWindow >= counts.w2FanOut
          ? Promise.all(Array.from({ length: counts.w2FanOut }, (_, i) => runTask(send, 'increment', [i]))).then((r) => r.length)
          : fanOutWindowed(counts.w2FanOut, fanOutWindow, (i) => runTask(send, 'increment', [i])),
    },
    w3: {
      tasksPerFlow: 1,
      flows: counts.w3Flows,
      inFlight: counts.inFlight,
      runFlow: (i) => runTask(send, 'fails-once', [i], W3_ATTEMPTS),
    },
  };
}

// ---- raw NATS request/reply ---------------------------------------------------

/**
 * Core NATS request/reply to the workers' queue group. Core NATS buffers
 * nothing, so W2 keeps `fanOutWindow` requests in flight (the bench passes the
 * workers' total concurrency, the same bound on running tasks as tenaz's).
 */
export function rawNatsWorkloads(nc: NatsConnection, counts: Counts, fanOutWindow: number): Workloads {
  const send: Send = async (taskName, args, attempt) => {
    const reply = await nc.request(`${RAW_SUBJECT_PREFIX}${taskName}`, encode({ args, attempt }), { timeout: REQUEST_TIMEOUT_MS });
    return decode<RawReply>(reply.data);
  };
  return rawWorkloads(send, counts, fanOutWindow);
}

// ---- raw JetStream work queue -------------------------------------------------

/** Creates the raw work-queue stream and one durable pull consumer per task, configured as tenaz's. */
export async function ensureRawStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: JS_STREAM,
    subjects: [`${JS_SUBJECT_PREFIX}>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
  });
  for (const taskName of RAW_TASKS) {
    await jsm.consumers.add(JS_STREAM, {
      durable_name: jsConsumerName(taskName),
      filter_subject: `${JS_SUBJECT_PREFIX}${taskName}`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(10_000),
      max_deliver: -1,
    });
  }
}

/**
 * Publishes each task to the stream (awaiting the stream's ack, as tenaz does)
 * and waits for the worker's reply on this process's inbox. W2 publishes all
 * its tasks at once: the stream holds them, the workers take `concurrency` each.
 */
export function rawJetStreamWorkloads(nc: NatsConnection, counts: Counts): { workloads: Workloads; close(): void } {
  const js = jetstream(nc);
  const inbox = createInbox();
  const waiting = new Map<string, (reply: RawReply) => void>();
  const subscription = nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      if (err) return;
      const resolve = waiting.get(msg.subject);
      waiting.delete(msg.subject);
      resolve?.(decode<RawReply>(msg.data));
    },
  });
  let seq = 0;
  const send: Send = async (taskName, args, attempt) => {
    const reply = `${inbox}.${++seq}`;
    const answered = new Promise<RawReply>((resolve) => waiting.set(reply, resolve));
    await js.publish(`${JS_SUBJECT_PREFIX}${taskName}`, encode({ args, attempt, reply }));
    return answered;
  };
  return { workloads: rawWorkloads(send, counts, Infinity), close: () => subscription.unsubscribe() };
}
