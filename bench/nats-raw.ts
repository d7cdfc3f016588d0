/**
 * What the raw baselines of the NATS benchmark share between the bench process
 * and their worker processes: subjects, the JetStream stream, the message
 * shapes (msgpack, encoded as tenaz encodes its wire messages), the task
 * bodies and a counting semaphore.
 *
 * A request carries the task's arguments and the attempt number; a reply says
 * whether the attempt succeeded. The publisher decides retries, as a tenaz
 * owner does.
 */
import { Packr } from 'msgpackr';

/** Core NATS request/reply: `bench.raw.<task>`, served by a queue group. */
export const RAW_SUBJECT_PREFIX = 'bench.raw.';
export const RAW_QUEUE = 'bench-raw-workers';

/** JetStream work queue: stream, subjects `bench.js.<task>`, one durable pull consumer per task. */
export const JS_STREAM = 'bench_raw_tasks';
export const JS_SUBJECT_PREFIX = 'bench.js.';
export const jsConsumerName = (taskName: string) => `bench-raw-${taskName}`;

export const RAW_TASKS = ['increment', 'fails-once'] as const;
export type RawTaskName = (typeof RAW_TASKS)[number];

export interface RawRequest {
  args: unknown[];
  attempt: number;
  /** JetStream only: the publisher's inbox subject for the reply. */
  reply?: string;
}

export type RawReply = { ok: true; value: unknown } | { ok: false; error: string };

const packr = new Packr({ useRecords: false, moreTypes: true });
export const encode = (value: RawRequest | RawReply): Uint8Array => packr.pack(value);
export const decode = <T>(bytes: Uint8Array): T => packr.unpack(bytes) as T;

/** The task bodies: the same work as the tenaz tasks in nats-tasks.ts. */
export const rawTasks: Record<RawTaskName, (request: RawRequest) => Promise<unknown>> = {
  increment: async ({ args }) => (args[0] as number) + 1,
  'fails-once': async ({ args, attempt }) => {
    if (attempt === 1) throw new Error('first attempt fails');
    return args[0];
  },
};

/** Runs a request's task and builds the reply; never throws. */
export async function handle(taskName: string, request: RawRequest): Promise<RawReply> {
  const body = rawTasks[taskName as RawTaskName];
  if (body === undefined) return { ok: false, error: `unknown task ${taskName}` };
  try {
    return { ok: true, value: await body(request) };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}

