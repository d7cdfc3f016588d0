/**
 * `runs.wait()` against a real nats-server: it rides out a server restart (stopped by its
 * PID, started again on the same port and store) and ends with the run's real end; a
 * connection or orchestrator closed for good ends it at once, with ClosedError.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { flow, task } from '../../src/index.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { useNatsServer } from '../support/use-nats-server.js';

const nats = useNatsServer();
let namespaces = 0;

const reconnecting = () => ({ servers: nats.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });

describe('runs.wait()', { timeout: 25_000 }, () => {
  it('waits through a server restart and resolves with the completed record', async () => {
    const namespace = `admin-wait${++namespaces}`;
    const memory = createMemoryLogger();
    const [serving, waiting] = await Promise.all([connect(reconnecting()), connect(reconnecting())]);
    const durable = { leaseMs: 1_000 };
    const worker = createOrchestrator({ nats: serving, namespace, execution: 'local', durable, logger: createMemoryLogger().logger });
    const admin = createOrchestrator({ nats: waiting, namespace, execution: 'local', durable: true, logger: memory.logger });
    try {
      const slowStep = task({ name: 'admin-wait-step' }, async (index: number) => {
        await sleep(300);
        return index;
      });
      const slow = flow({ name: 'admin-wait-flow' }, async (steps: number) => {
        let total = 0;
        for (let index = 0; index < steps; index += 1) total += await slowStep(index);
        return total;
      });
      await worker.serveFlows({ flows: [slow] });
      const queued = await admin.runs.start('admin-wait-flow', [16]);
      const ended = queued.wait();
      await sleep(1_000);
      await nats.server.stop();
      await sleep(3_500);
      await nats.server.start();
      const record = await ended;
      expect(record).toMatchObject({ state: { name: 'Completed' }, result: 120 });
      // The outage is told once, at info, not thrown.
      const tries = memory.records.filter((entry) => entry.msg?.startsWith('could not read the flow run record'));
      expect(tries.filter((entry) => entry.level === 30).length).toBeGreaterThan(0);
    } finally {
      await admin.close();
      await worker.close();
      await Promise.all([serving.close(), waiting.close()]);
    }
  });

  it.for([
    ['its connection closes for good', 'connection'],
    ['the orchestrator closes', 'orchestrator'],
  ] as const)('rejects with ClosedError, at once, when %s', async ([, closing]) => {
    const connection = await connect(reconnecting());
    const admin = createOrchestrator({ nats: connection, namespace: `admin-wait${++namespaces}`, execution: 'local', durable: true, logger: createMemoryLogger().logger });
    try {
      // Nobody serves it: the run waits Scheduled for ever.
      const queued = await admin.runs.start('nobody-serves-this', []);
      const ended = queued.wait();
      await sleep(300);
      const closedAt = Date.now();
      await (closing === 'connection' ? connection.close() : admin.close());
      await expect(ended).rejects.toMatchObject({ code: 'CLOSED' });
      // Not tried again as a server away would be (the backoff reaches 2 s).
      expect(Date.now() - closedAt).toBeLessThan(3_000);
    } finally {
      await admin.close();
      await connection.close();
    }
  });
});
