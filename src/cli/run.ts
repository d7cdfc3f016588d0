/**
 * `tenaz run FILE`: loads the file, starts one of its flows on a fresh
 * orchestrator, waits for the run, prints its result as JSON on stdout (the
 * logs go to stderr) and says by the exit code how it ended (0 Completed, 1 any other final state). With NATS
 * (`--nats`, `TENAZ_NATS_URL`) the flow runs here and its task runs on workers.
 */
import { inspect } from 'node:util';
import { formatState, type RunState } from '../../actors/state.js';
import { setDefaultOrchestrator } from '../runtime/ambient.js';
import type { FlowRun } from '../runtime/handles.js';
import { openOrchestrator, type ConnectionFlags, type LogFlags } from './connection.js';
import { assertFlowFile, loadFlowFile } from './load.js';
import { parseParamArgs, toFlowArgs } from './params.js';
import { selectFlow } from './select.js';
import { SHUTDOWN_SIGNALS, exitCodeOf } from './shutdown.js';
import { createCliLogger, type CliStreams } from './streams.js';

export type { CliStreams } from './streams.js';

/** Options of `tenaz run`, as commander parses them. */
export interface RunCommandOptions extends ConnectionFlags, LogFlags {
  /** `key=value` pairs, one per `--param`. */
  param?: string[];
  /** Flow name or export name to run when the file exports several flows. */
  flow?: string;
}

/**
 * Runs a flow from a file and resolves with the exit code. User errors are
 * thrown as `CliError`s before any run starts.
 * @example process.exitCode = await runCommand('examples/get-repo-info.ts', { param: ['repo=PrefectHQ/prefect'] }, { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() });
 */
export async function runCommand(file: string, options: RunCommandOptions, io: CliStreams): Promise<number> {
  const values = parseParamArgs(options.param ?? []);
  assertFlowFile(file, io.cwd);
  const logger = createCliLogger(io, options);
  const { orchestrator } = await openOrchestrator(options, { command: 'run', logger });
  // Before the import, so that flows the file runs at module level use this orchestrator too.
  const previous = setDefaultOrchestrator(orchestrator);
  let result: unknown;
  try {
    const exported = selectFlow(await loadFlowFile(file, io.cwd), options.flow, file);
    const args = toFlowArgs(exported.definition, values);
    const run = orchestrator.start(exported.flow, ...args);
    const state = await waitInterruptibly(run, io);
    if (state.type !== 'COMPLETED') {
      io.stderr.write(`tenaz: flow run '${run.name}' finished in state ${formatState(state)}\n`);
      return 1;
    }
    result = await run.result();
  } finally {
    await orchestrator.close();
    setDefaultOrchestrator(previous);
  }
  // Alone on stdout (logs are on stderr), and after the orchestrator closed, so that on a
  // terminal, where both streams show, the result still comes after the last log line.
  if (result !== undefined) io.stdout.write(`${toJson(result)}\n`);
  return 0;
}

/** The first SIGINT or SIGTERM cancels the run (its tasks see their signals abort); a second one leaves at once. */
async function waitInterruptibly(run: FlowRun, io: CliStreams): Promise<RunState> {
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(exitCodeOf(signal));
    interrupted = true;
    io.stderr.write(`tenaz: cancelling flow run '${run.name}'; press Ctrl-C again to stop at once\n`);
    run.cancel('interrupted');
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);
  try {
    return await run.wait();
  } finally {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, onSignal);
  }
}

function toJson(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? inspect(value);
  } catch {
    // A BigInt or a cycle: still show the user what came back.
    return inspect(value, { depth: 6 });
  }
}
