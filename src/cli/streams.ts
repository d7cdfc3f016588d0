/**
 * Where a command reads and writes: the process's own streams outside tests.
 */

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

/** Writes one `tenaz: ...` line to stderr: the CLI's own notes, apart from logs and results. */
export function note(io: CliStreams, text: string): void {
  io.stderr.write(`tenaz: ${text}\n`);
}
