/**
 * `tenaz run FILE`: loads the file, starts one of its flows on a fresh
 * orchestrator, waits for the run, prints its result as JSON on stdout (the
 * logs go to stderr) and says by the exit code how it ended (0 Completed, 1 any other final state,
 * 128 + the signal's number when SIGINT or SIGTERM stopped it). With NATS
 * (`--nats`, `TENAZ_NATS_URL`) the flow runs here and its task runs on workers.
 */
import type { Logger } from 'pino';
import { formatState, type RunState } from '../../actors/state.js';
import { setDefaultOrchestrator } from '../runtime/ambient.js';
import type { FlowDefinition } from '../runtime/definitions.js';
import { missingParameters } from '../runtime/flow-args.js';
import type { FlowRun } from '../runtime/handles.js';
import { createSubjects } from '../subjects.js';
import { namespaceOf, openOrchestrator, type ConnectionFlags, type LogFlags } from './connection.js';
import { toResultJson } from './format-run.js';
import { assertFlowFile, loadFlowFile } from './load.js';
import { parseParamTexts, toFlowArgs } from './params.js';
import { assertPermitted, flowOwnerPermissions } from './permissions.js';
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
  const texts = parseParamTexts(options.param ?? []);
  assertFlowFile(file, io.cwd);
  // Over NATS, this process owns the run: a user that may not (the worker and observer roles)
  // is told so now, in one line, rather than by a run failing step after step.
  const owner = 'run it as the client or service role';
  await assertPermitted(options, 'run', flowOwnerPermissions(createSubjects(namespaceOf(options)), 'tenaz run', owner));
  const logger = createCliLogger(io, options);
  const { orchestrator } = await openOrchestrator(options, { command: 'run', logger });
  // Before the import, so that flows the file runs at module level use this orchestrator too.
  const previous = setDefaultOrchestrator(orchestrator);
  let result: unknown;
  try {
    const exported = selectFlow(await loadFlowFile(file, io.cwd), options.flow, file);
    const args = toFlowArgs(exported.definition, texts);
    warnOfMissingParameters(logger, exported.definition, texts);
    const run = orchestrator.start(exported.flow, ...args);
    const { state, signal } = await waitInterruptibly(run, io);
    if (state.type !== 'COMPLETED') {
      io.stderr.write(`tenaz: flow run '${run.name}' finished in state ${formatState(state)}\n`);
      // As a shell reports a command a signal stopped: scripts tell an interrupted run from a failed one.
      return signal === undefined ? 1 : exitCodeOf(signal);
    }
    result = await run.result();
  } finally {
    await orchestrator.close();
    setDefaultOrchestrator(previous);
  }
  // Alone on stdout (logs are on stderr), and after the orchestrator closed, so that on a
  // terminal, where both streams show, the result still comes after the last log line.
  // Always a JSON document, `null` for undefined, so that `| jq` has one to read.
  io.stdout.write(`${toResultJson(result)}\n`);
  return 0;
}

/**
 * One warning line, before the run starts, naming the flow's positional parameters that have
 * no default and no `--param`. Not refused: a TypeScript optional parameter (`b?: number`) looks
 * the same once compiled, so leaving it out may be meant; the run gets `undefined` for them.
 */
function warnOfMissingParameters(logger: Logger, definition: FlowDefinition, texts: ReadonlyMap<string, string>): void {
  const missing = missingParameters(definition, texts);
  if (missing.length === 0) return;
  const flowName = definition.options.name;
  const names = missing.map((name) => `'${name}'`).join(', ');
  const line =
    missing.length === 1
      ? `parameter ${names} of flow '${flowName}' was not given and has no default; it is passed as undefined`
      : `parameters ${names} of flow '${flowName}' were not given and have no default; they are passed as undefined`;
  logger.child({ component: 'tenaz.cli' }).warn({ flowName, parameters: missing }, line);
}

/**
 * The first SIGINT or SIGTERM cancels the run (its tasks see their signals abort); a second one leaves at once.
 * Resolves with the run's final state and the signal that cancelled it, if one did.
 */
async function waitInterruptibly(run: FlowRun, io: CliStreams): Promise<{ state: RunState; signal: NodeJS.Signals | undefined }> {
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(exitCodeOf(signal));
    interrupted = signal;
    io.stderr.write(`tenaz: ${signal}: cancelling flow run '${run.name}'; send it again (Ctrl-C) to stop at once\n`);
    run.cancel('interrupted');
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);
  try {
    const state = await run.wait();
    return { state, signal: interrupted };
  } finally {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, onSignal);
  }
}
