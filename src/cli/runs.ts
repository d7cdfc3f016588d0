/**
 * `tenaz runs`: managing flow runs from any process. `runs cancel ID` cancels a
 * flow run nobody has taken yet in its record, or asks the process that owns it to
 * cancel it; `runs ls` and `runs retry ID` read and write the durable run records (`runs show ID` is in runs-show.ts).
 * Also the pieces `tenaz start` shares: opening the run records, and waiting
 * for a queued run to end.
 */
import { STATE_NAMES } from '../../actors/state.js';
import type { FlowRunRecord } from '../durable/records.js';
import type { QueuedFlowRun, RunAdmin } from '../durable/run-admin.js';
import { TenazError } from '../errors.js';
import { namespaceOf, openOrchestrator, type ConnectionFlags, type LogFlags } from './connection.js';
import { assertPermitted, runRecordsPermissions } from './permissions.js';
import { createSubjects } from '../subjects.js';
import { CliError } from './errors.js';
import { describeError, formatRunTable, toResultJson } from './format-run.js';
import { toJson } from './json.js';
import { exitCodeOf, trapShutdownSignals } from './shutdown.js';
import { createCliLogger, note, type CliStreams } from './streams.js';

/** These commands print what was asked for; logs only say when something is wrong. */
const QUIET_LEVEL = 'warn';

export interface RunsCancelOptions extends ConnectionFlags, LogFlags {
  /** Why, as the run's logs and the body's abort reason will say. @default 'cancelled' */
  reason?: string;
}

/** Options of `tenaz runs ls`, as commander parses them. */
export interface RunsListOptions extends ConnectionFlags, LogFlags {
  /** Only runs of this flow (by flow name). */
  flow?: string;
  /** Only runs in this state (a state name, any case). */
  state?: string;
  /** At most this many, newest first. @default 100 */
  limit?: number;
  /** One JSON record per line instead of a table. @default false */
  json?: boolean;
}

/** How a command that queues a flow run reports it: `tenaz start` and `tenaz runs retry`. */
export interface WaitFlags {
  /** Wait for the run to end; the exit code says whether it completed. @default false */
  wait?: boolean;
  /** Print JSON on stdout: the queued run, or with `wait` its final record. @default false */
  json?: boolean;
}

/** Options of `tenaz runs retry`, as commander parses them. */
export interface RunsRetryOptions extends ConnectionFlags, LogFlags, WaitFlags {}

/**
 * Cancels a flow run and resolves with the exit code: 0 once it ended `Cancelled` (a run no
 * process had taken yet) or once its owner has been asked to cancel it (`tenaz watch --run ID`
 * shows it end `Cancelled`). An unknown id, or a run that has already ended, is one line and exit code 1.
 * @example process.exitCode = await runsCancelCommand('0b6e…', { nats: 'nats://127.0.0.1:4222' }, processStreams());
 */
export async function runsCancelCommand(flowRunId: string, options: RunsCancelOptions, io: CliStreams): Promise<number> {
  await assertRunAdmin('runs cancel', options);
  const logger = createCliLogger(io, options, QUIET_LEVEL);
  const { orchestrator, server } = await openOrchestrator(options, { command: 'runs cancel', logger, requireNats: true, execution: 'local', durable: true });
  const reason = options.reason ?? 'cancelled';
  try {
    let found;
    try {
      found = await orchestrator.runs.cancel(flowRunId, reason);
    } catch (error) {
      if (!(error instanceof TenazError && error.code === 'NOT_FOUND')) throw error;
      // A run with `durable: false` has no record, and only its owner knows it: ask anyway.
      await orchestrator.cancelRun(flowRunId, reason);
      throw new CliError(`no flow run ${flowRunId} is recorded; in case it runs without records (durable: false), the processes that own flow runs were asked to cancel it`, { cause: error, exitCode: 1 });
    }
    const { outcome, record } = found;
    if (outcome === 'cancelled') {
      note(io, `cancelled flow run '${record.name}' (${record.id}): no process had taken it yet`);
      return 0;
    }
    note(io, `asked the owner of flow run '${record.name}' (${record.id}) on ${server ?? 'NATS'} to cancel it`);
    return 0;
  } catch (error) {
    throw toCliError(error);
  } finally {
    await orchestrator.close();
  }
}

/**
 * Prints the recorded flow runs, newest first, and resolves with 0.
 * @example process.exitCode = await runsListCommand({ nats: 'nats://127.0.0.1:4222', state: 'failed' }, processStreams());
 */
export async function runsListCommand(options: RunsListOptions, io: CliStreams): Promise<number> {
  // Checked before connecting: a typo is the same one line with or without a server.
  if (options.state !== undefined) assertStateName(options.state);
  return withRunAdmin('runs ls', options, io, async (runs) => {
    const records = await runs.list({ flowName: options.flow, state: options.state?.trim(), limit: options.limit });
    if (options.json) {
      for (const record of records) io.stdout.write(`${toJson(record)}\n`);
    } else if (records.length > 0) {
      io.stdout.write(`${formatRunTable(records, Date.now())}\n`);
    }
    if (records.length === 0) note(io, 'no flow run recorded matches');
    return 0;
  });
}

