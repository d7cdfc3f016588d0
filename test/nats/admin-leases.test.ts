/**
 * Leases while this process is itself cut off: during a nats-server outage (the server
 * stopped by its PID, started again on the same port and store) no process judges another's
 * lease lapsed, nor after it until others could renew; renewals that fail for the outage are
 * told in a line now and then, without a stack. A process that really dies is still judged.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { flow } from '../../src/index.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { createMemoryLogger, type LogRecord } from '../unit/runtime/helpers.js';
import { useNatsServer } from '../support/use-nats-server.js';
import { waitFor } from '../support/nats-fixture.js';

const LEASE_MS = 1_000;
const nats = useNatsServer();

const LAPSED = /^The lease of process \d+ on .+ lapsed$/;
const HAND_ON = 'could not hand on the flow runs of a process whose lease lapsed';
const RENEW = /^could not renew this process's lease/;

describe('leases while cut off', { timeout: 25_000 }, () => {
  it('judges nobody during a server outage or just after it, tells failed renewals in a few lines, and still judges a process that dies', async () => {
    const options = { servers: nats.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 };
    const [firstConnection, secondConnection] = await Promise.all([connect(options), connect({ ...options, reconnectTimeWait: 400 })]);
    const first = createMemoryLogger();
    const second = createMemoryLogger();
    const durable = { leaseMs: LEASE_MS };
    const one = createOrchestrator({ nats: firstConnection, namespace: 'admin-leases', execution: 'local', durable, logger: first.logger });
    const two = createOrchestrator({ nats: secondConnection, namespace: 'admin-leases', execution: 'local', durable, logger: second.logger });
    const judged = (records: LogRecord[]) => records.filter((entry) => LAPSED.test(entry.msg) || entry.msg === HAND_ON);
    try {
      await one.serveFlows({ flows: [flow({ name: 'admin-leases-one' }, async () => 1)] });
      await two.serveFlows({ flows: [flow({ name: 'admin-leases-two' }, async () => 2)] });
      await sleep(2 * LEASE_MS);

      await nats.server.stop();
      await sleep(3.5 * LEASE_MS);
      await nats.server.start();
      await sleep(3 * LEASE_MS);
      expect(judged(first.records).map((entry) => entry.msg)).toEqual([]);
      expect(judged(second.records).map((entry) => entry.msg)).toEqual([]);
      for (const records of [first.records, second.records]) {
        const renewals = records.filter((entry) => RENEW.test(entry.msg));
        expect(renewals.length).toBeLessThanOrEqual(2);
        // A server away is routine: one line, no stack.
        for (const entry of renewals) expect(entry.err, JSON.stringify(entry)).toBeUndefined();
      }

      // The second process dies without a word (its lease stays in the bucket): the first judges it.
      await secondConnection.close();
      await waitFor(() => first.records.some((entry) => LAPSED.test(entry.msg)), 4 * LEASE_MS, 'the lease of the dead process lapsed');
    } finally {
      await one.close();
      await two.close().catch(() => {});
      await firstConnection.close();
    }
  });
});
