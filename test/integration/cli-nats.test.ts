/**
 * The command line against a real nats-server, with real processes:
 * `tenaz worker` processes run the tasks, `tenaz watch` tails the events and
 * `tenaz run --nats` owns the flow run.
 */
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { RunEvent } from '../../src/events.js';
import { parseJsonRun, splitJsonLogs, stackLines } from '../fixtures/cli.js';
import { TenazProcesses, type TenazProcess } from '../fixtures/nats/tenaz-process.js';
import { freePort, startNatsServer, type NatsServer } from '../support/nats-server.js';

const CHAIN = 'test/fixtures/nats/chain.ts';
const READY = /^tenaz: serving .* on nats:\/\/127\.0\.0\.1:\d+; concurrency \d+$/m;
const WATCHING = /^tenaz: watching (\S+) on nats:\/\/127\.0\.0\.1:\d+$/m;

let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.dispose();
});

/** The processes of one test, killed by PID when it finishes (tests may run side by side). */
function processesOf(context: TestContext): TenazProcesses {
  const processes = new TenazProcesses();
  context.onTestFinished(() => processes.killAll());
  return processes;
}

async function startWorker(processes: TenazProcesses, args: string[], env: Record<string, string> = {}): Promise<TenazProcess> {
  const worker = processes.spawn(['worker', CHAIN, ...args], env);
  await worker.waitFor('stderr', READY);
  return worker;
}

/** The events a `watch --json` process printed, grouped by run, in the order printed. */
function eventsByRun(stdout: string): Map<string, RunEvent[]> {
  const runs = new Map<string, RunEvent[]>();
  for (const line of stdout.split('\n').filter((l) => l !== '')) {
    const event = JSON.parse(line) as RunEvent;
    const id = event.type === 'flow.state' ? event.flowRunId : event.taskRunId;
    runs.set(id, [...(runs.get(id) ?? []), event]);
  }
  return runs;
}

/** One `tenaz:` line, last, and no stack; log records the command wrote before it (JSON, as stderr is a pipe) do not count. */
function expectOneErrorLine(stderr: string, message: RegExp): void {
  const { rest: lines } = splitJsonLogs(stderr);
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tenaz: /);
  expect(lines[0]).toMatch(message);
  expect(stderr.endsWith(`${lines[0]}\n`), stderr).toBe(true);
  expect(stackLines(stderr)).toEqual([]);
}

