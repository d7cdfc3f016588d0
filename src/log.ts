/**
 * Logging: one root pino logger per process, child loggers per component and
 * per run. On a terminal, lines look like Prefect's:
 *
 *   01:50:04.289 | INFO    | tenaz.engine - Created flow run 'light-potoo' for flow 'get-repo-info'
 *   01:50:05.130 | INFO    | Flow run 'light-potoo' - Finished in state Completed()
 *
 * Elsewhere, or when asked, one JSON object per line.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type LogFormat = 'pretty' | 'json' | 'auto';

export interface LoggerOptions {
  /** `pretty` on a terminal, `json` elsewhere, under `auto`. @default env TENAZ_LOG_FORMAT or 'auto' */
  format?: LogFormat;
  /** @default env TENAZ_LOG_LEVEL or 'info' */
  level?: LevelWithSilent;
  /** Where lines go. @default stderr: a program's own output keeps stdout, as with the CLI */
  destination?: DestinationStream | NodeJS.WritableStream;
  /** Force or forbid colours in the pretty format. @default whether the destination is a terminal */
  colorize?: boolean;
}

const LEVEL_LABELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARNING',
  50: 'ERROR',
  60: 'CRITICAL',
};

const LEVEL_COLORS: Record<number, string> = { 10: '90', 20: '90', 30: '36', 40: '33', 50: '31', 60: '1;31' };

/** Creates the process's root logger. Library code never calls this; it takes a logger from its options. */
export function createRootLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? (process.env.TENAZ_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info';
  const destination = options.destination ?? process.stderr;
  const requested = options.format ?? (process.env.TENAZ_LOG_FORMAT as LogFormat | undefined) ?? 'auto';
  const isTty = (destination as { isTTY?: boolean }).isTTY === true;
  const format = requested === 'auto' ? (isTty ? 'pretty' : 'json') : requested;
  const sink = toLogSink(destination);
  if (format === 'json') return pino({ level, base: undefined }, sink);
  const colorize = options.colorize ?? isTty;
  // pino-pretty's formatter alone, not its stream: that one pipes into the destination, adding
  // 'close', 'error', 'finish' and 'unpipe' listeners to it for every logger (every orchestrator
  // made without one, on a terminal), and destroys it when a write fails.
  const prettify = prettyFactory({
    colorize: false,
    hideObject: true,
    ignore: 'time,level,pid,hostname,component,flowRunId,flowRunName,flowName,taskRunId,taskRunName,taskName,attempt,err',
    messageFormat: (log, messageKey) => formatPrettyLine(log, messageKey, colorize),
  });
  const stream: LogSink = { write: (line: string) => sink.write(prettify(line)), flush: sink.flush };
  return pino({ level }, stream);
}

/** A destination that pino writes to, with `flush` when the stream under it has one. */
type LogSink = DestinationStream & { flush?: (done: (error?: Error) => void) => void };

/** Whether each destination stream's reader has gone, shared by every logger writing to it. */
const readerGone = new WeakMap<object, { gone: boolean }>();

/**
 * `destination` as pino's stream, made so that a reader going away costs the logs and nothing
 * else: `tenaz run flow.ts 2>&1 >out.json | head -1` closes stderr after one line, and the run
 * must go on and print its result. After the first EPIPE nothing more is written; the stream
 * gets one 'error' listener however many loggers write to it.
 */
function toLogSink(destination: DestinationStream | NodeJS.WritableStream): LogSink {
  // pino.multistream() reads what pino records on it: wrapping it would lose that.
  if (Reflect.get(destination, Symbol.for('pino.metadata')) === true) return destination as DestinationStream;
  const state = watchReader(destination);
  const target = destination as LogSink;
  const sink: LogSink = {
    write(line: string) {
      if (state.gone) return;
      try {
        target.write(line);
      } catch (error) {
        // A stream that throws rather than emits (sonic-boom in sync mode) says so here.
        if (!isReaderGone(error)) throw error;
        state.gone = true;
      }
    },
  };
  if (typeof target.flush === 'function') {
    const flush = target.flush.bind(target);
    sink.flush = (done) => (state.gone ? done() : flush(done));
  }
  return sink;
}

function watchReader(destination: object): { gone: boolean } {
  const known = readerGone.get(destination);
  if (known !== undefined) return known;
  const watched = { gone: false };
  readerGone.set(destination, watched);
  const emitter = destination as Partial<NodeJS.EventEmitter>;
  if (typeof emitter.on === 'function' && typeof emitter.listenerCount === 'function') {
    emitter.on('error', function onError(error: unknown) {
      if (isReaderGone(error)) {
        watched.gone = true;
        return;
      }
      // Any other failure stays as loud as it was without this listener, unless someone else handles it.
      if (emitter.listenerCount!('error') === 1) throw error;
    });
  }
  return watched;
}

/** EPIPE: the reader closed its end of the pipe. ERR_STREAM_DESTROYED: a write after that, on a stream Node has closed. */
function isReaderGone(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

/** One log record as a Prefect-shaped line. Exported for tests. */
export function formatPrettyLine(log: Record<string, unknown>, messageKey: string, colorize: boolean): string {
  const time = formatClock(typeof log.time === 'number' ? log.time : Date.now());
  const levelNumber = typeof log.level === 'number' ? log.level : 30;
  const label = (LEVEL_LABELS[levelNumber] ?? 'INFO').padEnd(7);
  const level = colorize ? `\u001b[${LEVEL_COLORS[levelNumber] ?? '0'}m${label}\u001b[0m` : label;
  let line = `${time} | ${level} | ${describeSource(log)} - ${String(log[messageKey] ?? '')}`;
  const err = log.err as { type?: string; message?: string; stack?: string } | undefined;
  // Failures show their stack, as Prefect prints a traceback; other records only add what the line lacks.
  if (err && typeof err === 'object' && err.message !== undefined && (levelNumber >= 50 || !line.includes(err.message))) {
    line += `\n${err.stack ?? `${err.type ?? 'Error'}: ${err.message}`}`;
  }
  return line;
}

function describeSource(log: Record<string, unknown>): string {
  if (typeof log.taskRunName === 'string') return `Task run '${log.taskRunName}'`;
  if (typeof log.flowRunName === 'string') return `Flow run '${log.flowRunName}'`;
  return typeof log.component === 'string' ? log.component : 'tenaz';
}

function formatClock(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
