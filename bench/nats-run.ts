/**
 * The NATS benchmark: W1-W3 for tenaz over NATS with two worker processes,
 * beside raw NATS request/reply, a raw JetStream work queue and BullMQ on
 * Redis, each with two worker processes of the same concurrency, medians of
 * ROUNDS interleaved rounds; then W1D, the cost of durable runs (durable.ts);
 * W4, failover after SIGKILL of a worker; W5, a flow run resumed after SIGKILL
 * of its process (resume.ts).
 *
 * tenaz in W1-W3 runs with `durable: false`, as it did when their targets were
 * set; W1D puts it beside durable runs, the default over NATS.
 *
 *   npm run bench:nats                      (all: w1,w2,w3,w1d,w4,w5)
 *   npm run bench:nats -- --rounds 5 --only w1,w4
 *   npm run bench:nats -- --scale 0.1       (smaller counts, for a quick look)
 *   npm run bench:nats -- --systems tenaz,jetstream   (a subset of the systems)
 *
 * Starts its own nats-server and redis-server on random loopback ports and
 * stops them, and every worker process, on the way out, error or not.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_HEARTBEAT_TIMEOUT_MS, connectOrchestrator, type Orchestrator } from '../src/index.js';
import { DEFAULT_LEASE_MS } from '../src/durable/owners.js';
import { startNatsServer, type NatsServer } from '../test/support/nats-server.js';
import { TenazProcesses } from '../test/fixtures/nats/tenaz-process.js';
import { createBullmqSystem, startRedisServer, type BullmqSystem, type RedisServer } from './bullmq.js';
import { DURABLE_SYSTEMS, measureDurableW1, type DurableSystemName, type DurableW1Result } from './durable.js';
import { measureFailover, type FailoverResult } from './failover.js';
import { measure, median, type Measurement } from './measure.js';
import { WarningTally, createBenchLogger } from './nats-log.js';
import { WorkerProcesses, type WorkerMode } from './nats-processes.js';
import { RESUME_NAMESPACE, RESUME_STEPS, RESUME_STEP_MS, RESUME_TIMEOUT_MS, completedAfterResume, measureResume, type KillOutcome, type ResumeResult } from './resume.js';
import { ensureRawStream, rawJetStreamWorkloads, rawNatsWorkloads, tenazNatsWorkloads, type Counts, type Workloads } from './nats-workloads.js';
import type { Workload } from './workloads.js';

const rounds = Number(argValue('--rounds') ?? 3);
const only = argValue('--only')?.split(',');
const scale = Number(argValue('--scale') ?? 1);
const onlySystems = argValue('--systems')?.split(',');
const wanted = (w: string) => !only || only.includes(w);

/** Worker processes per system, and the concurrency of each: the same for every system. */
const WORKERS = 2;
const CONCURRENCY = 64;
const FAILOVER_KILLS = Math.max(1, Math.round(20 * Math.min(1, scale)));
const FAILOVER_FAST_HEARTBEAT_TIMEOUT_MS = 300;
const RESUME_KILLS = Math.max(1, Math.round(10 * Math.min(1, scale)));
const RESUME_TARGET_MS = 5_000;
/** W1D's durable ÷ non-durable target. */
const DURABLE_RATIO_TARGET = 0.5;
/** How W1-W3 label tenaz, which they run with `durable: false`. */
const TENAZ_W1_W3_LABEL = 'tenaz (durable: false)';

const counts: Counts = {
  w1Flows: Math.round(10_000 * scale),
  w2FanOut: Math.round(10_000 * scale),
  w3Flows: Math.round(10_000 * scale),
  inFlight: 100,
};
/**
 * BullMQ's counts: the same as the others' on this machine (BullMQ is not the slowest system here).
 * Scale W2/W3 down here if BullMQ makes the run too long; the table then says so.
 */
const bullmqCounts: Counts = { ...counts };

const SYSTEMS = ['tenaz', 'raw NATS req/reply', 'raw JetStream', 'BullMQ'] as const;
type SystemName = (typeof SYSTEMS)[number];
const MODES: Record<SystemName, WorkerMode> = { tenaz: 'tenaz', 'raw NATS req/reply': 'nats', 'raw JetStream': 'jetstream', BullMQ: 'bullmq' };
/** The systems measured: all, or those named by `--systems tenaz,nats,jetstream,bullmq`. */
const systemsRun = SYSTEMS.filter((name) => !onlySystems || onlySystems.includes(MODES[name]));

