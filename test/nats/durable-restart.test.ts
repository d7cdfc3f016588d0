/**
 * Leases across a nats-server restart longer than a lease: nobody's renewals
 * are seen meanwhile, so nobody may be judged dead for it; and afterwards the
 * watch of leases goes on, so a process that really dies is still taken over.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flow, getRunContext, task } from '../../src/index.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { waitFor } from '../support/nats-fixture.js';

const LEASE_MS = 1_000;
let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.dispose();
});

describe('leases across a server restart', { timeout: 40_000 }, () => {
  it('takes over no live process after an outage longer than a lease, and still takes over a dead one', async () => {
    const { logger } = createMemoryLogger();
    const options = { servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 };
    // The owner comes back later than the standby, though within a lease: the standby must not
    // take its absence during the outage for a death.
    const [ownerConnection, serverConnection] = await Promise.all([connect({ ...options, reconnectTimeWait: 600 }), connect(options)]);
    const durable = { leaseMs: LEASE_MS };
    const owner = createOrchestrator({ nats: ownerConnection, namespace: 'restart', execution: 'local', durable, logger });
    const standby = createOrchestrator({ nats: serverConnection, namespace: 'restart', execution: 'local', durable, logger });
    try {
      const calls: string[] = [];
      const step = task({ name: 'restart-step' }, async (what: string) => {
        calls.push(what);
        // The owner's second step waits (it is "busy" through the outage); the resumed one does not.
        if (what === 'second' && calls.filter((c) => c === what).length === 1) await sleep(60_000, undefined, { signal: getRunContext().signal }).catch(() => {});
        return what;
      });
      const twoSteps = flow({ name: 'restart-flow' }, async () => [await step('first'), await step('second')]);
      await standby.serveFlows({ flows: [twoSteps] });
      const run = owner.start(twoSteps);
      await waitFor(() => calls.includes('second'), 10_000, 'the second step started');

      await server.stop();
      await sleep(2.5 * LEASE_MS);
      await server.start();
      // Both processes reconnect and renew; a few leases later, the run is still the owner's.
      await sleep(4 * LEASE_MS);
      const during = await standby.runs.get(run.id);
      expect(during.owner).toBe(owner.ownerId);
      expect(during.resumes).toBe(0);
      expect(calls).toEqual(['first', 'second']);

      // Now the owner really goes: the standby, whose watch of leases outlived the restart, takes over.
      await ownerConnection.close();
      const record = await standby.runs.wait(run.id);
      expect(record).toMatchObject({ state: { name: 'Completed' }, result: ['first', 'second'], owner: standby.ownerId, resumes: 1 });
      expect(calls).toEqual(['first', 'second', 'second']);
    } finally {
      await standby.close();
      await owner.close().catch(() => {});
      await serverConnection.close().catch(() => {});
    }
  });
});
