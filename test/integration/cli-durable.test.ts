/**
 * Durable runs from the command line, against a real nats-server with real
 * processes: `tenaz worker` serves the flows of its file, `tenaz start` queues
 * runs by flow name, `tenaz runs ls/show/retry` read and write the run records.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { FlowRunRecord } from '../../src/durable/records.js';
import type { FlowRunDetails } from '../../src/durable/run-admin.js';
import { TenazProcesses, type TenazProcess } from '../fixtures/nats/tenaz-process.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { HitServer } from '../support/processes.js';

const DURABLE = 'test/fixtures/nats/durable.ts';
const CHAIN = 'test/fixtures/nats/chain.ts';
const LABELLED = 'test/fixtures/labelled.ts';
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
  // The worker serving the flows makes the event history, as every process owning runs does.
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

/** How long one command may take before the test says which one hung, in ms. */
const COMMAND_TIMEOUT_MS = 12_000;

/** Runs `tenaz ...args --nats URL` to its end; one that hangs fails the test with its output. */
async function tenaz(processes: TenazProcesses, args: string[]): Promise<TenazProcess & { code: number | null }> {
  const cli = processes.spawn([...args, '--nats', server.url]);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      cli.signal('SIGKILL');
      reject(new Error(`tenaz ${args.join(' ')} did not end in ${COMMAND_TIMEOUT_MS} ms\n--- stdout\n${cli.stdout}\n--- stderr\n${cli.stderr}`));
    }, COMMAND_TIMEOUT_MS);
  });
  try {
    const { code } = await Promise.race([cli.exited, hung]);
    return Object.assign(cli, { code });
  } finally {
    clearTimeout(timer);
  }
}

async function show(processes: TenazProcesses, id: string): Promise<FlowRunDetails> {
  const cli = await tenaz(processes, ['runs', 'show', id, '--json']);
  expect(cli.code, cli.stderr).toBe(0);
  return JSON.parse(cli.stdout) as FlowRunDetails;
}

/** Reads the run with `runs show` until `done` holds of it. */
async function until(processes: TenazProcesses, id: string, done: (run: FlowRunRecord) => boolean, timeoutMs = 10_000): Promise<FlowRunRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { run } = await show(processes, id);
    if (done(run)) return run;
    if (Date.now() > deadline) throw new Error(`flow run ${id} is still ${run.state.name} (attempt ${run.attempt}) after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A hit server whose first request for `what` waits a little, then drops the connection: that step fails once. */
async function startFlakyServer(what: string): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  let failed = false;
  const http = createServer((req, res) => {
    const step = new URL(req.url ?? '/', 'http://x').searchParams.get('what') ?? '';
    hits.push(step);
    if (step !== what || failed) return void res.end('ok');
    failed = true;
    setTimeout(() => req.socket.destroy(), 200);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/hit`,
    hits,
    close: () => new Promise<void>((resolve) => http.close(() => resolve())),
  };
}

function expectOneErrorLine(stderr: string, message: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tenaz: /);
  expect(lines[0]).toMatch(message);
}

