/**
 * W5 resume: how long a flow run whose process is SIGKILLed takes to run
 * again in another process, with the default lease (3000 ms).
 *
 * Processes, started once and reused by every kill (one namespace, `bench-w5`):
 * - a task worker, `tenaz worker test/fixtures/nats/durable.ts --no-flows`:
 *   runs every step, of the original flow runs and of the resumed ones;
 * - two resumers, `tenaz worker test/fixtures/nats/durable.ts --pool bench-w5-resumers`:
 *   they serve the flow `durable-steps` (whose steps they dispatch to the task
 *   worker, as every flow run does), and take task runs of a pool nobody
 *   dispatches to.
 *
 * Per kill: `tenaz run ... --flow durable-steps` owns a new flow run (its steps
 * go to the task worker); after step 1's hit and a random part of a step, it is
 * SIGKILLed; we time until the resumed run's first step hits the hit server.
 * Each kill has its own hit server and its run ends before the next kill
 * starts (unless it never runs again), so kills do not overlap and one
 * namespace keeps them independent without restarting the workers.
 *
 * Why the first hit and not the `Took over flow run` log line: the hit is the
 * flow running again, its journal read and its next step started, which is
 * what a user waits for; the log line comes earlier (the take, before the body
 * replays) and is stamped on another process's clock, to the millisecond. We
 * report it beside, for comparison. A hit is the resumed run's when it comes
 * after that line: the original run's step in flight at the kill, if any, had
 * started long before (its dispatch was on its way when the owner died), and a
 * take-over waits for the lease to lapse, seconds later.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { connectOrchestrator, type Orchestrator } from '../src/index.js';
import type { FlowRunRecord } from '../src/durable/records.js';
import type { TenazProcess, TenazProcesses } from '../test/fixtures/nats/tenaz-process.js';
import { HitServer, type Hit } from '../test/support/processes.js';
import type { Warning } from './nats-log.js';

export interface ResumeOptions {
  natsUrl: string;
  /** Spawns the `tenaz` processes; the caller kills the survivors on an interrupt. */
  processes: TenazProcesses;
  /** The admin orchestrator's logger. */
  logger: Logger;
  kills: number;
  /** Called after each kill, for progress on stderr. */
  onKill(kill: number, outcome: KillOutcome): void;
}

export interface KillOutcome {
  flowRunId: string | undefined;
  /** The pid of the `tenaz run` process killed. */
  ownerPid: number;
  /** SIGKILL to the resumed run's first step hit, in ms; undefined when it never ran again. */
  resumedMs: number | undefined;
  /** SIGKILL to the resumer's `Took over flow run` log line, in ms (the resumer's clock); undefined when none was found. */
  tookOverMs: number | undefined;
  /** The run's final record, if it ended in time; else its record as it stood, when it never ran again. */
  record: FlowRunRecord | undefined;
  /** Steps whose side effect happened more than once (the step in flight at the kill runs again). */
  stepsRunTwice: number;
  /** Steps a resumer ran before the kill: should be 0, else a resumer hit does not prove the run resumed. */
  resumerHitsBeforeKill: number;
}

export interface ResumeResult {
  outcomes: KillOutcome[];
  /** Warnings and errors the `tenaz` processes logged, by role. */
  warnings: Array<Warning & { role: string }>;
  /** Lines of the `tenaz` processes' stderr that are not their own notes. */
  stderr: Array<{ role: string; text: string }>;
}

export const RESUME_STEPS = 4;
export const RESUME_STEP_MS = 400;
export const RESUME_NAMESPACE = 'bench-w5';
const FLOW_FILE = 'test/fixtures/nats/durable.ts';
const FLOW_NAME = 'durable-steps';
const RESUMER_POOL = 'bench-w5-resumers';
const RESUMERS = 2;
/** `tenaz` under tsx on a loaded machine can take a while to start. */
const START_TIMEOUT_MS = 60_000;
/** How long a killed run may take to run again before it counts as not resumed: a lease, a lapse check and a replay, several times over. */
export const RESUME_TIMEOUT_MS = 15_000;
const RUN_END_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;
/** Where to save each `tenaz` process's output, for a look after the run: `BENCH_W5_LOG_DIR=/tmp/w5`. */
const LOG_DIR = process.env.BENCH_W5_LOG_DIR;
const SERVING_FLOWS = /^tenaz: serving flow\(s\) /m;
const SERVING_TASKS = /^tenaz: serving durable-step/m;
const TOOK_OVER = 'Took over flow run';
/** The fixture's result: the sum of `index * 10` over the steps. */
const EXPECTED_TOTAL = Array.from({ length: RESUME_STEPS }, (_, i) => i * 10).reduce((a, b) => a + b, 0);

