/**
 * `tenaz runs show ID`: one flow run as its record keeps it (state, attempt,
 * owner, error or result) with the task runs it made, in call order.
 */
import type { ConnectionFlags, LogFlags } from './connection.js';
import { formatRunDetails } from './format-run.js';
import { toJson } from './json.js';
import { withRunAdmin } from './runs.js';
import type { CliStreams } from './streams.js';

/** Options of `tenaz runs show`, as commander parses them. */
export interface RunsShowOptions extends ConnectionFlags, LogFlags {
  /** The flow run and its task runs as one JSON object, `{ run, taskRuns }`. @default false */
  json?: boolean;
}

/**
 * Prints a flow run and its task runs; resolves with 0, or fails with one line
 * (exit code 1) when no flow run has the id.
 * @example process.exitCode = await runsShowCommand('0b6e…', { nats: 'nats://127.0.0.1:4222' }, processStreams());
 */
export async function runsShowCommand(flowRunId: string, options: RunsShowOptions, io: CliStreams): Promise<number> {
  return withRunAdmin('runs show', options, io, async (runs) => {
    const details = await runs.show(flowRunId);
    io.stdout.write(options.json ? `${toJson(details)}\n` : `${formatRunDetails(details, Date.now())}\n`);
    return 0;
  });
}
