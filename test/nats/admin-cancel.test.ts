/**
 * `runs.cancel()` against run records in a real JetStream KV: a run nobody has taken ends
 * `Cancelled` in its record and says so on the bus; a process taking it at the same moment
 * wins or loses the compare-and-set cleanly; unknown and ended runs are refused.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flow } from '../../src/index.js';
import { createOrchestrator } from '../../src/runtime/orchestrator.js';
import { RunAdmin } from '../../src/durable/run-admin.js';
import { RUNS_BUCKET, type FlowRunRecord } from '../../src/durable/records.js';
import type { FlowStateEvent } from '../../src/events.js';
import { createKvStore } from '../../src/store/kv.js';
import type { PutOptions, Store } from '../../src/store/store.js';
import { createSubjects } from '../../src/subjects.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { useNatsServer } from '../support/use-nats-server.js';
import { waitFor } from '../support/nats-fixture.js';

const nats = useNatsServer();
let connection: NatsConnection;
let namespaces = 0;

beforeAll(async () => {
  connection = await connect({ servers: nats.server.url });
});
afterAll(async () => {
  await connection?.close();
});

/** A RunAdmin over the KV store, its events kept; `store` is the one it writes through. */
function admin(store: Store) {
  const events: FlowStateEvent[] = [];
  /** Cancels asked of owners. */
  const requested: Array<{ flowRunId: string; reason: string }> = [];
  const runs = new RunAdmin({
    store,
    subjects: createSubjects(`admin-cancel${namespaces}`),
    logger: createMemoryLogger().logger,
    now: Date.now,
    publishEvent: (_subject, event) => void events.push(event),
    enqueue: async () => {},
    isServed: async () => undefined,
    leases: async () => undefined,
    watchFlowRun: () => {
      throw new Error('not watched here');
    },
    requestCancel: async (flowRunId, reason) => void requested.push({ flowRunId, reason }),
    endLostTaskRuns: async () => 0,
  });
  return { runs, events, requested };
}

describe('runs.cancel()', { timeout: 20_000 }, () => {
  it('ends a Scheduled run nobody took Cancelled, tells observers, and a process serving its flow later leaves it', async () => {
    const namespace = `admin-cancel${++namespaces}`;
    const { logger } = createMemoryLogger();
    const owner = createOrchestrator({ nats: connection, namespace, execution: 'local', durable: { leaseMs: 500 }, logger });
    const calls: string[] = [];
    const late = flow({ name: 'admin-cancel-late' }, async () => void calls.push('ran'));
    try {
      const queued = await owner.runs.start('admin-cancel-late', []);
      const seen: string[] = [];
      const events = owner.watch({ flowRunId: queued.id, kind: 'flow' });
      void (async () => {
        for await (const event of events) if (event.type === 'flow.state') seen.push(event.state.name);
      })();
      await sleep(200);
      const cancelled = await owner.runs.cancel(queued.id, 'not needed after all');
      expect(cancelled).toMatchObject({ outcome: 'cancelled', record: { id: queued.id, state: { name: 'Cancelled' }, error: { code: 'CANCELLED' } } });
      expect((await owner.runs.get(queued.id)).state.name).toBe('Cancelled');
      await waitFor(() => seen.includes('Cancelled'), 5_000, 'the Cancelled state published');
      events.close();

      await owner.serveFlows({ flows: [late] });
      await sleep(1_000);
      expect(calls).toEqual([]);
      expect((await owner.runs.get(queued.id)).state.name).toBe('Cancelled');
      await expect(owner.runs.cancel(queued.id)).rejects.toMatchObject({ code: 'ILLEGAL_STATE', message: `flow run '${queued.name}' (${queued.id}) already ended Cancelled` });
    } finally {
      await owner.close();
    }
  });

  it('loses cleanly to a process that takes the run at the same moment: the run is then owned, not cancelled', async () => {
    const store = createKvStore({ connection, namespace: `admin-cancel${++namespaces}`, logger: createMemoryLogger().logger });
    let raced = false;
    // Another process takes the run between cancel()'s read and its compare-and-set.
    const racing: Store = {
      get: <V>(bucket: string, key: string) => store.get<V>(bucket, key),
      list: <V>(bucket: string) => store.list<V>(bucket),
      delete: (bucket, key) => store.delete(bucket, key),
      close: () => store.close(),
      put: async <V>(bucket: string, key: string, value: V, options?: PutOptions) => {
        if (!raced && bucket === RUNS_BUCKET && (options?.expectedRevision ?? 0) > 0) {
          raced = true;
          const taken = { ...(value as FlowRunRecord), owner: 'another-process', state: { type: 'RUNNING', name: 'Running', timestamp: Date.now(), attempt: 1 } };
          await store.put(bucket, key, taken, options);
        }
        return store.put(bucket, key, value, options);
      },
    };
    const { runs, events, requested } = admin(racing);
    const queued = await runs.start('nobody-serves-this', []);
    const outcome = await runs.cancel(queued.id);
    expect(raced).toBe(true);
    expect(outcome).toMatchObject({ outcome: 'owned', record: { owner: 'another-process', state: { name: 'Running' } } });
    // The process that won asks its owner: only it can stop the body.
    expect(requested).toEqual([{ flowRunId: queued.id, reason: 'cancelled' }]);
    expect(await runs.get(queued.id)).toMatchObject({ owner: 'another-process', state: { name: 'Running' } });
    expect(events.map((event) => event.state.name)).toEqual(['Scheduled']);
  });

  it('refuses an unknown id with RunNotFoundError and a run that already ended with IllegalStateError', async () => {
    const store = createKvStore({ connection, namespace: `admin-cancel${++namespaces}`, logger: createMemoryLogger().logger });
    const { runs } = admin(store);
    await expect(runs.cancel('nonexistent')).rejects.toMatchObject({ name: 'RunNotFoundError', code: 'NOT_FOUND', message: 'no flow run nonexistent is recorded' });
    const queued = await runs.start('nobody-serves-this', []);
    const { revision } = (await store.get(RUNS_BUCKET, queued.id))!;
    const record = (await runs.get(queued.id)) as FlowRunRecord;
    await store.put(RUNS_BUCKET, queued.id, { ...record, state: { type: 'COMPLETED', name: 'Completed', timestamp: Date.now(), attempt: 1 } }, { expectedRevision: revision });
    await expect(runs.cancel(queued.id)).rejects.toMatchObject({ code: 'ILLEGAL_STATE', message: `flow run '${queued.name}' (${queued.id}) already ended Completed` });
  });
});
