/**
 * The shared setup of the NATS tests: one nats-server per file, and per test a
 * hit server, worker processes, and an owner orchestrator in the test process
 * whose events and log records are recorded.
 */
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createOrchestrator, type Orchestrator, type OrchestratorOptions } from '../../src/runtime/orchestrator.js';
import { createMemoryLogger, recordEvents, type EventRecorder, type LogRecord } from '../unit/runtime/helpers.js';
import { startNatsServer, type NatsServer } from './nats-server.js';
import { HitServer, Processes } from './processes.js';

export interface NatsFixture {
  server: NatsServer;
  hits: HitServer;
  processes: Processes;
  connection: NatsConnection;
  owner: Orchestrator;
  events: EventRecorder;
  records: LogRecord[];
}

/** Registers the hooks; the returned object is filled in before each test. */
export function useNatsFixture(ownerOptions: Omit<OrchestratorOptions, 'nats' | 'logger'> = {}): NatsFixture {
  const fixture = {} as NatsFixture;
  beforeAll(async () => {
    fixture.server = await startNatsServer();
  });
  afterAll(async () => {
    await fixture.server?.dispose();
  });
  beforeEach(async () => {
    if (fixture.server.pid === undefined) await fixture.server.start();
    fixture.hits = new HitServer();
    await fixture.hits.start();
    fixture.processes = new Processes();
    fixture.connection = await connect({ servers: fixture.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const memory = createMemoryLogger();
    fixture.records = memory.records;
    fixture.owner = createOrchestrator({ ...ownerOptions, nats: fixture.connection, logger: memory.logger });
    fixture.events = recordEvents(fixture.owner);
  });
  afterEach(async () => {
    fixture.events.close();
    await fixture.owner.close();
    await fixture.connection.close();
    await fixture.processes.stopAll();
    await fixture.hits.stop();
  });
  return fixture;
}

/** Polls `predicate` every 20 ms until it holds. */
export async function waitFor(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what} not met in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
