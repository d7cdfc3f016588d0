/**
 * Durable runs from the command line, against a real nats-server with real
 * processes: `tenaz worker` serves the flows of its file, `tenaz start` queues
 * runs by flow name, `tenaz runs ls/show/retry` read and write the run records.
 */
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { FlowRunRecord } from '../../src/durable/records.js';
import type { FlowRunDetails } from '../../src/durable/run-admin.js';
import { TenazProcesses, type TenazProcess } from '../fixtures/nats/tenaz-process.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { HitServer } from '../support/processes.js';

const DURABLE = 'test/fixtures/nats/durable.ts';
const CHAIN = 'test/fixtures/nats/chain.ts';
const SERVING = /^tenaz: serving .* on nats:\/\/127\.0\.0\.1:\d+; concurrency \d+$/m;
const WATCHING = /^tenaz: watching \S+ on nats:\/\/127\.0\.0\.1:\d+$/m;
const STARTED = /^tenaz: started flow run '([a-z]+-[a-z]+)' \(([0-9a-f-]{36})\) of flow '([^']+)'$/m;
const UUID_LINE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$/;

let server: NatsServer;
const hits = new HitServer();
/** The worker serving durable.ts, for every test of the file. */
const shared = new TenazProcesses();

beforeAll(async () => {
  server = await startNatsServer();
  await hits.start();
  await shared.spawn(['worker', DURABLE, '--nats', server.url]).waitFor('stderr', SERVING);
});
afterAll(async () => {
  await shared.killAll();
  await hits.stop();
  await server?.dispose();
});

/** The processes of one test, killed by PID when it finishes. */
function processesOf(context: TestContext): TenazProcesses {
  const processes = new TenazProcesses();
  context.onTestFinished(() => processes.killAll());
  return processes;
}

/** Runs `tenaz ...args --nats URL` to its end. */
async function tenaz(processes: TenazProcesses, args: string[]): Promise<TenazProcess & { code: number | null }> {
  const cli = processes.spawn([...args, '--nats', server.url]);
  const { code } = await cli.exited;
  return Object.assign(cli, { code });
}

async function show(processes: TenazProcesses, id: string): Promise<FlowRunDetails> {
  const cli = await tenaz(processes, ['runs', 'show', id, '--json']);
  expect(cli.code, cli.stderr).toBe(0);
  return JSON.parse(cli.stdout) as FlowRunDetails;
}

function expectOneErrorLine(stderr: string, message: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tenaz: /);
  expect(lines[0]).toMatch(message);
}

function stepsArgs(steps: number): string[] {
  return ['--param', `hitUrl=${hits.url}`, '--param', `steps=${steps}`, '--param', 'stepMs=50'];
}

