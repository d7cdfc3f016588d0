import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { flow, task } from '../../src/api.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';

let server: NatsServer;
beforeAll(async () => { server = await startNatsServer(); });
afterAll(async () => { await server?.dispose(); });

it('runs a flow whose tasks execute on a worker', async () => {
  const double = task({ name: 'smoke-double' }, async (x: number) => x * 2);
  const sum = flow({ name: 'smoke-sum' }, async (n: number) => {
    const values = await Promise.all(Array.from({ length: n }, (_, i) => double(i)));
    return values.reduce((a, b) => a + b, 0);
  });
  const ncOwner = await connect({ servers: server.url });
  const ncWorker = await connect({ servers: server.url });
  const { logger, records } = createMemoryLogger();
  const owner = createOrchestrator({ nats: ncOwner, logger });
  const workerSide = createOrchestrator({ nats: ncWorker, logger, execution: 'local' });
  const worker = workerSide.worker({ tasks: [double], concurrency: 4 });
  await worker.ready();
  const run = owner.start(sum, 10);
  expect(await run.result()).toBe(90);
  await owner.close();
  await workerSide.close();
  expect(worker.stats.finished).toBe(10);
  await ncOwner.close();
  await ncWorker.close();
  expect(records.filter((r) => r.level >= 50)).toEqual([]);
});
