/**
 * The `tenaz` command line. `bin/tenaz.js` calls `runCli()`; `main()` is the
 * same without leaving the process, for embedding and tests.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { NAMESPACE_ENV, NATS_URL_ENV, REPLICAS_ENV } from './connection.js';
import { CliError } from './errors.js';
import { runCommand, type RunCommandOptions } from './run.js';
import { runsCancelCommand, runsListCommand, runsRetryCommand, type RunsCancelOptions, type RunsListOptions, type RunsRetryOptions } from './runs.js';
import { runsShowCommand, type RunsShowOptions } from './runs-show.js';
import { startCommand, type StartCommandOptions } from './start.js';
import { processStreams, type CliStreams } from './streams.js';
import { watchCommand, type WatchCommandOptions } from './watch.js';
import { DEFAULT_WORKER_GRACE_MS, workerCommand, type WorkerCommandOptions } from './worker.js';
import { refusedPermission } from '../nats/passing-failure.js';
import { MAX_TIMER_MS } from '../retry.js';

export type { CliStreams } from './streams.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/**
 * Builds the program; the exit code of the command that runs is handed to `onExit`.
 * Every command writes its output to `io.stdout` and its logs and notes to `io.stderr`.
 */
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

  const run = program
    .command('run')
    .description('Run a flow from a TypeScript or JavaScript file and print its result as JSON; with NATS, its tasks run on workers.')
    .argument('<file>', 'file that exports the flow, relative to the current directory')
    .option('-p, --param <key=value>', "a flow parameter; the value is JSON when it parses, else a string, and the text as written for a field the flow's zod schema declares a string (repeatable)", collect)
    .option('-f, --flow <name>', 'flow name or export name, when the file exports several flows');
  addConnectionOptions(run, 'run the flow here and its tasks on workers; without it, everything runs in this process');
  addLogOptions(run)
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  tenaz run examples/get-repo-info.ts --param repo=PrefectHQ/prefect\n' +
        '  tenaz run flows.ts --flow nightly --param limit=10 --param \'tags=["a","b"]\'\n' +
        '  tenaz run flows.ts --param \'version="1.0"\'   # quoted JSON keeps a string a string\n' +
        '  tenaz run flows.ts --nats nats://127.0.0.1:4222   # tasks run on `tenaz worker` processes',
    )
    .action(async (file: string, options: RunCommandOptions) => onExit(await runCommand(file, options, io)));

  const worker = program
    .command('worker')
    .description('Run the task runs that flows dispatch over NATS, for the tasks a file defines, and the flow runs of its flows, until SIGINT or SIGTERM.')
    .argument('<file>', 'file that defines the tasks with task() (and flows with flow()), relative to the current directory')
    .option('--no-flows', "serve the file's tasks only, not its flows (flow runs started by name, retried, or left by a process that died)")
    .option('--pool <name>', "take task runs of this pool (default: each task's own pool option, else 'default')")
    .option('-c, --concurrency <n>', 'task runs executed at once (default: 16)', parsePositiveInteger)
    .option('--grace-ms <ms>', `on the first signal, how long running task runs may take to finish (default: ${DEFAULT_WORKER_GRACE_MS})`, parseNonNegativeInteger);
  addConnectionOptions(worker, 'required');
  addLogOptions(worker)
    .addHelpText(
      'after',
      '\nThe first SIGINT or SIGTERM drains: no new task runs, running ones get --grace-ms to finish,\n' +
        'then the worker exits 0. A second signal stops at once: running task runs are handed back\n' +
        'to the processes that own them, which start them again on another worker.\n' +
        '\nExamples:\n' +
        '  tenaz worker flows.ts --nats nats://127.0.0.1:4222\n' +
        '  TENAZ_NATS_URL=nats://10.0.0.5:4222 tenaz worker flows.ts --pool gpu --concurrency 2',
    )
    .action(async (file: string, options: WorkerCommandOptions) => onExit(await workerCommand(file, options, io)));

  const watch = program
    .command('watch')
    .description('Print every state change of flow runs and task runs as it happens, until SIGINT or SIGTERM.')
    .option('-f, --flow <name>', 'only runs of this flow')
    .option('-r, --run <id>', 'only this flow run (its id) and its task runs')
    .addOption(new Option('--kind <kind>', 'only flow run events or only task run events').choices(['flow', 'task']))
    .option('--json', 'print each event as one JSON object per line (replayed events carry their streamSeq)')
    .option('--since <time|seq>', 'first replay the event history from a time (ISO 8601) or a history sequence number, then go on live');
  addConnectionOptions(watch, 'required');
  addLogOptions(watch, 'warn')
    .addHelpText(
      'after',
      '\nOutput, one line per event (local time):\n' +
        "  18:02:04.289 | flow etl 'light-potoo' → Running\n" +
        "  18:02:04.301 | task double-3 'light-potoo' → Completed\n" +
        "  18:02:04.420 | task fetch-0 'light-potoo' → AwaitingRetry (retry in 200 ms): Error: HTTP 503\n" +
        "  18:02:04.622 | task fetch-0 'light-potoo' → Running (attempt 2)\n" +
        '\nExamples:\n' +
        '  tenaz watch --nats nats://127.0.0.1:4222\n' +
        '  tenaz watch --flow etl --json | jq .state.name\n' +
        '  tenaz watch --since 2026-11-23T18:00:00Z\n' +
        '  tenaz watch --since 1 --json        # the whole history kept, then live',
    )
    .action(async (options: WatchCommandOptions) => onExit(await watchCommand(options, io)));

  const start = program
    .command('start')
    .description('Start a flow run by the name of its flow, in whichever process serves the flow (`tenaz worker FILE`), and print its id.')
    .argument('<flow>', 'the flow name, as given to flow({ name })')
    .option('-p, --param <key=value>', 'a flow parameter by name, as with `tenaz run`; the value is JSON when it parses, else a string (repeatable)', collect)
    .option('--args <json>', "the flow's arguments as a JSON array, instead of --param")
    .option('-w, --wait', 'wait for the run to end and print its result as JSON; exit 1 unless it completed')
    .option('--json', 'print the run as one JSON object (with --wait, its final record)');
  addConnectionOptions(start, 'required');
  addLogOptions(start, 'warn')
    .addHelpText(
      'after',
      '\nThe run is recorded, then waits Scheduled until a process serving its flow takes it:\n' +
        'one running now, or the next one started. Its id goes to stdout, for scripts\n' +
        '(with --wait, the result does instead; the id is on the stderr line).\n' +
        '\nExamples:\n' +
        '  tenaz start etl --param day=2026-11-23 --nats nats://127.0.0.1:4222\n' +
        '  tenaz start etl --param limit=10 --wait     # prints the result; exits 1 unless it completed\n' +
        "  tenaz start add --args '[1, 2]'             # the argument list itself\n" +
        '  id=$(tenaz start nightly) && tenaz runs show "$id"',
    )
    .action(async (flow: string, options: StartCommandOptions) => onExit(await startCommand(flow, options, io)));

  const runs = program.command('runs').description('Manage flow runs from any process.');
  const cancel = runs
    .command('cancel')
    .description('Cancel a flow run, wherever it runs: its owner aborts its task bodies, and it ends Cancelled.')
    .argument('<id>', 'the flow run id (in `tenaz watch --json` output and in the run logs)')
    .option('--reason <text>', 'why, for the logs and the bodies\' abort reason', 'cancelled');
  addConnectionOptions(cancel, 'required');
  addLogOptions(cancel, 'warn').action(async (id: string, options: RunsCancelOptions) => onExit(await runsCancelCommand(id, options, io)));

  const ls = runs
    .command('ls')
    .alias('list')
    .description('List the recorded flow runs, newest first.')
    .option('-f, --flow <name>', 'only runs of this flow')
    .option('-s, --state <state>', 'only runs in this state: Scheduled, Running, Completed, Failed, Crashed, ... (any case)')
    .option('-n, --limit <n>', 'at most this many runs (default: 100)', parsePositiveInteger)
    .option('--json', 'print each run record as one JSON object per line');
  addConnectionOptions(ls, 'required');
  addLogOptions(ls, 'warn')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  tenaz runs ls --nats nats://127.0.0.1:4222\n' +
        '  tenaz runs ls --flow etl --state failed --limit 20\n' +
        '  tenaz runs ls --json | jq -r .id',
    )
    .action(async (options: RunsListOptions) => onExit(await runsListCommand(options, io)));

  const show = runs
    .command('show')
    .description('Show a flow run (state, attempt, owner, error or result) and its task runs in call order.')
    .argument('<id>', 'the flow run id (printed by `tenaz start`, listed by `tenaz runs ls`)')
    .option('--json', 'print the run and its task runs as one JSON object, { run, taskRuns }');
  addConnectionOptions(show, 'required');
  addLogOptions(show, 'warn').action(async (id: string, options: RunsShowOptions) => onExit(await runsShowCommand(id, options, io)));

  const retry = runs
    .command('retry')
    .description('Run again a flow run that ended without completing, in a process serving its flow; its completed task runs are not run again.')
    .argument('<id>', 'the flow run id')
    .option('-w, --wait', 'wait for the new attempt to end and print its result as JSON; exit 1 unless it completed')
    .option('--json', 'print the run as one JSON object (with --wait, its final record)');
  addConnectionOptions(retry, 'required');
  addLogOptions(retry, 'warn')
    .addHelpText(
      'after',
      '\nOnly a run that ended Failed, TimedOut, Crashed or Cancelled can be retried: it keeps its id\n' +
        'and name, and counts one attempt more.\n' +
        '\nExamples:\n' +
        '  tenaz runs retry 0b6e4c1a-5f0e-4d1e-9a53-2f1c8c0e7b21 --wait --nats nats://127.0.0.1:4222',
    )
    .action(async (id: string, options: RunsRetryOptions) => onExit(await runsRetryCommand(id, options, io)));

  return program;
}

