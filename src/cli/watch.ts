/**
 * `tenaz watch`: prints every state change of flow runs and task runs as it
 * happens, one line per event, until SIGINT or SIGTERM. Events travel on
 * NATS, so this needs a server: in embedded mode there is nothing to watch
 * from another process.
 */
import type { EventFilter } from '../events.js';
import type { Since } from '../history.js';
import { createSubjects } from '../subjects.js';
import { namespaceOf, openOrchestrator, type ConnectionFlags, type LogFlags } from './connection.js';
import { CliError } from './errors.js';
import { NoHistoryError } from '../history.js';
import { createEventFormatter } from './format-event.js';
import { probePermissions } from './permissions.js';
import { exitCodeOf, trapShutdownSignals } from './shutdown.js';
import { createCliLogger, note, type CliStreams } from './streams.js';

/** Options of `tenaz watch`, as commander parses them. */
export interface WatchCommandOptions extends ConnectionFlags, LogFlags {
  /** Only runs of this flow (by flow name). */
  flow?: string;
  /** Only this flow run (by id) and its task runs. */
  run?: string;
  /** Only flow run events, or only task run events. */
  kind?: 'flow' | 'task';
  /** One JSON object per event instead of a line of text. @default false */
  json?: boolean;
  /** Replay the history from this time (ISO 8601) or history sequence number first. */
  since?: string;
}

/**
 * Watches run events and resolves with the exit code: 0 once stopped by a
 * signal (or once stdout is closed, as by `| head`), 1 if the subscription
 * ends by itself.
 * @example process.exitCode = await watchCommand({ nats: 'nats://127.0.0.1:4222', flow: 'etl' }, processStreams());
 */
export async function watchCommand(options: WatchCommandOptions, io: CliStreams): Promise<number> {
  // Events are the output; logs (on stderr, as always) only say when something is wrong.
  const logger = createCliLogger(io, options, 'warn');
  const filter = toFilter(options);
  const since = options.since === undefined ? undefined : parseSinceFlag(options.since);
  let subject: string;
  try {
    subject = createSubjects(namespaceOf(options)).eventFilter(filter);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`bad filter: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  // A user that may not subscribe to live events (the worker role) may read the history,
  // through which live events come anyway once it exists: it follows the history alone,
  // rather than warn about a refused subscription it does not need.
  const liveRefused =
    since === undefined &&
    (await probePermissions(options, 'watch', [{ operation: 'subscribe', subject, purpose: 'see events as they are published', who: 'tenaz watch', fix: 'follow the event history' }])).length > 0;
  const { orchestrator, server } = await openOrchestrator(options, { command: 'watch', logger, requireNats: true, execution: 'local' });
  const trap = trapShutdownSignals();
  let stopped = false;
  try {
    const events = orchestrator.watch({ ...filter, since: liveRefused ? { time: Date.now() } : since });
    const stop = () => {
      stopped = true;
      events.close();
    };
    void trap.first.then(stop);
    void trap.second.then((signal) => process.exit(exitCodeOf(signal)));
    // A reader that went away (`tenaz watch | head`) is a normal end, not a crash.
    io.stdout.on('error', stop);
    // Once the server has the subscription, nothing published from now on is missed.
    await orchestrator.nats?.flush();
    const how = since !== undefined ? `, from ${options.since} in the history` : liveRefused ? ' through the event history (this user may not subscribe to live events)' : '';
    note(io, `watching ${subject} on ${server ?? 'NATS'}${how}`);
    const format = createEventFormatter({ json: options.json, colorize: io.stdout.isTTY === true && !process.env.NO_COLOR });
    // The orchestrator validates what comes off the wire: only run events get here.
    try {
      for await (const event of events) io.stdout.write(`${format(event)}\n`);
    } catch (error) {
      // Nothing was ever kept: a user's matter (start a process that owns runs first), not a crash.
      if (error instanceof NoHistoryError) throw new CliError(`${error.message}; it is made by the first process that runs flows over NATS`, { cause: error, exitCode: 1 });
      throw error;
    }
    if (stopped) return 0;
    note(io, 'the event subscription ended');
    return 1;
  } finally {
    trap.dispose();
    await orchestrator.close();
  }
}

function toFilter(options: WatchCommandOptions): EventFilter {
  const filter: EventFilter = {};
  if (options.flow !== undefined) filter.flowName = options.flow;
  if (options.run !== undefined) filter.flowRunId = options.run;
  if (options.kind !== undefined) filter.kind = options.kind;
  return filter;
}

/** `--since`: a history sequence number (digits) or a time (ISO 8601, or anything Date.parse reads). */
function parseSinceFlag(value: string): Since {
  const text = value.trim();
  if (/^\d+$/.test(text)) return { seq: Number(text) };
  const time = Date.parse(text);
  if (Number.isNaN(time)) throw new CliError(`--since takes a time (e.g. 2026-11-23T18:00:00Z) or a sequence number, got ${JSON.stringify(value)}`);
  return { time };
}
