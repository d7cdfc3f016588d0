/**
 * The logger of the NATS benchmark's processes: info level to /dev/null, as
 * bench/run.ts logs, so that every record is formatted and written as in
 * production; warnings and errors are also handed to `onWarning`, so that the
 * bench can report what went wrong.
 */
import { pino, type Logger } from 'pino';
import { nullLogDestination } from './measure.js';

export interface Warning {
  level: 'warn' | 'error' | 'fatal';
  msg: string;
  err?: string;
}

const LEVELS: Record<number, Warning['level']> = { 40: 'warn', 50: 'error', 60: 'fatal' };

export function createBenchLogger(onWarning: (warning: Warning) => void): Logger {
  return pino(
    {
      level: 'info',
      hooks: {
        logMethod(args, method, level) {
          if (level >= 40) onWarning(toWarning(args as unknown[], level));
          return method.apply(this, args);
        },
      },
    },
    nullLogDestination(),
  );
}

function toWarning(args: unknown[], level: number): Warning {
  const [first, second] = args;
  const fields = typeof first === 'object' && first !== null && !(first instanceof Error) ? (first as Record<string, unknown>) : undefined;
  const msg = String((fields ? second : first) ?? '');
  const err = first instanceof Error ? first : fields?.err;
  return { level: LEVELS[level] ?? 'warn', msg, ...(err instanceof Error ? { err: `${err.name}: ${err.message}` } : {}) };
}

/** Counts warnings by level and message; keeps one example error text per message. */
export class WarningTally {
  readonly #counts = new Map<string, { count: number; err?: string }>();

  add(warning: Warning): void {
    const key = `${warning.level}: ${warning.msg}`;
    const entry = this.#counts.get(key) ?? { count: 0 };
    entry.count += 1;
    entry.err ??= warning.err;
    this.#counts.set(key, entry);
  }

  get size(): number {
    return this.#counts.size;
  }

  lines(): string[] {
    return [...this.#counts].map(([key, { count, err }]) => `${count} × ${key}${err ? ` (${err})` : ''}`);
  }
}