/** `--nats`, `--namespace` and `--replicas`, with their environment variables. `usage` says what NATS does for the command. */
function addConnectionOptions(command: Command, usage: string): Command {
  const nats = usage === 'required' ? 'NATS server URL(s), comma-separated (required)' : `NATS server URL(s), comma-separated: ${usage}`;
  return command
    .addOption(new Option('--nats <url>', nats).env(NATS_URL_ENV))
    .addOption(new Option('--namespace <ns>', "prefix of every subject, to keep deployments apart (default: 'tenaz')").env(NAMESPACE_ENV))
    .addOption(
      new Option('--replicas <n>', 'copies of each JetStream stream and KV bucket this process creates: 3 on a three-node cluster (default: 1)')
        .argParser(parseReplicas)
        .env(REPLICAS_ENV),
    )
    // User and password, or a token, go in the URL (nats://user:pass@host:4222, nats://token@host:4222).
    .addOption(new Option('--nats-creds <file>', 'NATS credentials file (JWT and nkey seed) to authenticate with').env('TENAZ_NATS_CREDS'))
    .addOption(new Option('--nats-nkey <file>', 'file holding the nkey seed to authenticate with').env('TENAZ_NATS_NKEY'))
    .addOption(new Option('--nats-tls-ca <file>', "CA certificate (PEM) to trust the server's TLS certificate by; use tls:// URLs").env('TENAZ_NATS_TLS_CA'))
    .addOption(new Option('--nats-tls-cert <file>', 'client certificate (PEM), for a server that asks for one').env('TENAZ_NATS_TLS_CERT'))
    .addOption(new Option('--nats-tls-key <file>', "the client certificate's key (PEM)").env('TENAZ_NATS_TLS_KEY'));
}

