/**
 * Durable runs in the embedded mode: the same records, in the memory store,
 * with the same semantics as over NATS (nothing outlives the process, but a
 * run can be listed, shown and read back).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { flow, task } from '../../../src/api.js';
import { ResultTooLargeError } from '../../../src/errors.js';
import { createFixture, type Fixture } from './helpers.js';
import { formatRunDetails } from '../../../src/cli/format-run.js';

let fixture: Fixture | undefined;
afterEach(async () => {
  await fixture?.orchestrator.close();
  fixture = undefined;
});

const double = task({ name: 'embedded-double' }, async (x: number) => x * 2);
const flaky = task({ name: 'embedded-flaky', retries: 1 }, async (x: number, fail: { left: number }) => {
  if (fail.left-- > 0) throw new Error('once');
  return x;
});
const big = task({ name: 'embedded-big' }, async (bytes: number) => 'x'.repeat(bytes));
const pipeline = flow({ name: 'embedded-pipeline' }, async (n: number) => {
  const doubled = await Promise.all(Array.from({ length: n }, (_, i) => double(i)));
  return { total: doubled.reduce((a, b) => a + b, 0), again: await flaky(7, { left: 1 }) };
});

const child = flow({ name: 'embedded-child' }, async (x: number) => double(x));
const withSubflow = flow({ name: 'embedded-with-subflow' }, async () => (await double(1)) + (await child(2)) + (await double(3)));

describe('durable runs in memory', () => {
  it('records every flow run and task run with its history, result and call position', async () => {
    fixture = createFixture({ durable: true });
    const { orchestrator } = fixture;
    const run = orchestrator.start(pipeline, 3);
    expect(await run.result()).toEqual({ total: 6, again: 7 });

    const [record] = await orchestrator.runs.list({ flowName: 'embedded-pipeline' });
    expect(record).toMatchObject({ id: run.id, name: run.name, state: { name: 'Completed' }, hasResult: true, result: { total: 6, again: 7 }, owner: orchestrator.ownerId });
    expect(record!.history.map((state) => state.name)).toEqual(['Pending', 'Running', 'Completed']);
    const { taskRuns } = await orchestrator.runs.show(run.id);
    expect(taskRuns.map((t) => [t.position, t.taskName, t.state.name, t.result])).toEqual([
      [0, 'embedded-double', 'Completed', 0],
      [1, 'embedded-double', 'Completed', 2],
      [2, 'embedded-double', 'Completed', 4],
      [3, 'embedded-flaky', 'Completed', 7],
    ]);
    expect(taskRuns[3]!.history.map((state) => state.name)).toEqual(['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Completed']);
    expect(await orchestrator.runs.list({ state: 'failed' })).toEqual([]);
  });

  it('fails a run whose result is larger than the store keeps, saying how large', async () => {
    fixture = createFixture({ durable: { maxResultBytes: 1_000 } });
    const { orchestrator } = fixture;
    const bigFlow = flow({ name: 'embedded-big-flow' }, async () => big(5_000));
    const run = orchestrator.start(bigFlow);
    const error = await run.result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResultTooLargeError);
    expect((error as Error).message).toMatch(/task run 'embedded-big-0' returned 500\d bytes encoded; durable runs keep results of at most 1000 bytes/);
    const record = await orchestrator.runs.get(run.id);
    expect(record).toMatchObject({ state: { name: 'Failed' }, error: { name: 'ResultTooLargeError' } });
  });

  it('needs NATS to start a run by name, and says so', async () => {
    fixture = createFixture({ durable: true });
    await expect(fixture.orchestrator.runs.start('embedded-pipeline', [1])).rejects.toMatchObject({ code: 'NATS_REQUIRED' });
  });

  it('keeps no records unless asked to in the embedded mode', async () => {
    fixture = createFixture();
    expect(await fixture.orchestrator.start(pipeline, 1).result()).toEqual({ total: 0, again: 7 });
    expect(() => fixture!.orchestrator.runs).toThrow(/durable/);
  });

  // Regression: `runs show` left the subflow call out: its task runs were numbered 0 and 2, nothing said what 1 was.
  it('shows the subflow runs a flow run called beside its task runs, in call order', async () => {
    fixture = createFixture({ durable: true });
    const { orchestrator } = fixture;
    const run = orchestrator.start(withSubflow);
    expect(await run.result()).toBe(12);
    const details = await orchestrator.runs.show(run.id);
    expect(details.taskRuns.map((t) => t.position)).toEqual([0, 2]);
    expect(details.subflows).toEqual([{ position: 1, run: expect.objectContaining({ flowName: 'embedded-child', parentId: run.id, state: expect.objectContaining({ name: 'Completed' }) }) }]);
    const text = formatRunDetails(details, Date.now());
    expect(text).toMatch(/task runs \(2\) and subflow runs \(1\), in call order:/);
    // Numbered from 1, as a NonDeterminismError names calls: the subflow is the second call.
    expect(text).toMatch(new RegExp(`\\n\\s+2\\s+${details.subflows[0]!.run.name} \\(subflow 'embedded-child', ${details.subflows[0]!.run.id}\\)\\s+Completed`));
  });

  // Regression: a run cancelled after a failed attempt recorded that attempt's error as its own.
  it("records a run cancelled after a failed attempt with the cancel, not the attempt's error", async () => {
    fixture = createFixture({ durable: true });
    const { orchestrator } = fixture;
    let attempts = 0;
    const flaky = task({ name: 'embedded-flaky-then-cancelled', retries: 1, retryDelayMs: 60_000 }, async () => {
      attempts += 1;
      throw new Error('boom');
    });
    const parent = flow({ name: 'embedded-cancels-its-retry' }, async () => {
      const future = flaky.submit();
      while (attempts === 0 || future.state?.name !== 'AwaitingRetry') await new Promise((resolve) => setTimeout(resolve, 5));
      future.cancel('not worth the wait');
      return (await future.wait()).name;
    });
    const run = orchestrator.start(parent);
    expect(await run.result()).toBe('Cancelled');
    const [task0] = (await orchestrator.runs.show(run.id)).taskRuns;
    expect(task0?.state.name).toBe('Cancelled');
    expect(task0?.error).toMatchObject({ name: 'CancelledError', message: 'task run was cancelled: not worth the wait' });
  });
});
