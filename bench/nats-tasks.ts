/**
 * The tenaz tasks and flows of the NATS benchmark. Both sides import this
 * file: the bench process owns the flow runs, the worker processes
 * (nats-worker.ts) run the tasks, looked up by name.
 *
 * Names differ from bench/workloads.ts so that both files can be loaded in
 * one process without two tasks sharing a name.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { flow, getRunContext, task } from '../src/index.js';

/** Where a failover task announces that an attempt started (core NATS, no reply). */
export const FAILOVER_STARTED_SUBJECT = 'bench.failover.started';

/** What a failover task publishes when an attempt starts. */
export interface FailoverStart {
  taskRunId: string;
  attempt: number;
  pid: number;
}

let signalConnection: NatsConnection | undefined;

/** Gives the failover task the connection it announces its starts on (set in worker processes). */
export function setSignalConnection(connection: NatsConnection): void {
  signalConnection = connection;
}

export const increment = task({ name: 'nats-bench-increment' }, async (x: number) => x + 1);

/** Fails its first attempt wherever it runs: the attempt number, not process memory, decides. */
export const failsOnce = task({ name: 'nats-bench-fails-once', retries: 1 }, async (x: number) => {
  if (getRunContext().attempt === 1) throw new Error('first attempt fails');
  return x;
});

/**
 * Announces each attempt, then sleeps `sleepMs` on the first attempt (the bench
 * kills its worker meanwhile) and returns at once on any later one.
 */
export const sleepsOnce = task({ name: 'nats-bench-sleeps-once' }, async (sleepMs: number) => {
  const { attempt, taskRun, signal } = getRunContext();
  const start: FailoverStart = { taskRunId: taskRun?.id ?? '', attempt, pid: process.pid };
  signalConnection?.publish(FAILOVER_STARTED_SUBJECT, JSON.stringify(start));
  if (attempt > 1) return process.pid;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, sleepMs);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
  return process.pid;
});

export const chain = flow({ name: 'nats-bench-chain' }, async (x: number) => increment(await increment(await increment(x))));

export const fanOut = flow({ name: 'nats-bench-fan-out' }, async (n: number) => {
  const results = await Promise.all(increment.map(Array.from({ length: n }, (_, i) => i)));
  return results.length;
});

export const retrying = flow({ name: 'nats-bench-retrying' }, async (x: number) => failsOnce(x));

export const failover = flow({ name: 'nats-bench-failover' }, async (sleepMs: number) => sleepsOnce(sleepMs));