function parseReplicas(value: string): number {
  const replicas = parsePositiveInteger(value);
  if (replicas > 5) throw new InvalidArgumentError('JetStream keeps at most 5 replicas.');
  return replicas;
}

function addLogOptions(command: Command, defaultLevel = 'info'): Command {
  return command
    .addOption(new Option('--log-format <format>', 'format of the log lines, which go to stderr (default: pretty when stderr is a terminal, else json)').choices(['pretty', 'json', 'auto']).env('TENAZ_LOG_FORMAT'))
    .addOption(new Option('--log-level <level>', `lowest level logged (default: ${defaultLevel})`).choices(LOG_LEVELS).env('TENAZ_LOG_LEVEL'));
}

/**
 * Parses `argv` (as `process.argv`: node, script, then arguments), runs the
 * command and resolves with the exit code: 0 success, 1 a run that did not
 * complete, 2 a usage error, 128 + a signal's number for a run that SIGINT or
 * SIGTERM cancelled. Never throws for user errors.
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
    const refused = permissionViolation(error);
    if (refused !== undefined) {
      io.stderr.write(`tenaz: the NATS server refused this user: ${refused}; see deploy/nats/auth.conf for what each role may do\n`);
      return 2;
    }
    // Not the user's mistake: keep the stack, it is what a bug report needs.
    io.stderr.write(`tenaz: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

/** The server's words when `error` (or its cause) is a refused permission: the user's credentials, not a bug. */
function permissionViolation(error: unknown): string | undefined {
  return refusedPermission(error)?.message.split('\n', 1)[0];
}

/** Runs `main` and exits the process with its code once stdout and stderr have been written out. */
export async function runCli(argv: readonly string[] = process.argv): Promise<never> {
  // A reader that stops reading (`| head`) closes the pipe: the rest of the output is not
  // wanted, which is no error of ours. Anything else stays as loud as it was.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(0);
  });
  // A closed stderr (`2>&1 >out.json | head -1`) costs the logs and notes, not the run: it goes
  // on, its result still goes to stdout and the exit code is its own. The loggers stop writing
  // to it after the first EPIPE (log.ts); this covers the `tenaz: ...` notes written beside them.
  process.stderr.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  const code = await main(argv);
  // An exit right away would drop output still queued on a pipe; keep-alive sockets would otherwise hold the process.
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write('', done))));
  process.exit(code);
}

function parsePositiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}

function parseNonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a whole number of ms, 0 or more.');
  // The grace period is a timer, and a longer one would fire after 1 ms.
  if (n > MAX_TIMER_MS) throw new InvalidArgumentError(`expected at most ${MAX_TIMER_MS} ms (about 24.8 days).`);
  return n;
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
