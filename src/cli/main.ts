/**
 * The `tenaz` command line. `bin/tenaz.js` calls `runCli()`; `main()` is the
 * same without leaving the process, for embedding and tests.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { CliError } from './errors.js';
import { runCommand, type CliStreams, type RunCommandOptions } from './run.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Builds the program; the exit code of the command that runs is handed to `onExit`. */
export function createProgram(io: CliStreams, onExit: (code: number) => void): Command {
  const program = new Command('tenaz')
    .description('Fault-tolerant workflow orchestrator for TypeScript: run flows made with flow() and task().')
    .version(readVersion(), '-v, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Commander's own usage errors come out in the same one-line shape as ours.
      outputError: (text, write) => write(`tenaz: ${text.replace(/^error: /, '')}`),
    });

  program
    .command('run')
    .description('Run a flow from a TypeScript or JavaScript file and print its result as JSON.')
    .argument('<file>', 'file that exports the flow, relative to the current directory')
    .option('-p, --param <key=value>', 'a flow parameter; the value is JSON when it parses, else a string (repeatable)', collect)
    .option('-f, --flow <name>', 'flow name or export name, when the file exports several flows')
    .addOption(new Option('--log-format <format>', 'log line format').choices(['pretty', 'json', 'auto']))
    .addOption(new Option('--log-level <level>', 'lowest level logged').choices(LOG_LEVELS))
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  tenaz run examples/get-repo-info.ts --param repo=PrefectHQ/prefect\n' +
        '  tenaz run flows.ts --flow nightly --param limit=10 --param \'tags=["a","b"]\'\n' +
        '  tenaz run flows.ts --param \'version="1.0"\'   # quoted JSON keeps a string a string',
    )
    .action(async (file: string, options: RunCommandOptions) => onExit(await runCommand(file, options, io)));

  return program;
}

/**
 * Parses `argv` (as `process.argv`: node, script, then arguments), runs the
 * command and resolves with the exit code: 0 success, 1 a run that did not
 * complete, 2 a usage error. Never throws for user errors.
 * @example process.exitCode = await main(process.argv);
 */
export async function main(argv: readonly string[], io: CliStreams = processStreams()): Promise<number> {
  let exitCode = 0;
  const program = createProgram(io, (code) => (exitCode = code));
  try {
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (error) {
    // Help and --version leave through here too, with exit code 0 and their text already written.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof CliError) {
      io.stderr.write(`tenaz: ${error.message}\n`);
      return error.exitCode;
    }
    // Not the user's mistake: keep the stack, it is what a bug report needs.
    io.stderr.write(`tenaz: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

/** Runs `main` and exits the process with its code once stdout and stderr have been written out. */
export async function runCli(argv: readonly string[] = process.argv): Promise<never> {
  const code = await main(argv);
  // An exit right away would drop output still queued on a pipe; keep-alive sockets would otherwise hold the process.
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write('', done))));
  process.exit(code);
}

function processStreams(): CliStreams {
  return { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The version in tenaz's package.json, found upward from this file: `src/cli/` in a checkout, `dist/src/cli/` when built. */
function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tenaz' && pkg.version) return pkg.version;
    } catch {
      // No package.json at this level: keep climbing.
    }
    const parent = dirname(dir);
    if (parent === dir) return '0.0.0';
    dir = parent;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

// `tsx src/cli/main.ts run ...` (npm start) runs this file directly; bin/tenaz.js calls runCli() itself.
if (isEntryPoint()) await runCli();
