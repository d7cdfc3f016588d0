/**
 * W4 failover: how long a task run whose worker is SIGKILLed takes to run
 * again on another worker.
 *
 * Two tenaz worker processes serve `nats-bench-sleeps-once`, which announces
 * each attempt on a core NATS subject and sleeps on its first. For each kill:
 * start a flow running that task, wait for its first attempt to start, wait a
 * random part of a heartbeat interval (so that the kill falls anywhere between
 * two heartbeats), SIGKILL the worker that runs it, and time until the next
 * attempt announces itself from another worker. A fresh worker is started at
 * the kill, as a process supervisor would, so that two stay alive.
 */
import { connect } from '@nats-io/transport-node';
import { connectOrchestrator, type Orchestrator } from '../src/index.js';
import type { Logger } from 'pino';
import type { WorkerProcess, WorkerProcesses } from './nats-processes.js';
import { FAILOVER_STARTED_SUBJECT, failover, type FailoverStart } from './nats-tasks.js';

export interface FailoverOptions {
  natsUrl: string;
  processes: WorkerProcesses;
  logger: Logger;
  /** The owner's heartbeat timeout, in ms; undefined for the default. */
  heartbeatTimeoutMs: number | undefined;
  kills: number;
  workers: number;
  concurrency: number;
}

export interface FailoverResult {
  /** Kill to the next attempt's start, in ms, one per kill. */
  samplesMs: number[];
  /** Whether each killed run completed on another worker afterwards. */
  completedElsewhere: number;
}

/** Long enough that the first attempt is still running when it is killed. */
const FIRST_ATTEMPT_SLEEP_MS = 120_000;
const RESTART_WAIT_MS = 30_000;

export async function measureFailover(options: FailoverOptions): Promise<FailoverResult> {
  const { natsUrl, processes, kills, concurrency } = options;
  const starts: Array<FailoverStart & { at: number }> = [];
  const waiters = new Set<() => void>();
  const nc = await connect({ servers: natsUrl });
  let orchestrator: Orchestrator | undefined;
  const live: WorkerProcess[] = [];
  try {
    nc.subscribe(FAILOVER_STARTED_SUBJECT, {
      callback: (err, msg) => {
        if (err) return;
        starts.push({ ...(JSON.parse(msg.string()) as FailoverStart), at: performance.now() });
        for (const wake of waiters) wake();
      },
    });
    await nc.flush();
    const nextStart = (predicate: (start: FailoverStart) => boolean, timeoutMs: number) =>
      new Promise<FailoverStart & { at: number }>((resolve, reject) => {
        const check = () => {
          const found = starts.find(predicate);
          if (found === undefined) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => (cleanup(), reject(new Error(`no matching task start in ${timeoutMs} ms`))), timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });

    // W4 is about task runs on workers: measured as before durable runs, without run records.
    orchestrator = await connectOrchestrator({
      nats: natsUrl,
      durable: false,
      logger: options.logger,
      ...(options.heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs: options.heartbeatTimeoutMs }),
    });
    const heartbeatMs = Math.max(30, Math.floor((options.heartbeatTimeoutMs ?? 3_000) / 3));
    live.push(...(await Promise.all(Array.from({ length: options.workers }, () => processes.start('tenaz', natsUrl, concurrency)))));

    const samplesMs: number[] = [];
    let completedElsewhere = 0;
    for (let k = 0; k < kills; k++) {
      starts.length = 0;
      const run = orchestrator.start(failover, FIRST_ATTEMPT_SLEEP_MS);
      const first = await nextStart((s) => s.attempt === 1, RESTART_WAIT_MS);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * heartbeatMs));
      const victim = live.find((w) => w.pid === first.pid);
      if (victim === undefined) throw new Error(`the first attempt started on pid ${first.pid}, which is not a bench worker`);
      live.splice(live.indexOf(victim), 1);
      const killedAt = performance.now();
      victim.kill();
      const replacement = processes.start('tenaz', natsUrl, concurrency);
      replacement.catch(() => undefined); // awaited below; this only keeps a failure from going unhandled meanwhile
      const again = await nextStart((s) => s.taskRunId === first.taskRunId && s.attempt > first.attempt && s.pid !== first.pid, RESTART_WAIT_MS);
      samplesMs.push(again.at - killedAt);
      const pid = await run.result();
      if (pid !== first.pid) completedElsewhere++;
      live.push(await replacement);
      await victim.exited;
    }
    return { samplesMs, completedElsewhere };
  } finally {
    await orchestrator?.close();
    for (const worker of live) worker.kill();
    await Promise.all(live.map((w) => w.exited));
    await nc.close();
  }
}
