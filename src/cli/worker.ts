/**
 * `tenaz worker FILE`: loads the file, which defines tasks with `task()`, and
 * runs the task runs that flows in other processes dispatch over NATS, until
 * SIGINT or SIGTERM. The first signal drains (no new task runs; running ones
 * get `--grace-ms` to finish), the second stops at once (running task runs
 * are handed back to their owners, who restart them on another worker).
 * Unless `--no-flows`, it also serves the file's flows, durably: flow runs
 * started by name elsewhere (`tenaz start`), retried, or left by a process
 * that died run here, and dispatch their tasks to the workers like any flow
 * run, this one among them.
 */
import { TenazError } from '../errors.js';
import { DEFAULT_POOL } from '../options.js';
import { setDefaultOrchestrator } from '../runtime/ambient.js';
import { registeredFlows, registeredTasks } from '../runtime/definitions.js';
import type { TaskWorker } from '../remote/worker.js';
import type { Orchestrator } from '../runtime/orchestrator.js';
import { createSubjects } from '../subjects.js';
import { namespaceOf, openFlowOwner, openOrchestrator, type ConnectionFlags, type LogFlags } from './connection.js';
import { CliError } from './errors.js';
import { assertFlowFile, loadFlowFile } from './load.js';
import { describeRefusal, flowOwnerPermissions, probePermissions, taskWorkerPermissions, type Permission } from './permissions.js';
import { trapShutdownSignals } from './shutdown.js';
import { createCliLogger, note, type CliStreams } from './streams.js';

/** Options of `tenaz worker`, as commander parses them. */
export interface WorkerCommandOptions extends ConnectionFlags, LogFlags {
  /** Take task runs of this pool instead of each task's own `pool`. */
  pool?: string;
  /** Task runs executed at once. @default 16 */
  concurrency?: number;
  /** How long running task runs may take to finish after the first signal, in ms. @default 30000 */
  graceMs?: number;
  /** `false` (`--no-flows`): serve the file's tasks only. @default true */
  flows?: boolean;
}

/** Grace period of a drain when `--grace-ms` is not given, in ms. */
export const DEFAULT_WORKER_GRACE_MS = 30_000;

/**
 * Serves the tasks of a file until a signal and resolves with the exit code:
 * 0 after a drain or a stop asked for by a signal, 1 if the worker stopped by itself.
 * @example process.exitCode = await workerCommand('flows.ts', { nats: 'nats://127.0.0.1:4222', concurrency: 8 }, processStreams());
 */
