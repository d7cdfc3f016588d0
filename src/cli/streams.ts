/**
 * Where a command reads and writes: the process's own streams outside tests.
 * stdout carries what the command was asked for (a result, events, a table, an
 * id); stderr carries everything else: log records and `tenaz: ...` notes, so
 * that `tenaz run flow.ts | jq` reads the result alone.
 */
import type { LevelWithSilent, Logger } from 'pino';
import { createRootLogger } from '../log.js';
import type { LogFlags } from './connection.js';

/** The streams and directory a command works with. */
export interface CliStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  cwd: string;
}

/** The process's own streams and working directory. */
export function processStreams(): CliStreams {
  return { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() };
}

/** Writes one `tenaz: ...` line to stderr: the CLI's own notes, beside the log lines and apart from the output. */
export function note(io: CliStreams, text: string): void {
  io.stderr.write(`tenaz: ${text}\n`);
}

/**
 * The command's root logger, writing to stderr. Under `--log-format auto` (the default) the
 * format follows stderr, where the lines go: pretty on a terminal, JSON lines elsewhere.
 * `defaultLevel` applies when neither `--log-level` nor TENAZ_LOG_LEVEL says otherwise.
 */
export function createCliLogger(io: CliStreams, flags: LogFlags, defaultLevel: LevelWithSilent = 'info'): Logger {
  const level = flags.logLevel ?? (process.env.TENAZ_LOG_LEVEL as LevelWithSilent | undefined) ?? defaultLevel;
  return createRootLogger({ format: flags.logFormat, level, destination: io.stderr });
}