const startedAt = performance.now();
const ownerWarnings = new WarningTally();
const logger = createBenchLogger((w) => ownerWarnings.add(w));
const processes = new WorkerProcesses();
const tenazProcesses = new TenazProcesses();
let resumeOutput: Pick<ResumeResult, 'warnings' | 'stderr'> | undefined;
let server: NatsServer | undefined;
let redis: RedisServer | undefined;
let orchestrator: Orchestrator | undefined;
const connections: NatsConnection[] = [];
let bullmq: BullmqSystem | undefined;
let closeJetStream: (() => void) | undefined;
const print = (text: string) => process.stdout.write(`${text}\n`);
let cleaning: Promise<void> | undefined;
// Interrupted: stop the servers and workers before going, rather than leave them running.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`${signal}: stopping the servers and workers\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  server = await startNatsServer();
  const throughput = ['w1', 'w2', 'w3'].filter(wanted);
  if (throughput.length > 0) {
    const systems: Partial<Record<SystemName, Workloads>> = {};
    for (const name of systemsRun) {
      let where = server.url;
      switch (name) {
        case 'tenaz':
          // Not durable: W1-W3 measure dispatch as their targets were set; W1D measures what durability adds.
          orchestrator = await connectOrchestrator({ nats: server.url, logger, durable: false });
          systems[name] = tenazNatsWorkloads(orchestrator, counts);
          break;
        case 'raw NATS req/reply': {
          const nc = await connect({ servers: server.url });
          connections.push(nc);
          systems[name] = rawNatsWorkloads(nc, counts, WORKERS * CONCURRENCY);
          break;
        }
        case 'raw JetStream': {
          const nc = await connect({ servers: server.url });
          connections.push(nc);
          await ensureRawStream(nc);
          const jetStream = rawJetStreamWorkloads(nc, counts);
          closeJetStream = jetStream.close;
          systems[name] = jetStream.workloads;
          break;
        }
        case 'BullMQ':
          redis = await startRedisServer();
          bullmq = await createBullmqSystem(redis.port, bullmqCounts);
          systems[name] = bullmq.workloads;
          where = String(redis.port);
          break;
      }
      await Promise.all(Array.from({ length: WORKERS }, () => processes.start(MODES[name], where, CONCURRENCY)));
    }
    process.stderr.write(`workers up after ${seconds(performance.now() - startedAt)}\n`);

    const results = new Map<string, Measurement[]>();
    for (const workload of throughput) {
      // Warm-up: JIT, connections and consumers for every system before anything is timed.
      for (const name of systemsRun) await measure(scaled(systems[name]![workload as keyof Workloads], 0.1));
      for (let round = 0; round < rounds; round++) {
        for (const name of systemsRun) {
          const m = await measure(systems[name]![workload as keyof Workloads]);
          const key = `${workload}|${name}`;
          results.set(key, [...(results.get(key) ?? []), m]);
          process.stderr.write(`${workload} round ${round + 1} ${name}: ${fmt(m.tasksPerSecond)} tasks/s (${seconds(m.elapsedMs)})\n`);
        }
      }
    }
    printThroughput(throughput, results);
    // W4 brings its own owner and workers: these must not take its task runs.
    await processes.stopAll();
    await orchestrator?.close();
    orchestrator = undefined;
  }

  if (wanted('w1d')) {
    const result = await measureDurableW1({
      natsUrl: server.url,
      processes,
      logger,
      flows: counts.w1Flows,
      inFlight: counts.inFlight,
      rounds,
      workers: WORKERS,
      concurrency: CONCURRENCY,
      onMeasured: (round, name, m) => process.stderr.write(`w1d round ${round + 1} ${name}: ${fmt(m.tasksPerSecond)} tasks/s (${seconds(m.elapsedMs)})\n`),
    });
    printDurable(result);
  }

  if (wanted('w4')) {
    const failovers: Array<[string, FailoverResult]> = [];
    for (const heartbeatTimeoutMs of [undefined, FAILOVER_FAST_HEARTBEAT_TIMEOUT_MS]) {
      const result = await measureFailover({ natsUrl: server.url, processes, logger, heartbeatTimeoutMs, kills: FAILOVER_KILLS, workers: WORKERS, concurrency: CONCURRENCY });
      failovers.push([`${heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS} ms${heartbeatTimeoutMs === undefined ? ' (default)' : ''}`, result]);
      process.stderr.write(`w4 heartbeat timeout ${heartbeatTimeoutMs ?? 'default'}: done\n`);
    }
    printFailover(failovers);
  }

  if (wanted('w5')) {
    const result = await measureResume({
      natsUrl: server.url,
      processes: tenazProcesses,
      logger,
      kills: RESUME_KILLS,
      onKill: (kill, outcome) =>
        process.stderr.write(
          `w5 kill ${kill + 1} (flow run ${outcome.flowRunId ?? '?'}, pid ${outcome.ownerPid}): running again after ${outcome.resumedMs?.toFixed(0) ?? 'never'} ms, ` +
            `taken over after ${outcome.tookOverMs?.toFixed(0) ?? '?'} ms, ` +
            (outcome.resumedMs === undefined
              ? `record left ${outcome.record?.state.name ?? '?'}, owner ${outcome.record?.owner ?? 'none'}, resumes ${outcome.record?.resumes ?? '?'}\n`
              : `${outcome.record?.state.name ?? 'no end in time'}\n`),
        ),
    });
    resumeOutput = result;
    printResume(result.outcomes);
  }
} finally {
  await cleanup();
  printWarnings();
  print(`\nTotal time ${seconds(performance.now() - startedAt)}.`);
}