export async function workerCommand(file: string, options: WorkerCommandOptions, io: CliStreams): Promise<number> {
  const graceMs = options.graceMs ?? DEFAULT_WORKER_GRACE_MS;
  assertFlowFile(file, io.cwd);
  // Probed before this process connects for good, so that a user of the wrong role reads one
  // line and nothing else: what the file needs is known once it is loaded, below.
  const needs = permissionsOf(options);
  const refusals = await probePermissions(options, 'worker', [...needs.tasks, ...needs.flows]);
  const logger = createCliLogger(io, options);
  // Task bodies run here, so tasks they call run here too, not dispatched again (a body waiting
  // for a task that waits for a free slot of its own worker could wait for ever).
  const { orchestrator, server } = await openOrchestrator(options, { command: 'worker', logger, requireNats: true, execution: 'local', durable: false });
  // Before the import, so that flows or tasks the file calls at module level use this orchestrator too.
  const previous = setDefaultOrchestrator(orchestrator);
  const trap = trapShutdownSignals();
  // Flows the file defines are served by an orchestrator of their own on the same connection,
  // durably (runs started by name, retried, or left by a dead process), which dispatches their
  // tasks to the workers, so that they spread and every worker's concurrency holds.
  let flowOwner: Orchestrator | undefined;
  try {
    await loadFlowFile(file, io.cwd);
    const servesFlows = options.flows !== false && registeredFlows().size > 0;
    if (registeredTasks().size === 0 && !servesFlows) throw new CliError(`no task or flow found in ${file}: define them with task() and flow()`);
    // Before serving anything: a user of the wrong role is told so in one line, not by
    // warnings while the worker half works or by the first claim it makes being refused.
    const refused = refusals.find((permission) => servesFlows || needs.tasks.includes(permission));
    if (refused !== undefined) throw new CliError(describeRefusal(servesFlows && needs.tasks.includes(refused) ? { ...refused, fix: SERVICE_FIX } : refused));
    const worker = startWorker(orchestrator, options);
    if (servesFlows) flowOwner = await openFlowOwner(orchestrator, options, logger);
    // Both awaited together, so that neither fails unseen while the other is awaited.
    const started = Promise.all([worker.ready(), flowOwner === undefined ? undefined : serveFlows(flowOwner)]).then(
      ([, flows]) => ({ ok: true as const, flows }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    // A signal while the worker starts is a drain like any other.
    const first = await Promise.race([started, trap.first]);
    if (typeof first === 'object') {
      if (!first.ok) {
        if (first.error instanceof CliError) throw first.error;
        throw new CliError(`the worker could not start: ${describe(first.error)}`, { cause: first.error });
      }
      const flowNames = first.flows === undefined ? '' : `flow(s) ${first.flows.join(', ')} and `;
      note(io, `serving ${flowNames}${describeTasks(worker)} on ${server}; concurrency ${worker.concurrency}`);
    }
    const why = typeof first === 'string' ? first : await Promise.race([trap.first, worker.closed().then(() => 'stopped' as const)]);
    if (why === 'stopped') {
      // The server refusing this user a worker's rights is the user's to fix, said in one line.
      if (worker.stopReason !== undefined) throw worker.stopReason;
      note(io, 'the worker stopped by itself; see the log for why');
      return 1;
    }
    note(io, `${why}: draining; running task runs have ${graceMs} ms to finish (send it again to stop now)`);
    void trap.second.then((signal) => {
      note(io, `${signal} again: stopping now; running task runs are handed back`);
      void closeAll(flowOwner, orchestrator);
    });
    // Flow runs still running when the grace is over are left to a process that serves their flow.
    // The worker's orchestrator owns the connection the flow owner runs on: it closes only once
    // the flow owner is done, or the flow owner's runs, cut off, could be handed to nobody.
    await Promise.all([flowOwner?.drain({ graceMs }), worker.drain({ graceMs })]);
    await orchestrator.drain({ graceMs });
    note(io, `worker stopped after ${worker.stats.finished} task run(s)`);
    return 0;
  } finally {
    trap.dispose();
    await closeAll(flowOwner, orchestrator);
    setDefaultOrchestrator(previous);
  }
}

/** The flow owner first: it runs on the worker's connection, which the worker's orchestrator closes. */
async function closeAll(flowOwner: Orchestrator | undefined, orchestrator: Orchestrator): Promise<void> {
  await flowOwner?.close();
  await orchestrator.close();
}

/** What to do about a worker's right refused to a process that serves flows too. */
const SERVICE_FIX = 'run it as the service role, which serves flows and tasks';

/** What the worker needs the server to grant its user: a worker's rights, and an owner's if it may serve flows. */
function permissionsOf(flags: WorkerCommandOptions): { tasks: Permission[]; flows: Permission[] } {
  const subjects = createSubjects(namespaceOf(flags));
  return {
    tasks: taskWorkerPermissions(subjects, 'run it as the worker or service role'),
    flows: flags.flows === false ? [] : flowOwnerPermissions(subjects, 'serving flows', 'give --no-flows to serve the tasks only, or run it as the service role'),
  };
}

/** Serves the file's flows; resolves with their names. A flow name defined twice is the user's to fix. */
async function serveFlows(orchestrator: Orchestrator): Promise<string[]> {
  try {
    await orchestrator.serveFlows();
  } catch (error) {
    if (error instanceof TenazError && error.code === 'INVALID_ARGUMENT') throw new CliError(error.message, { cause: error });
    throw new CliError(`could not serve the flows: ${describe(error)}`, { cause: error });
  }
  return [...registeredFlows().keys()];
}

/** Options the runtime rejects (a task name defined twice, ...) are the user's to fix. */
function startWorker(orchestrator: Orchestrator, options: WorkerCommandOptions): TaskWorker {
  try {
    return orchestrator.worker({ pool: options.pool, concurrency: options.concurrency });
  } catch (error) {
    if (error instanceof TenazError && error.code === 'INVALID_ARGUMENT') throw new CliError(error.message, { cause: error });
    throw error;
  }
}

/** `double, add-one from pool default`, or with pools per task when they differ. */
function describeTasks(worker: TaskWorker): string {
  const tasks = registeredTasks();
  const poolOf = (name: string) => worker.pool ?? tasks.get(name)?.[0]?.options.pool ?? DEFAULT_POOL;
  const pools = new Set(worker.taskNames.map(poolOf));
  if (pools.size === 1) return `${worker.taskNames.join(', ')} from pool ${[...pools][0]}`;
  return worker.taskNames.map((name) => `${name} (pool ${poolOf(name)})`).join(', ');
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n', 1)[0] ?? message;
}
