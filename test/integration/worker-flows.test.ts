/**
 * Flows served by `tenaz worker` processes dispatch their tasks to the workers,
 * like any flow run: a run started by name spreads over every worker, each
 * within its concurrency, instead of running all its tasks where the flow runs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { TenazProcesses } from '../fixtures/nats/tenaz-process.js';
import { useNatsServer } from '../support/use-nats-server.js';

const CHAIN = 'test/fixtures/nats/chain.ts';
const SERVING = /^tenaz: serving flow\(s\) chain, .* on nats:\/\/127\.0\.0\.1:\d+; concurrency 2$/m;

const nats = useNatsServer();
const processes = new TenazProcesses();

afterAll(async () => {
  await processes.killAll();
});

describe('flows served by workers', { timeout: 40_000 }, () => {
  it('dispatch the tasks of a run started by name to every worker, not only to the one running the flow', async () => {
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
});