/**
 * Queues a new attempt of a flow run that ended without completing, for a
 * process serving its flow; with `wait`, resolves once it has ended (0 only if it completed).
 * @example process.exitCode = await runsRetryCommand('0b6e…', { nats: 'nats://127.0.0.1:4222', wait: true }, processStreams());
 */
export async function runsRetryCommand(flowRunId: string, options: RunsRetryOptions, io: CliStreams): Promise<number> {
  return withRunAdmin('runs retry', options, io, async (runs) => {
    const queued = await runs.retry(flowRunId);
    // The attempt is read back rather than guessed: the record is the one the run goes on with.
    const { attempt } = await runs.get(queued.id);
    note(io, `queued flow run '${queued.name}' (${queued.id}) of flow '${queued.flowName}' again: attempt ${attempt}`);
    return reportQueued(queued, options, io);
  });
}

/**
 * Opens a durable orchestrator for a `runs` command (logs on stderr, from
 * `warn` unless asked), hands `body` the run records and always closes it.
 * What the records refuse (unknown id, a run in the wrong state) is a `CliError`.
 */
export async function withRunAdmin(command: string, options: ConnectionFlags & LogFlags, io: CliStreams, body: (runs: RunAdmin) => Promise<number>): Promise<number> {
  await assertRunAdmin(command, options);
  const logger = createCliLogger(io, options, QUIET_LEVEL);
  const { orchestrator } = await openOrchestrator(options, { command, logger, requireNats: true, execution: 'local', durable: true });
  try {
    return await body(orchestrator.runs);
  } catch (error) {
    throw toCliError(error);
  } finally {
    await orchestrator.close();
  }
}

/**
 * What `start` and `retry` print once the run is queued: its id on stdout (or
 * the run as JSON), or with `wait` how it ended. Resolves with the exit code.
 */
export async function reportQueued(queued: QueuedFlowRun, flags: WaitFlags, io: CliStreams): Promise<number> {
  if (!flags.wait) {
    io.stdout.write(flags.json ? `${JSON.stringify({ id: queued.id, name: queued.name, flowName: queued.flowName })}\n` : `${queued.id}\n`);
    return 0;
  }
  const trap = trapShutdownSignals();
  try {
    const ended = await Promise.race([queued.wait().catch((error: unknown) => stoppedWaiting(queued, error)), trap.first]);
    if (typeof ended === 'string') {
      // Only the waiting stops: the run is another process's to finish.
      note(io, `${ended}: stopped waiting; flow run '${queued.name}' (${queued.id}) goes on`);
      return exitCodeOf(ended);
    }
    return reportEnd(ended, flags, io);
  } finally {
    trap.dispose();
  }
}

/**
 * The wait rides out a server that is away for a while; a connection closed for good ends
 * it, in one line: the run itself is another process's and may well go on.
 */
function stoppedWaiting(queued: QueuedFlowRun, error: unknown): never {
  if (error instanceof TenazError && error.code === 'CLOSED') {
    throw new CliError(`stopped waiting for flow run '${queued.name}' (${queued.id}): ${error.message}; the run may go on`, { cause: error, exitCode: 1 });
  }
  throw error;
}

/** Prints how a run ended, as `tenaz run` does: the result on stdout when it completed, else the state on stderr. */
function reportEnd(record: FlowRunRecord, flags: WaitFlags, io: CliStreams): number {
  const completed = record.state.type === 'COMPLETED';
  if (flags.json) {
    io.stdout.write(`${toJson(record)}\n`);
  } else if (completed) {
    if (record.hasResult) io.stdout.write(`${toResultJson(record.result)}\n`);
  }
  if (!completed) {
    const error = describeError(record);
    note(io, `flow run '${record.name}' (${record.id}) ended ${record.state.name}${record.attempt > 1 ? ` (attempt ${record.attempt})` : ''}${error === undefined ? '' : `: ${error}`}`);
  }
  return completed ? 0 : 1;
}

/** Refusals of the run records, as one line: a wrong id or state exits 1, a bad argument 2. */
function toCliError(error: unknown): unknown {
  if (!(error instanceof TenazError)) return error;
  if (error.code === 'NOT_FOUND' || error.code === 'ILLEGAL_STATE') return new CliError(error.message, { cause: error, exitCode: 1 });
  if (error.code === 'INVALID_ARGUMENT') return new CliError(error.message, { cause: error });
  return error;
}

function assertStateName(text: string): void {
  if (STATE_NAMES.some((name) => name.toLowerCase() === text.trim().toLowerCase())) return;
  throw new CliError(`--state: no state is named '${text}'; states are ${STATE_NAMES.join(', ')}`);
}

/** A user of a role that may not manage runs (worker, observer) is told so in one line, exit code 2, before anything is done. */
async function assertRunAdmin(command: string, options: ConnectionFlags): Promise<void> {
  await assertPermitted(options, command, runRecordsPermissions(createSubjects(namespaceOf(options)), `tenaz ${command}`));
}