describe('tenaz worker, watch and run over NATS', { timeout: 25_000 }, () => {
  it('runs a flow on two worker processes while watchers print every transition of every run', async (context) => {
    const processes = processesOf(context);
    const [first, second] = await Promise.all([
      startWorker(processes, ['--nats', server.url, '--concurrency', '1']),
      startWorker(processes, ['--concurrency', '1'], { TENAZ_NATS_URL: server.url }),
    ]);
    const json = processes.spawn(['watch', '--json', '--nats', server.url]);
    const pretty = processes.spawn(['watch', '--flow', 'chain', '--nats', server.url]);
    expect((await json.waitFor('stderr', WATCHING))[1]).toBe('tenaz.evt.>');
    expect((await pretty.waitFor('stderr', WATCHING))[1]).toBe('tenaz.evt.chain.>');

    const run = processes.spawn(['run', CHAIN, '--flow', 'chain', '--param', 'n=4', '--param', 'ms=150', '--nats', server.url]);
    const exit = await run.exited;
    expect(exit, run.stderr).toEqual({ code: 0, signal: null });
    // The result is the whole of stdout; the logs, down to the connection closing, are on stderr.
    const { logs, notes, result } = parseJsonRun(run);
    expect(result).toMatchObject({ values: [0, 2, 4, 6], total: 13, owner: run.pid });
    expect(notes).toEqual([]);
    // Four doubles at once on two workers of concurrency 1: each worker takes some.
    expect(new Set((result as { pids: number[] }).pids)).toEqual(new Set([first.pid, second.pid]));
    expect(logs.filter((record) => (record.level as number) >= 50)).toEqual([]);

    await json.waitFor('stdout', /^(?=.*"type":"flow\.state")(?=.*"name":"Completed").*$/m);
    const runs = eventsByRun(json.stdout);
    const flowRuns = [...runs.values()].filter((events) => events[0]!.type === 'flow.state');
    expect(flowRuns).toHaveLength(1);
    const flowRunId = flowRuns[0]![0]!.flowRunId;
    expect(runs.size).toBe(6);
    for (const events of runs.values()) {
      // Every transition, in order: seq counts up from 1 with no gap.
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.map((e) => e.state.name)).toEqual(['Pending', 'Running', 'Completed']);
      expect(events.every((e) => e.flowRunId === flowRunId && e.flowName === 'chain')).toBe(true);
    }
    const taskNames = [...runs.values()].flatMap((events) => (events[0]!.type === 'task.state' ? [events[0]!.taskName] : []));
    expect(taskNames.sort()).toEqual(['add-one', 'double', 'double', 'double', 'double']);

    await pretty.waitFor('stdout', /^\d\d:\d\d:\d\d\.\d{3} \| flow chain '[a-z]+-[a-z]+' → Completed$/m);
    const name = flowRuns[0]![0]!.type === 'flow.state' ? flowRuns[0]![0]!.flowRunName : '';
    const lines = pretty.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(18);
    expect(lines.every((line) => line.includes(` '${name}' → `))).toBe(true);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} \\| task add-one-0 '${name}' → Completed$`)));

    for (const watcher of [json, pretty]) watcher.signal('SIGINT');
    for (const watcher of [json, pretty]) expect(await watcher.exited).toEqual({ code: 0, signal: null });
  });

  it('replays a finished flow run from the history with watch --since, each transition once, then stays live', async (context) => {
    const processes = processesOf(context);
    await startWorker(processes, ['--nats', server.url, '--concurrency', '2']);
    const run = processes.spawn(['run', CHAIN, '--flow', 'chain', '--param', 'n=2', '--param', 'ms=0', '--nats', server.url]);
    expect(await run.exited, run.stderr).toEqual({ code: 0, signal: null });
    const flowRunId = splitJsonLogs(run.stderr).logs.find((record) => typeof record.flowRunId === 'string')?.flowRunId as string;

    const replay = processes.spawn(['watch', '--since', '1', '--run', flowRunId, '--json', '--nats', server.url]);
    await replay.waitFor('stdout', /^(?=.*"type":"flow\.state")(?=.*"name":"Completed").*$/m);
    const runs = eventsByRun(replay.stdout);
    expect(runs.size).toBe(4);
    for (const events of runs.values()) expect(events.map((e) => e.state.name)).toEqual(['Pending', 'Running', 'Completed']);
    const seqs = replay.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { streamSeq: number }).streamSeq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    replay.signal('SIGINT');
    expect(await replay.exited).toEqual({ code: 0, signal: null });
  });

  it('rejects watch --since that is neither a time nor a sequence with one tenaz: line and exit code 2', async (context) => {
    const watch = processesOf(context).spawn(['watch', '--since', 'yesterday-ish', '--nats', server.url]);
    expect((await watch.exited).code).toBe(2);
    expectOneErrorLine(watch.stderr, /--since takes a time/);
  });

  it('cancels a flow run owned by another process with tenaz runs cancel', async (context) => {
    const processes = processesOf(context);
    const worker = await startWorker(processes, ['--nats', server.url, '--concurrency', '1']);
    const run = processes.spawn(['run', CHAIN, '--flow', 'slow', '--param', 'ms=60000', '--nats', server.url]);
    // The task body's log line on the worker names its flow run.
    const flowRunId = (await worker.waitFor('stderr', /^(?=.*slow step started).*"flowRunId":"([^"]+)".*$/m))[1]!;

    const cancel = processes.spawn(['runs', 'cancel', flowRunId, '--reason', 'an operator said so', '--nats', server.url]);
    expect(await cancel.exited, cancel.stderr).toEqual({ code: 0, signal: null });
    const exit = await run.exited;
    expect(exit.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(splitJsonLogs(run.stderr).logs).toContainEqual(expect.objectContaining({ flowName: 'slow', msg: expect.stringMatching(/^Finished in state Cancelled/) }));
  });

  it('drains a worker on SIGTERM: its running task run finishes, then it exits 0', async (context) => {
    const processes = processesOf(context);
    // Its own namespace: no other worker can take the task run or be handed it back.
    const worker = await startWorker(processes, ['--grace-ms', '10000'], { TENAZ_NATS_URL: server.url, TENAZ_NAMESPACE: 'drain' });
    const run = processes.spawn(['run', CHAIN, '--flow', 'slow', '--param', 'ms=1500', '--nats', server.url, '--namespace', 'drain']);
    await worker.waitFor('stderr', /"msg":"slow step started"/);
    worker.signal('SIGTERM');

    expect(await worker.exited, worker.stderr).toEqual({ code: 0, signal: null });
    expect(worker.stderr).toMatch(/^tenaz: SIGTERM: draining; running task runs have 10000 ms to finish/m);
    expect(worker.stderr).toMatch(/^tenaz: worker stopped after 1 task run\(s\)$/m);
    expect(await run.exited, run.stderr).toEqual({ code: 0, signal: null });
    const { logs, result } = parseJsonRun(run);
    expect(result).toEqual({ pid: worker.pid, ms: 1500 });
    // Finished by the draining worker, not handed back and run again.
    expect(logs.filter((record) => record.taskRunName === 'slow-step-0').map((record) => record.msg)).toEqual(['Finished in state Completed()']);
  });

  it('stops a worker at once on a second signal and hands its task run back to run elsewhere', async (context) => {
    const processes = processesOf(context);
    const env = { TENAZ_NATS_URL: server.url, TENAZ_NAMESPACE: 'handback' };
    const first = await startWorker(processes, [], env);
    const run = processes.spawn(['run', CHAIN, '--flow', 'slow', '--param', 'ms=1500'], env);
    await first.waitFor('stderr', /"msg":"slow step started"/);
    first.signal('SIGTERM');
    await first.waitFor('stderr', /draining/);
    const signalledAt = Date.now();
    first.signal('SIGINT');
    expect(await first.exited, first.stderr).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(2_000);
    expect(first.stderr).toMatch(/^tenaz: SIGINT again: stopping now/m);

    const second = await startWorker(processes, [], env);
    expect(await run.exited, run.stderr).toEqual({ code: 0, signal: null });
    expect(parseJsonRun(run).result).toEqual({ pid: second.pid, ms: 1500 });
  });
});

describe.concurrent('tenaz worker, watch and run user errors', { timeout: 20_000 }, () => {
  const cases: Array<[what: string, args: () => string[], message: RegExp]> = [
    ['worker without NATS', () => ['worker', CHAIN], /^tenaz: the worker command needs NATS: give --nats URL or set TENAZ_NATS_URL$/],
    ['watch without NATS', () => ['watch', '--json'], /^tenaz: the watch command needs NATS: give --nats URL or set TENAZ_NATS_URL$/],
    ['worker --concurrency 0', () => ['worker', CHAIN, '--nats', server.url, '--concurrency', '0'], /--concurrency <n>' argument '0' is invalid/],
    ['worker --concurrency two', () => ['worker', CHAIN, '--nats', server.url, '--concurrency', 'two'], /argument 'two' is invalid/],
    ['worker --grace-ms -1', () => ['worker', CHAIN, '--nats', server.url, '--grace-ms', '-1'], /--grace-ms <ms>' argument '-1' is invalid/],
    ['a worker file with no task', () => ['worker', 'test/fixtures/nats/no-tasks.ts', '--nats', server.url], /no task or flow found in test\/fixtures\/nats\/no-tasks\.ts/],
    ['a worker file that does not exist', () => ['worker', 'test/fixtures/nats/nope.ts', '--nats', server.url], /no such file/],
    ['a bad namespace', () => ['run', CHAIN, '--flow', 'chain', '--nats', server.url, '--namespace', 'a.b'], /bad namespace 'a\.b'/],
    ['a NATS URL that does not parse', () => ['watch', '--nats', 'not a url'], /could not connect to NATS at not a url/],
    ['a NATS URL of another scheme', () => ['watch', '--nats', 'bogus://x'], /^tenaz: --nats takes nats:\/\/host:port \(or tls:\/\/, or host:port\), got "bogus:\/\/x"$/],
  ];

  it.for(cases)('rejects %s with one tenaz: line and exit code 2', async ([, args, message], context) => {
    const processes = processesOf(context);
    const cli = processes.spawn(args());
    expect((await cli.exited).code).toBe(2);
    expectOneErrorLine(cli.stderr, message);
  });

  it.for<[command: string, args: () => string[]]>([
    ['run', () => ['run', CHAIN, '--flow', 'chain', '--param', 'n=1']],
    ['worker', () => ['worker', CHAIN]],
    ['watch', () => ['watch']],
  ])('%s: says in one line, quickly, that nobody answers at the NATS URL', async ([, args], context) => {
    const processes = processesOf(context);
    const url = `nats://127.0.0.1:${await freePort()}`;
    const startedAt = Date.now();
    const cli = processes.spawn([...args(), '--nats', url]);
    expect((await cli.exited).code).toBe(2);
    expect(Date.now() - startedAt).toBeLessThan(8_000);
    expectOneErrorLine(cli.stderr, new RegExp(`could not connect to NATS at ${url.replace(/\./g, '\\.')}: connection refused`));
  });

  it('lists every command in --help, and each command documents its options', async (context) => {
    const processes = processesOf(context);
    const help = processes.spawn(['--help']);
    expect((await help.exited).code).toBe(0);
    for (const command of ['run [options] <file>', 'worker [options] <file>', 'watch [options]']) expect(help.stdout).toContain(command);
    const [run, worker, watch] = [['run'], ['worker'], ['watch']].map((args) => processes.spawn([...args, '--help']));
    await Promise.all([run!.exited, worker!.exited, watch!.exited]);
    for (const option of ['--nats <url>', 'TENAZ_NATS_URL', '--namespace <ns>', 'TENAZ_NAMESPACE']) {
      for (const command of [run!, worker!, watch!]) expect(command.stdout).toContain(option);
    }
    for (const option of ['--pool <name>', '--concurrency <n>', '--grace-ms <ms>']) expect(worker!.stdout).toContain(option);
    for (const option of ['--flow <name>', '--run <id>', '--kind <kind>', '--json']) expect(watch!.stdout).toContain(option);
  });
});