function stepsArgs(steps: number): string[] {
  return ['--param', `hitUrl=${hits.url}`, '--param', `steps=${steps}`, '--param', 'stepMs=100'];
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

  it('replays the run from the history the serving worker keeps, and says so in one line where there is none', async (context) => {
    const processes = processesOf(context);
    const watch = processes.spawn(['watch', '--since', '1', '--run', completedId, '--kind', 'flow', '--json', '--nats', server.url]);
    await watch.waitFor('stdout', /"name":"Completed"/);
    const states = watch.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { state: { name: string } }).state.name);
    expect(states).toEqual(['Scheduled', 'Pending', 'Running', 'Completed']);
    const none = await tenaz(processes, ['watch', '--since', '1', '--namespace', 'nothing-kept']);
    expect(none.code).toBe(1);
    expect(none.stderr.trimEnd().split('\n').at(-1)).toMatch(/^tenaz: no event history on this server \(stream nothing-kept_events\).*made by the first process that runs flows over NATS$/);
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

  it('cancels in its record a run no process has taken, and refuses an unknown id and a run that already ended, each in one line with exit code 1', async (context) => {
    const processes = processesOf(context);
    const start = await tenaz(processes, ['start', 'nosuchflow']);
    expect(start.code, start.stderr).toBe(0);
    const id = start.stdout.trim();
    const cancel = await tenaz(processes, ['runs', 'cancel', id]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stderr).toMatch(new RegExp(`^tenaz: cancelled flow run '[a-z]+-[a-z]+' \\(${id}\\): no process had taken it yet$`, 'm'));
    expect((await show(processes, id)).run).toMatchObject({ state: { name: 'Cancelled' }, error: { code: 'CANCELLED' } });

    const [unknown, completed, again] = await Promise.all([
      tenaz(processes, ['runs', 'cancel', 'nonexistent']),
      tenaz(processes, ['runs', 'cancel', completedId]),
      tenaz(processes, ['runs', 'cancel', id]),
    ]);
    expect(unknown.code).toBe(1);
    expectOneErrorLine(unknown.stderr, /^tenaz: no flow run nonexistent is recorded; in case it runs without records \(durable: false\), the processes that own flow runs were asked to cancel it$/);
    expect(completed.code).toBe(1);
    expectOneErrorLine(completed.stderr, new RegExp(`^tenaz: flow run '[a-z]+-[a-z]+' \\(${completedId}\\) already ended Completed$`));
    expect(again.code).toBe(1);
    expectOneErrorLine(again.stderr, new RegExp(`\\(${id}\\) already ended Cancelled$`));
  });

  it('fails a run whose parameters the flow rejects, and a retry fails it again, as attempt 2', async (context) => {
    const processes = processesOf(context);
    // Without --wait, to see the run queued first and then ended by the worker.
    const start = await tenaz(processes, ['start', 'durable-steps', ...stepsArgs(-1)]);
    expect(start.code, start.stderr).toBe(0);
    const id = start.stdout.trim();
    const failed = await until(processes, id, (run) => run.state.name === 'Failed');
    expect(failed).toMatchObject({ attempt: 1, error: { name: 'ParameterValidationError' } });

    const retry = await tenaz(processes, ['runs', 'retry', id]);
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stdout).toBe(`${id}\n`);
    expect(retry.stderr).toMatch(new RegExp(`^tenaz: queued flow run '[a-z]+-[a-z]+' \\(${id}\\) of flow 'durable-steps' again: attempt 2$`, 'm'));
    const again = await until(processes, id, (run) => run.attempt === 2 && run.state.name === 'Failed');
    expect(again).toMatchObject({ state: { attempt: 2 }, error: { name: 'ParameterValidationError' } });
    const list = await tenaz(processes, ['runs', 'ls', '--state', 'FAILED']);
    expect(list.stdout).toMatch(new RegExp(`^${id} .* Failed +2 `, 'm'));
  });

  it('retries a run that failed in its second task: the first is read back, the second runs again and completes', async (context) => {
    const processes = processesOf(context);
    const flaky = await startFlakyServer('step-1');
    context.onTestFinished(() => flaky.close());
    const args = ['--param', `hitUrl=${flaky.url}`, '--param', 'steps=2', '--param', 'stepMs=300'];
    const start = await tenaz(processes, ['start', 'durable-steps', ...args, '--wait']);
    expect(start.code).toBe(1);
    expect(start.stdout).toBe('');
    const id = start.stderr.match(STARTED)![2]!;
    expect(start.stderr).toMatch(new RegExp(`^tenaz: flow run '[a-z]+-[a-z]+' \\(${id}\\) ended Failed: .+$`, 'm'));
    const failed = await show(processes, id);
    expect(failed.taskRuns.map((task) => task.state.name)).toEqual(['Completed', 'Failed']);

    const retry = await tenaz(processes, ['runs', 'retry', id, '--wait']);
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stderr).toMatch(/ again: attempt 2$/m);
    expect(JSON.parse(retry.stdout)).toEqual({ total: 10, pid: expect.any(Number) });
    expect(flaky.hits).toEqual(['step-0', 'step-1', 'step-1']);
    const { run, taskRuns } = await show(processes, id);
    expect(run).toMatchObject({ attempt: 2, state: { name: 'Completed', attempt: 2 }, result: { total: 10 } });
    expect(taskRuns.map((task) => [task.position, task.state.name])).toEqual([
      [0, 'Completed'],
      [1, 'Completed'],
    ]);
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

    // By name, --param fits the serving process's flow: chain(n, ms) takes n=3, ms=0 positionally.
    const named = await tenaz(processes, ['start', 'chain', '--param', 'n=3', '--param', 'ms=0', '--wait']);
    expect(named.code, named.stderr).toBe(0);
    expect(JSON.parse(named.stdout)).toMatchObject({ values: [0, 2, 4], total: 7 });
    const unknown = await tenaz(processes, ['start', 'chain', '--param', 'colour=red', '--wait']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/ended Failed: ParameterValidationError: unknown parameter 'colour' for flow 'chain'; known parameters: n, ms/);
  });
});

describe('tenaz start --param and a zod schema', { timeout: 30_000 }, () => {
  it('keeps the text of a field the serving flow declares a string, as tenaz run does', async (context) => {
    const processes = processesOf(context);
    const worker = processes.spawn(['worker', LABELLED, '--nats', server.url]);
    await worker.waitFor('stderr', SERVING);
    const start = await tenaz(processes, ['start', 'labelled', '--param', 'count=2', '--param', 'label=123', '--wait']);
    expect(start.code, start.stderr).toBe(0);
    expect(JSON.parse(start.stdout)).toEqual({ count: 2, label: '123' });
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
