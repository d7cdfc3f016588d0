/**
 * The BullMQ peer of the NATS benchmark: a local redis-server on a random
 * loopback port, one queue, worker processes (nats-worker.ts, mode `bullmq`)
 * and the bench process waiting for each job's completion through QueueEvents.
 *
 * Jobs are removed once completed, as a JetStream work queue forgets an acked
 * message. Retries (W3) are BullMQ's own: `attempts: 2`, no backoff.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { freePort } from '../test/support/nats-server.js';
import { rawTasks, type RawTaskName } from './nats-raw.js';
import type { Workload } from './workloads.js';

export const BULLMQ_QUEUE = 'nats-bench';

export interface RedisServer {
  readonly port: number;
  readonly pid: number | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts redis-server without persistence on a free loopback port; resolves once it accepts connections. */
export async function startRedisServer(readyTimeoutMs = 10_000): Promise<RedisServer> {
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--save', '', '--appendonly', 'no', '--port', String(port), '--bind', '127.0.0.1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server not ready after ${readyTimeoutMs} ms:\n${output}`)), readyTimeoutMs);
      const onData = (chunk: string) => {
        output += chunk;
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.setEncoding('utf8').on('data', onData);
      child.stderr!.setEncoding('utf8').on('data', onData);
      child.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(error.code === 'ENOENT' ? new Error('redis-server is not installed (Debian: apt-get install -y redis-server)', { cause: error }) : error);
      });
      void exited.then(() => (clearTimeout(timer), reject(new Error(`redis-server exited before it was ready:\n${output}`))));
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    port,
    get pid() {
      return child.pid;
    },
    async stop(graceMs = 2_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

const connectionTo = (port: number) => ({ host: '127.0.0.1', port, maxRetriesPerRequest: null });

export interface BullmqCounts {
  w1Flows: number;
  w2FanOut: number;
  w3Flows: number;
  inFlight: number;
}

export interface BullmqSystem {
  workloads: Record<'w1' | 'w2' | 'w3', Workload>;
  close(): Promise<void>;
}

/** The bench side: a queue and the QueueEvents every flow waits on. */
export async function createBullmqSystem(redisPort: number, counts: BullmqCounts): Promise<BullmqSystem> {
  const connection = connectionTo(redisPort);
  const queue = new Queue(BULLMQ_QUEUE, {
    connection,
    // 10,000 jobs write about 40,000 events: the default cap (10,000) could trim events before they are read.
    streams: { events: { maxLen: 200_000 } },
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  const events = new QueueEvents(BULLMQ_QUEUE, { connection });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);

  // One listener for all jobs; each job's waiter is registered before the job is added.
  const waiting = new Map<string, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  events.on('completed', ({ jobId, returnvalue }) => {
    waiting.get(jobId)?.resolve(returnvalue);
    waiting.delete(jobId);
  });
  events.on('failed', ({ jobId, failedReason }) => {
    waiting.get(jobId)?.reject(new Error(failedReason));
    waiting.delete(jobId);
  });
  let seq = 0;
  const nextId = () => `b${++seq}`;
  const done = (jobId: string) => new Promise<unknown>((resolve, reject) => waiting.set(jobId, { resolve, reject }));

  const runJob = async (name: RawTaskName, args: unknown[], attempts = 1): Promise<unknown> => {
    const jobId = nextId();
    const finished = done(jobId);
    await queue.add(name, { args }, { jobId, attempts });
    return finished;
  };

  const workloads: BullmqSystem['workloads'] = {
    w1: {
      tasksPerFlow: 3,
      flows: counts.w1Flows,
      inFlight: counts.inFlight,
      runFlow: async (i) => runJob('increment', [await runJob('increment', [await runJob('increment', [i])])]),
    },
    w2: {
      tasksPerFlow: counts.w2FanOut,
      flows: 1,
      inFlight: 1,
      runFlow: async () => {
        const ids = Array.from({ length: counts.w2FanOut }, nextId);
        const finished = ids.map(done);
        // addBulk in slices: one multi-command round trip per slice rather than per job.
        for (let from = 0; from < ids.length; from += 1_000) {
          await queue.addBulk(ids.slice(from, from + 1_000).map((jobId, k) => ({ name: 'increment', data: { args: [from + k] }, opts: { jobId } })));
        }
        return (await Promise.all(finished)).length;
      },
    },
    w3: {
      tasksPerFlow: 1,
      flows: counts.w3Flows,
      inFlight: counts.inFlight,
      runFlow: (i) => runJob('fails-once', [i], 2),
    },
  };
  return {
    workloads,
    async close() {
      await events.close();
      await queue.close();
    },
  };
}

/** The worker side, run in a worker process: BullMQ's own retry counter is the attempt number. */
export async function serveBullmq(redisPort: number, concurrency: number): Promise<{ close(): Promise<void> }> {
  const worker = new Worker(
    BULLMQ_QUEUE,
    async (job) => {
      const body = rawTasks[job.name as RawTaskName];
      if (body === undefined) throw new Error(`unknown task ${job.name}`);
      return body({ args: (job.data as { args: unknown[] }).args, attempt: job.attemptsMade + 1 });
    },
    { connection: connectionTo(redisPort), concurrency },
  );
  // Without a listener an 'error' event would end the process; report it as the other workers report theirs.
  worker.on('error', (err) => process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'the BullMQ worker reported an error', err: String(err) })}\n`));
  await worker.waitUntilReady();
  return { close: () => worker.close() };
}
