/**
 * Flows served by `tenaz worker` processes dispatch their tasks to the workers,
 * like any flow run: a run started by name spreads over every worker, each
 * within its concurrency, instead of running all its tasks where the flow runs.
 */
import { describe, expect, it, type TestContext } from 'vitest';
import { TenazProcesses } from '../fixtures/nats/tenaz-process.js';
import { useNatsServer } from '../support/use-nats-server.js';

const CHAIN = 'test/fixtures/nats/chain.ts';
const SERVING = /^tenaz: serving flow\(s\) chain, .* on nats:\/\/127\.0\.0\.1:\d+; concurrency 2$/m;

const nats = useNatsServer();

/** The processes of one test, killed by PID when it finishes. */
function processesOf(context: TestContext): TenazProcesses {
  const processes = new TenazProcesses();
  context.onTestFinished(() => processes.killAll());
  return processes;
}

describe('flows served by workers', { timeout: 40_000 }, () => {
  it('dispatch the tasks of a run started by name to every worker, not only to the one running the flow', async (context) => {
    const processes = processesOf(context);
    const workers = [0, 1].map(() => processes.spawn(['worker', CHAIN, '--nats', nats.server.url, '--concurrency', '2']));
    await Promise.all(workers.map((worker) => worker.waitFor('stderr', SERVING)));
    const start = processes.spawn(['start', 'chain', '--param', 'n=12', '--param', 'ms=200', '--wait', '--nats', nats.server.url]);
    const { code } = await start.exited;
    expect(code, start.stderr).toBe(0);
    const result = JSON.parse(start.stdout) as { total: number; pids: number[]; owner: number };
    expect(result.total).toBe(133);
    const workerPids = workers.map((worker) => worker.pid);
    expect(workerPids).toContain(result.owner);
    // Both workers ran some of the tasks, whichever of them ran the flow.
    for (const pid of workerPids) expect(result.pids).toContain(pid);
  });

  it('drain on SIGTERM: the worker running a flow run keeps it to its end, its tasks going to the other worker, then exits', async (context) => {
    const processes = processesOf(context);
    const workers = [0, 1].map(() => processes.spawn(['worker', CHAIN, '--nats', nats.server.url, '--concurrency', '1']));
    await Promise.all(workers.map((worker) => worker.waitFor('stderr', /^tenaz: serving flow\(s\) chain, .*; concurrency 1$/m)));
    const start = processes.spawn(['start', 'chain', '--param', 'n=6', '--param', 'ms=700', '--wait', '--nats', nats.server.url]);
    const owner = await Promise.race(workers.map((worker) => worker.waitFor('stderr', /Took flow run/).then(() => worker)));
    owner.signal('SIGTERM');
    const { code } = await start.exited;
    expect(code, start.stderr).toBe(0);
    const result = JSON.parse(start.stdout) as { total: number; owner: number };
    expect(result.total).toBe(31);
    // Not handed over: the connection stayed open under the flow run until it ended here.
    expect(result.owner).toBe(owner.pid);
    expect((await owner.exited).code).toBe(0);
    expect(owner.stderr).not.toMatch(/could not renew|Crashed/);
  });
});