/** Runs W5: starts its workers, kills `kills` flow runs' processes one after another, stops everything it started. */
export async function measureResume(options: ResumeOptions): Promise<ResumeResult> {
  const { natsUrl, processes } = options;
  const connection = ['--nats', natsUrl, '--namespace', RESUME_NAMESPACE];
  const env = { TENAZ_LOG_FORMAT: 'json' };
  const spawned: Array<{ role: string; process: TenazProcess }> = [];
  const spawn = (role: string, args: string[]) => {
    const child = processes.spawn([...args, ...connection], env);
    spawned.push({ role, process: child });
    return child;
  };
  // One hit server per kill: a run that runs again late cannot be taken for the next kill's.
  const hitServers: HitServer[] = [];
  let admin: Orchestrator | undefined;
  const outcomes: KillOutcome[] = [];
  try {
    const taskWorker = spawn('tenaz worker --no-flows', ['worker', FLOW_FILE, '--no-flows']);
    const resumers = Array.from({ length: RESUMERS }, () => spawn('tenaz worker (resumer)', ['worker', FLOW_FILE, '--pool', RESUMER_POOL]));
    await Promise.all([
      taskWorker.waitFor('stderr', SERVING_TASKS, START_TIMEOUT_MS),
      ...resumers.map((resumer) => resumer.waitFor('stderr', SERVING_FLOWS, START_TIMEOUT_MS)),
    ]);
    const resumerPids = new Set(resumers.map((resumer) => resumer.pid));
    admin = await connectOrchestrator({ nats: natsUrl, namespace: RESUME_NAMESPACE, durable: true, execution: 'local', logger: options.logger });

    for (let kill = 0; kill < options.kills; kill++) {
      const hits = new HitServer();
      hitServers.push(hits);
      await hits.start();
      const params = [`hitUrl=${hits.url}`, `steps=${RESUME_STEPS}`, `stepMs=${RESUME_STEP_MS}`].flatMap((param) => ['--param', param]);
      const owner = spawn('tenaz run', ['run', FLOW_FILE, '--flow', FLOW_NAME, ...params]);
      await hits.until((hit) => hit.what === 'step-1', START_TIMEOUT_MS);
      // Anywhere in step 1 or at its end: the kill may catch step 2 on its way to the task worker.
      await sleep(Math.random() * RESUME_STEP_MS);
      const killedAt = performance.now();
      const killedAtEpochMs = Date.now();
      owner.signal('SIGKILL');
      await owner.exited;

      const [run] = await admin.runs.list({ flowName: FLOW_NAME, limit: 1 });
      const tookOverAt = run === undefined ? undefined : await untilTookOver(resumers, run.id, RESUME_TIMEOUT_MS);
      // Hits are stamped on this process's clock, the take-over on the resumer's: the same machine's.
      const epochOf = (hit: { at: number }) => killedAtEpochMs + (hit.at - killedAt);
      const resumed =
        tookOverAt === undefined
          ? undefined
          : await hits.until((hit) => hit.at > killedAt && epochOf(hit) >= tookOverAt, RESUME_TIMEOUT_MS).catch(() => undefined);
      let record: FlowRunRecord | undefined;
      // A run that never ran again is not waited for: its record as it stands says what happened.
      if (run !== undefined && resumed === undefined) record = await admin.runs.get(run.id).catch(() => undefined);
      else if (run !== undefined) record = await withTimeout(admin.runs.wait(run.id).catch(() => undefined), RUN_END_TIMEOUT_MS);
      const outcome: KillOutcome = {
        flowRunId: run?.id,
        ownerPid: owner.pid,
        resumedMs: resumed === undefined ? undefined : resumed.at - killedAt,
        tookOverMs: tookOverAt === undefined ? undefined : tookOverAt - killedAtEpochMs,
        record,
        stepsRunTwice: stepsRunTwice(hits.hits),
        resumerHitsBeforeKill: hits.hits.filter((hit) => hit.at <= killedAt && resumerPids.has(hit.pid)).length,
      };
      outcomes.push(outcome);
      options.onKill(kill, outcome);
    }
    return { outcomes, ...collectOutput(spawned) };
  } finally {
    await admin?.close();
    await stopAll(spawned.map((s) => s.process));
    await processes.killAll();
    if (LOG_DIR) saveOutput(spawned, LOG_DIR);
    await Promise.all(hitServers.map((hits) => hits.stop()));
  }
}

