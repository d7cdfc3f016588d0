/**
 * `tenaz run FILE`: loads the file, starts one of its flows on a fresh
 * orchestrator, waits for the run, prints its result as JSON and says by the
 * exit code how it ended (0 Completed, 1 any other final state).
 */
import { inspect } from 'node:util';
import type { LevelWithSilent } from 'pino';
import { formatState, type RunState } from '../../actors/state.js';
import type { LogFormat } from '../log.js';
import { createRootLogger } from '../log.js';
import { setDefaultOrchestrator } from '../runtime/ambient.js';
import type { FlowRun } from '../runtime/handles.js';
import { createOrchestrator } from '../runtime/orchestrator.js';
import { loadFlowFile } from './load.js';
import { parseParamArgs, toFlowArgs } from './params.js';
import { selectFlow } from './select.js';

/** Options of `tenaz run`, as commander parses them. */
export interface RunCommandOptions {
  /** `key=value` pairs, one per `--param`. */
  param?: string[];
  /** Flow name or export name to run when the file exports several flows. */
  flow?: string;
  /** @default env TENAZ_LOG_FORMAT or 'auto' (pretty on a terminal, JSON elsewhere) */
  logFormat?: LogFormat;
  /** @default env TENAZ_LOG_LEVEL or 'info' */
  logLevel?: LevelWithSilent;
}

/** Where the command reads and writes; the process's own streams outside tests. */
export interface CliStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  cwd: string;
}

/**
 * Runs a flow from a file and resolves with the exit code. User errors are
 * thrown as `CliError`s before any run starts.
 * @example process.exitCode = await runCommand('examples/get-repo-info.ts', { param: ['repo=PrefectHQ/prefect'] }, { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() });
 */
export async function runCommand(file: string, options: RunCommandOptions, io: CliStreams): Promise<number> {
  const values = parseParamArgs(options.param ?? []);
  const logger = createRootLogger({ format: options.logFormat, level: options.logLevel, destination: io.stdout });
  const orchestrator = createOrchestrator({ logger });
  // Before the import, so that flows the file runs at module level use this orchestrator too.
  const previous = setDefaultOrchestrator(orchestrator);
  try {
    const exported = selectFlow(await loadFlowFile(file, io.cwd), options.flow, file);
    const args = toFlowArgs(exported.definition, values);
    const run = orchestrator.start(exported.flow, ...args);
    const state = await waitInterruptibly(run, io);
    if (state.type !== 'COMPLETED') {
      io.stderr.write(`tenaz: flow run '${run.name}' finished in state ${formatState(state)}\n`);
      return 1;
    }
    const result = await run.result();
    if (result !== undefined) io.stdout.write(`${toJson(result)}\n`);
    return 0;
  } finally {
    await orchestrator.close();
    setDefaultOrchestrator(previous);
  }
}

/** The first Ctrl-C cancels the run (its tasks see their signals abort); a second one leaves at once. */
async function waitInterruptibly(run: FlowRun, io: CliStreams): Promise<RunState> {
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    io.stderr.write(`tenaz: cancelling flow run '${run.name}'; press Ctrl-C again to stop at once\n`);
    run.cancel('interrupted');
  };
  process.on('SIGINT', onSignal);
  try {
    return await run.wait();
  } finally {
    process.off('SIGINT', onSignal);
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
