/**
 * `tenaz start NAME`: starts a flow run by the name of its flow, for whichever
 * process serves the flow (`tenaz worker FILE` serves the flows FILE defines),
 * now or once one does. It needs neither the flow's code nor a process serving
 * it: the run waits `Scheduled` in the run records until one takes it.
 */
import type { ConnectionFlags, LogFlags } from './connection.js';
import { CliError } from './errors.js';
import { parseParamTexts, parseValues } from './params.js';
import { reportQueued, withRunAdmin, type WaitFlags } from './runs.js';
import { note, type CliStreams } from './streams.js';

/** Options of `tenaz start`, as commander parses them. */
export interface StartCommandOptions extends ConnectionFlags, LogFlags, WaitFlags {
  /** `key=value` pairs, one per `--param`: the flow's parameters by name. */
  param?: string[];
  /** The flow's arguments as a JSON array, instead of `param`. */
  args?: string;
}

/**
 * Queues the flow run and resolves with the exit code: 0 once queued, or with
 * `wait`, 0 if it completed and 1 if it ended otherwise.
 * @example process.exitCode = await startCommand('etl', { nats: 'nats://127.0.0.1:4222', param: ['day=2026-11-23'], wait: true }, processStreams());
 */
export async function startCommand(flowName: string, options: StartCommandOptions, io: CliStreams): Promise<number> {
  const parameters = toParameters(options);
  return withRunAdmin('start', options, io, async (runs) => {
    const queued = await runs.start(flowName, parameters);
    note(io, `started flow run '${queued.name}' (${queued.id}) of flow '${queued.flowName}'`);
    return reportQueued(queued, options, io);
  });
}

/**
 * The flow's parameters. This process has no flow code to match names against:
 * `--param` pairs go by name, and the process serving the flow maps them onto
 * its parameters as `tenaz run --param` does (the fields of a zod object schema,
 * else the function's parameter names); `--args` gives the argument list itself.
 */
function toParameters(options: StartCommandOptions): unknown[] | { named: Record<string, unknown>; texts: Record<string, string> } {
  const pairs = options.param ?? [];
  if (options.args === undefined) {
    const texts = parseParamTexts(pairs);
    return { named: Object.fromEntries(parseValues(texts)), texts: Object.fromEntries(texts) };
  }
  if (pairs.length > 0) throw new CliError('give the parameters either as --param pairs or as --args, not both');
  let parsed: unknown;
  try {
    parsed = JSON.parse(options.args);
  } catch (error) {
    throw new CliError(`--args is not JSON: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (!Array.isArray(parsed)) throw new CliError(`--args takes a JSON array of the flow's arguments, e.g. '[1, "a"]'; got ${JSON.stringify(options.args)}`);
  return parsed;
}