/** Stops every process and server this run started, once, whichever way the run ends. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    closeJetStream?.();
    await bullmq?.close().catch(() => undefined);
    await orchestrator?.close().catch(() => undefined);
    await processes.stopAll();
    await tenazProcesses.killAll();
    await Promise.allSettled(connections.map((nc) => nc.close()));
    await redis?.stop();
    await server?.dispose();
  })();
  return cleaning;
}

function printThroughput(workloads: string[], results: Map<string, Measurement[]>): void {
  const lines = [`| workload | system | tasks/s | flow p50 ms | flow p99 ms | tenaz ÷ system |`, `|---|---|---:|---:|---:|---:|`];
  const verdicts: string[] = [];
  for (const workload of workloads) {
    const tenaz = median((results.get(`${workload}|tenaz`) ?? []).map((m) => m.tasksPerSecond));
    for (const name of SYSTEMS) {
      const runs = results.get(`${workload}|${name}`);
      if (!runs) continue;
      const tps = median(runs.map((m) => m.tasksPerSecond));
      const ratio = tenaz / tps;
      lines.push(
        `| ${workload.toUpperCase()} | ${name === 'tenaz' ? TENAZ_W1_W3_LABEL : name} | ${fmt(tps)} | ${median(runs.map((m) => m.p50Ms)).toFixed(2)} | ${median(runs.map((m) => m.p99Ms)).toFixed(2)} | ${name === 'tenaz' ? '' : ratio.toFixed(2)} |`,
      );
      if (workload !== 'w3' && name === 'raw JetStream') verdicts.push(`${workload.toUpperCase()}: tenaz ÷ raw JetStream = ${ratio.toFixed(2)} (target ≥ 0.7: ${ratio >= 0.7 ? 'met' : 'NOT met'})`);
      if (workload !== 'w3' && name === 'BullMQ') verdicts.push(`${workload.toUpperCase()}: tenaz ÷ BullMQ = ${ratio.toFixed(2)} (target ≥ 2.5: ${ratio >= 2.5 ? 'met' : 'NOT met'})`);
    }
  }
  print(
    `\nMedians of ${rounds} rounds, node ${process.version}, nats-server ${serverVersion()}, flow owner in this process, ` +
      `${WORKERS} worker processes per system at concurrency ${CONCURRENCY} each, logging at info to /dev/null.`,
  );
  print(
    `Counts: W1 ${fmt(counts.w1Flows)} flows × 3 tasks, ${counts.inFlight} flows in flight; W2 one flow of ${fmt(counts.w2FanOut)} tasks; ` +
      `W3 ${fmt(counts.w3Flows)} flows, ${counts.inFlight} in flight (2 attempts each, 1 task counted).`,
  );
  const bullmqNote =
    bullmqCounts.w1Flows === counts.w1Flows && bullmqCounts.w2FanOut === counts.w2FanOut && bullmqCounts.w3Flows === counts.w3Flows
      ? 'BullMQ runs the same counts. '
      : `BullMQ runs smaller counts (W1 ${fmt(bullmqCounts.w1Flows)} flows, W2 ${fmt(bullmqCounts.w2FanOut)} tasks, W3 ${fmt(bullmqCounts.w3Flows)} flows) to keep the run short: its tasks/s compare, its W2 latency does not. `;
  print(
    `${bullmqNote}Raw NATS W2 keeps ${WORKERS * CONCURRENCY} requests in flight (the workers' total concurrency, which also bounds tenaz's running tasks); ` +
      `tenaz and raw JetStream publish all W2 tasks at once and the stream holds them. Raw floors retry W3 from the publisher, as a tenaz owner does. ` +
      `tenaz runs with durable: false here, as when these targets were set (durable runs are the default over NATS; W1D shows their cost).\n`,
  );
  print(lines.join('\n'));
  if (verdicts.length > 0) print(`\nTargets: ${verdicts.join('; ')}.`);
}

function printFailover(results: Array<[string, FailoverResult]>): void {
  const lines = [`| heartbeat timeout | kills | median ms | p90 ms | max ms | min ms | target | met |`, `|---|---:|---:|---:|---:|---:|---:|---|`];
  for (const [label, { samplesMs }] of results) {
    const sorted = [...samplesMs].sort((a, b) => a - b);
    const med = median(sorted);
    const targetMs = label.includes('default') ? 3_500 : 1_000;
    lines.push(
      `| ${label} | ${sorted.length} | ${med.toFixed(0)} | ${(sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)] ?? 0).toFixed(0)} | ` +
        `${(sorted.at(-1) ?? 0).toFixed(0)} | ${(sorted[0] ?? 0).toFixed(0)} | < ${fmt(targetMs)} | ${med < targetMs ? 'yes' : 'NO'} |`,
    );
  }
  const completed = results.map(([label, r]) => `${label}: ${r.completedElsewhere}/${r.samplesMs.length}`).join(', ');
  print(
    `\nW4 failover: SIGKILL of the worker running a task (at a random point of a heartbeat interval) to the task's next attempt starting on another worker; ` +
      `${WORKERS} workers, a fresh one started at each kill. Runs completed on another worker: ${completed}.\n`,
  );
  print(lines.join('\n'));
}

function printDurable({ measurements, rawValueBytes }: DurableW1Result): void {
  const tps = (name: DurableSystemName) => median((measurements.get(name) ?? []).map((m) => m.tasksPerSecond));
  const durable = tps('tenaz (durable)');
  const lines = [`| system | tasks/s | flow p50 ms | flow p99 ms | tenaz (durable) ÷ system |`, `|---|---:|---:|---:|---:|`];
  for (const name of DURABLE_SYSTEMS) {
    const runs = measurements.get(name) ?? [];
    lines.push(
      `| ${name} | ${fmt(tps(name))} | ${median(runs.map((m) => m.p50Ms)).toFixed(2)} | ${median(runs.map((m) => m.p99Ms)).toFixed(2)} | ` +
        `${name === 'tenaz (durable)' ? '' : (durable / tps(name)).toFixed(2)} |`,
    );
  }
  const ratio = durable / tps('tenaz (durable: false)');
  print(
    `\nW1D durable runs: W1 (${fmt(counts.w1Flows)} flows × 3 tasks, ${counts.inFlight} in flight), medians of ${rounds} interleaved rounds; ` +
      `both tenaz variants own their flows in this process and share ${WORKERS} worker processes at concurrency ${CONCURRENCY}. ` +
      `Durable runs write each flow run's and task run's record to JetStream KV (compare-and-set), and a task run settles once its end is written. ` +
      `Raw JetStream KV: ${fmt(counts.w1Flows)} "flows" of 3 sequential kv.put calls of a ${rawValueBytes}-byte msgpack value shaped like a task run record, ` +
      `${counts.inFlight} in flight, on a bucket made for the bench (history 1, file storage), a put counted as a task.\n`,
  );
  print(lines.join('\n'));
  print(
    `\nTargets: tenaz (durable) ÷ tenaz (durable: false) = ${ratio.toFixed(2)} (target ≥ ${DURABLE_RATIO_TARGET}: ${ratio >= DURABLE_RATIO_TARGET ? 'met' : 'NOT met'}); ` +
      `tenaz (durable) ÷ raw JetStream KV = ${(durable / tps('raw JetStream KV')).toFixed(2)} (no target).`,
  );
}

function printResume(outcomes: KillOutcome[]): void {
  const row = (label: string, samplesMs: number[], target: boolean) => {
    const sorted = [...samplesMs].sort((a, b) => a - b);
    const med = median(sorted);
    const met = sorted.length === outcomes.length && med < RESUME_TARGET_MS ? 'yes' : 'NO';
    return (
      `| ${label} | ${sorted.length} | ${med.toFixed(0)} | ${percentile90(sorted).toFixed(0)} | ${(sorted.at(-1) ?? 0).toFixed(0)} | ${(sorted[0] ?? 0).toFixed(0)} | ` +
      `${target ? `< ${fmt(RESUME_TARGET_MS)}` : ''} | ${target ? met : ''} |`
    );
  };
  const resumed = outcomes.flatMap((o) => (o.resumedMs === undefined ? [] : [o.resumedMs]));
  const tookOver = outcomes.flatMap((o) => (o.tookOverMs === undefined ? [] : [o.tookOverMs]));
  const completed = outcomes.filter((o) => completedAfterResume(o.record)).length;
  const ends = new Map<string, number>();
  for (const o of outcomes) {
    const end = o.resumedMs === undefined ? `${o.record?.state.name ?? 'no record'} and never ran again` : (o.record?.state.name ?? 'no end in time');
    ends.set(end, (ends.get(end) ?? 0) + 1);
  }
  const twice = outcomes.reduce((sum, o) => sum + o.stepsRunTwice, 0);
  const misattributed = outcomes.reduce((sum, o) => sum + o.resumerHitsBeforeKill, 0);
  print(
    `\nW5 resume: SIGKILL of the process owning a flow run (\`tenaz run\`, a ${RESUME_STEPS}-step durable-steps run of ${RESUME_STEP_MS} ms steps, ` +
      `killed after step 1's hit plus a random part of a step) to the run running again in another process; lease ${fmt(DEFAULT_LEASE_MS)} ms (default). ` +
      `One task worker runs every step; two \`tenaz worker\` processes serve the flow (and dispatch its steps to the task worker). The first step hit after ` +
      `the take-over is the resumed run's (the original run's step in flight at the kill had started before it). "Running again" is that hit: ` +
      `the run taken, its journal replayed, its next step started. "Taken over" is the resumer's \`Took over flow run\` log line (its clock, ms), for comparison. ` +
      `Namespace ${RESUME_NAMESPACE}, workers reused; each kill has its own hit server, and its run ends (or is given up on) before the next kill. ` +
      `Resumed runs completed with the right result: ${completed}/${outcomes.length} (final states: ${[...ends].map(([name, n]) => `${name} ${n}`).join(', ')}); ` +
      `not running again within ${RESUME_TIMEOUT_MS / 1000} s: ${outcomes.length - resumed.length}; steps whose side effect ran twice: ${twice} ` +
      `(the step in flight at the kill runs again: at most one per kill expected).` +
      (resumed.length < outcomes.length
        ? ` A run that never ran again is left as its record says (its owner dead); BENCH_W5_LOG_DIR=DIR keeps every tenaz process's log for a look.`
        : '') +
      (misattributed > 0 ? ` WARNING: the resumers ran ${misattributed} step(s) of runs before their kill, so a resumer's hit may not be the resumed run's.` : '') +
      `\n`,
  );
  print(
    [
      `| measured until | kills | median ms | p90 ms | max ms | min ms | target | met |`,
      `|---|---:|---:|---:|---:|---:|---:|---|`,
      row('running again (first step hit)', resumed, true),
      row('taken over (log line)', tookOver, false),
    ].join('\n'),
  );
}

function percentile90(sorted: number[]): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)] ?? 0;
}

function printWarnings(): void {
  const lines: string[] = [];
  if (ownerWarnings.size > 0) lines.push(`bench process (tenaz owner):`, ...ownerWarnings.lines().map((l) => `  ${l}`));
  for (const mode of new Set(processes.warnings.map((w) => w.mode))) {
    const tally = new WarningTally();
    for (const w of processes.warnings) if (w.mode === mode) tally.add(w);
    lines.push(`${mode} workers:`, ...tally.lines().map((l) => `  ${l}`));
  }
  for (const { mode, text } of processes.stderr.slice(0, 20)) lines.push(`${mode} worker stderr: ${text}`);
  for (const role of new Set(resumeOutput?.warnings.map((w) => w.role))) {
    const tally = new WarningTally();
    for (const w of resumeOutput!.warnings) if (w.role === role) tally.add(w);
    lines.push(`W5 ${role}:`, ...tally.lines().map((l) => `  ${l}`));
  }
  for (const { role, text } of resumeOutput?.stderr.slice(0, 20) ?? []) lines.push(`W5 ${role} stderr: ${text}`);
  print(lines.length === 0 ? '\nNo warnings or errors were logged.' : `\nWarnings and errors logged:\n${lines.join('\n')}`);
}

function serverVersion(): string {
  return /Version:\s+(\S+)/.exec(server?.output ?? '')?.[1] ?? '?';
}

function scaled(workload: Workload, factor: number): Workload {
  return workload.flows > 1 ? { ...workload, flows: Math.max(1, Math.round(workload.flows * factor)) } : { ...workload };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
