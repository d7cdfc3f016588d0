/**
 * The one error class of the command line: a mistake the user can fix (a
 * missing file, a bad `--param`, no flow to run). `main` prints its message
 * as one `tenaz: ...` line, with no stack, and exits with `exitCode`.
 */

/** Exit code of a usage error, as most Unix tools use it. */
export const USAGE_EXIT_CODE = 2;

/** A user error of the command line: printed as one line, exit code 2. */
export class CliError extends Error {
  readonly code = 'CLI_USAGE';
  readonly exitCode: number;

  constructor(message: string, options: { cause?: unknown; exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? USAGE_EXIT_CODE;
  }
}