describe('tenaz start and tenaz runs over NATS', { timeout: 30_000 }, () => {
  let completedId = '';

  it('starts a flow run by name on the worker serving it, waits for it and prints its result', async (context) => {
    const processes = processesOf(context);
    const start = await tenaz(processes, ['start', 'durable-steps', ...stepsArgs(3), '--wait']);
    expect(start.code, start.stderr).toBe(0);
    const [, name, id, flowName] = start.stderr.match(STARTED)!;
    expect(flowName).toBe('durable-steps');
    expect(name).toBeDefined();
    completedId = id!;
    const result = JSON.parse(start.stdout) as { total: number; pid: number };
    expect(result).toEqual({ total: 30, pid: expect.any(Number) });
    expect(result.pid).not.toBe(start.pid);
    expect(hits.hits.filter((hit) => hit.pid === result.pid).map((hit) => hit.what)).toEqual(['step-0', 'step-1', 'step-2']);
  });

  it('lists the run Completed, and not among the Failed ones', async (context) => {
    const processes = processesOf(context);
    const [all, failed, json] = await Promise.all([
      tenaz(processes, ['runs', 'ls']),
      tenaz(processes, ['runs', 'ls', '--state', 'failed']),
      tenaz(processes, ['runs', 'ls', '--flow', 'durable-steps', '--json']),
    ]);
    expect(all.code, all.stderr).toBe(0);
    const lines = all.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+FLOW\s+STATE\s+ATTEMPT\s+STARTED\s+DURATION$/);
    expect(lines.find((line) => line.startsWith(completedId))).toMatch(/ durable-steps +Completed +1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d+(ms|\.\ds)$/);
    expect(failed.code, failed.stderr).toBe(0);
    expect(failed.stdout).not.toContain(completedId);
    const records = json.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as FlowRunRecord);
    expect(records.find((record) => record.id === completedId)).toMatchObject({ flowName: 'durable-steps', state: { name: 'Completed' }, result: { total: 30 } });
  });

  it('shows the run with its three task runs Completed, in call order', async (context) => {
    const processes = processesOf(context);
    const [text, details] = await Promise.all([tenaz(processes, ['runs', 'show', completedId]), show(processes, completedId)]);
    expect(details.run).toMatchObject({ id: completedId, state: { name: 'Completed' }, attempt: 1, result: { total: 30 } });
    expect(details.taskRuns.map((task) => [task.position, task.taskName, task.state.name])).toEqual([
      [0, 'durable-step', 'Completed'],
      [1, 'durable-step', 'Completed'],
      [2, 'durable-step', 'Completed'],
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^flow run '${details.run.name}' \\(${completedId}\\)$`, 'm'));
    expect(text.stdout).toMatch(/^ {2}state +Completed$/m);
    expect(text.stdout).toMatch(/^ {2}result +\{"total":30,"pid":\d+\}$/m);
    expect(text.stdout).toMatch(/^task runs \(3\):$/m);
    expect(text.stdout.match(/^ {2}\d +durable-step-\d +Completed +1 /gm)).toHaveLength(3);
  });

  it('refuses an unknown id and the retry of a completed run, each in one line with exit code 1', async (context) => {
    const processes = processesOf(context);
    const [unknown, retry] = await Promise.all([tenaz(processes, ['runs', 'show', 'no-such-run']), tenaz(processes, ['runs', 'retry', completedId])]);
    expect(unknown.code).toBe(1);
    expectOneErrorLine(unknown.stderr, /^tenaz: no flow run no-such-run is recorded$/);
    expect(retry.code).toBe(1);
    expectOneErrorLine(retry.stderr, /is Completed: only a run that ended without completing can be retried/);
  });

  it('retries a failed run: a second attempt, which fails again the same way', async (context) => {
    const processes = processesOf(context);
    const start = await tenaz(processes, ['start', 'durable-steps', ...stepsArgs(-1), '--wait']);
    expect(start.code).toBe(1);
    const id = start.stderr.match(STARTED)![2]!;
    expect(start.stdout).toBe('');
    expect(start.stderr).toMatch(/^tenaz: flow run '[a-z]+-[a-z]+' \(.+\) ended Failed: ParameterValidationError: .*steps/m);

    const retry = await tenaz(processes, ['runs', 'retry', id, '--wait']);
    expect(retry.code).toBe(1);
    expect(retry.stderr).toMatch(new RegExp(`^tenaz: queued flow run '[a-z]+-[a-z]+' \\(${id}\\) of flow 'durable-steps' again: attempt 2$`, 'm'));
    expect(retry.stderr).toMatch(/ ended Failed \(attempt 2\): ParameterValidationError: /);
    const { run, taskRuns } = await show(processes, id);
    expect(run).toMatchObject({ attempt: 2, state: { name: 'Failed', attempt: 2 }, error: { name: 'ParameterValidationError' } });
    expect(taskRuns).toEqual([]);
    const failed = await tenaz(processes, ['runs', 'ls', '--state', 'FAILED']);
    expect(failed.stdout).toMatch(new RegExp(`^${id} .* Failed +2 `, 'm'));
  });

  it('queues a run of a flow nobody serves, Scheduled with a warning, and a worker started later runs it', async (context) => {
    const processes = processesOf(context);
    // In this namespace, where the durable.ts worker already keeps its lease: in one where no process
    // ever served a flow there is no lease bucket to read, and `tenaz start` cannot tell (no warning).
    const start = await tenaz(processes, ['start', 'chain', '--args', '[2, 0]']);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(UUID_LINE);
    const id = start.stdout.trim();
    expect(start.stderr).toMatch(STARTED);
    expect(start.stderr).toMatch(/No live process serves flow 'chain'/);
    const queued = await show(processes, id);
    expect(queued.run).toMatchObject({ flowName: 'chain', state: { name: 'Scheduled' }, parameters: [2, 0] });
    expect(queued.run.owner).toBeUndefined();

    const watch = processes.spawn(['watch', '--run', id, '--kind', 'flow', '--json', '--nats', server.url]);
    await watch.waitFor('stderr', WATCHING);
    const worker = processes.spawn(['worker', CHAIN, '--nats', server.url]);
    await worker.waitFor('stderr', SERVING);
    await watch.waitFor('stdout', /"name":"Completed"/);
    const { run, taskRuns } = await show(processes, id);
    expect(run).toMatchObject({ state: { name: 'Completed' }, result: { values: [0, 2], total: 3, owner: worker.pid } });
    expect(taskRuns.map((task) => task.taskName)).toEqual(['double', 'double', 'add-one']);
  });
});

describe.concurrent('tenaz start and tenaz runs user errors', { timeout: 15_000 }, () => {
  it.for<[what: string, args: () => string[], message: RegExp]>([
    ['both --param and --args', () => ['start', 'chain', '--param', 'n=1', '--args', '[1]', '--nats', server.url], /either as --param pairs or as --args, not both/],
    ['--args that is not an array', () => ['start', 'chain', '--args', '{"n":1}', '--nats', server.url], /--args takes a JSON array/],
    ['--args that is not JSON', () => ['start', 'chain', '--args', '[1,', '--nats', server.url], /--args is not JSON/],
    ['start without NATS', () => ['start', 'chain'], /the start command needs NATS/],
    ['runs ls --state that is no state', () => ['runs', 'ls', '--state', 'done', '--nats', server.url], /--state: no state is named 'done'/],
  ])('rejects %s with one tenaz: line and exit code 2', async ([, args, message], context) => {
    const cli = processesOf(context).spawn(args());
    expect((await cli.exited).code).toBe(2);
    expectOneErrorLine(cli.stderr, message);
  });
});