/** Whether the run completed after being resumed, with the fixture's result. */
export function completedAfterResume(record: FlowRunRecord | undefined): boolean {
  const total = (record?.result as { total?: unknown } | undefined)?.total;
  return record?.state.name === 'Completed' && record.resumes >= 1 && total === EXPECTED_TOTAL;
}

/** `tookOverTime` once a resumer has logged it; undefined when none does within `timeoutMs`. */
async function untilTookOver(resumers: TenazProcess[], flowRunId: string, timeoutMs: number): Promise<number | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const at = tookOverTime(resumers, flowRunId);
    if (at !== undefined || performance.now() > deadline) return at;
    await sleep(20);
  }
}

/** The time (epoch ms, the resumer's clock) of the `Took over flow run` line for this run, from whichever resumer logged it. */
function tookOverTime(resumers: TenazProcess[], flowRunId: string): number | undefined {
  for (const resumer of resumers) {
    for (const log of jsonLines(resumer.stderr)) {
      if (log.flowRunId === flowRunId && String(log.msg).startsWith(TOOK_OVER) && typeof log.time === 'number') return log.time;
    }
  }
  return undefined;
}

function stepsRunTwice(hits: Hit[]): number {
  const counts = new Map<string, number>();
  for (const hit of hits) counts.set(hit.what, (counts.get(hit.what) ?? 0) + 1);
  return [...counts.values()].filter((count) => count > 1).length;
}

/** Warnings and errors from every process's JSON log (on stderr), and the stderr lines that are neither log records nor `tenaz:` notes. */
function collectOutput(spawned: Array<{ role: string; process: TenazProcess }>): Pick<ResumeResult, 'warnings' | 'stderr'> {
  const levels: Record<number, Warning['level']> = { 40: 'warn', 50: 'error', 60: 'fatal' };
  const warnings: ResumeResult['warnings'] = [];
  const stderr: ResumeResult['stderr'] = [];
  for (const { role, process: child } of spawned) {
    for (const log of jsonLines(child.stderr)) {
      const level = levels[Number(log.level)];
      if (level === undefined) continue;
      const err = log.err as { type?: string; message?: string } | undefined;
      warnings.push({ role, level, msg: String(log.msg), ...(err?.message ? { err: `${err.type ?? 'Error'}: ${err.message}` } : {}) });
    }
    for (const line of child.stderr.split('\n')) if (line.trim() !== '' && !line.startsWith('tenaz: ') && !line.startsWith('{')) stderr.push({ role, text: line });
  }
  return { warnings, stderr };
}

function saveOutput(spawned: Array<{ role: string; process: TenazProcess }>, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const { role, process: child } of spawned) {
    const name = `${role.replace(/[^a-z]+/g, '-')}-${child.pid}`;
    writeFileSync(join(dir, `${name}.stdout`), child.stdout);
    writeFileSync(join(dir, `${name}.stderr`), child.stderr);
  }
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  const records: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed !== null && typeof parsed === 'object') records.push(parsed as Record<string, unknown>);
    } catch {
      // A partial or foreign line: not a log record.
    }
  }
  return records;
}

/** SIGTERM to each process still running (a drain), then waits up to `STOP_GRACE_MS`; the caller SIGKILLs what is left. */
async function stopAll(live: TenazProcess[]): Promise<void> {
  for (const child of live) child.signal('SIGTERM');
  await withTimeout(Promise.all(live.map((child) => child.exited)), STOP_GRACE_MS);
}

/** The promise's value, or undefined once `timeoutMs` passed first. */
async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
