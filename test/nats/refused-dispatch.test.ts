/**
 * A process whose NATS user may not dispatch task runs. Regression: the server refuses such a
 * publish with a permissions violation on the connection and never acks it, and the task runs
 * waited `Pending` for ever, retried as if the server were slow ("could not dispatch the task
 * run yet; trying again"). Now the attempt fails at once with a `PermissionDeniedError`, which
 * is not retried, and the flow run ends `Failed` within seconds.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { flow, task } from '../../src/api.js';
import { createOrchestrator, type Orchestrator } from '../../src/runtime/orchestrator.js';
import { PermissionDeniedError } from '../../src/errors.js';
import { StreamPublisher } from '../../src/nats/stream-publisher.js';
import { ensureTasksStream, ensureWorkQueueStream } from '../../src/remote/streams.js';
import { createSubjects } from '../../src/subjects.js';
import type { RunEvent } from '../../src/events.js';
import { createMemoryLogger, recordEvents, type LogRecord } from '../unit/runtime/helpers.js';
import { useNatsServer } from '../support/use-nats-server.js';

const PASSWORD = 'refused-dispatch-test';
/** The namespace of the test where the tasks stream does not exist yet. */
const FRESH = 'freshns';

// The observer role as deploy/nats/auth.conf defines it: it may watch, not run flows.
const authConf = readFileSync(fileURLToPath(new URL('../../deploy/nats/auth.conf', import.meta.url)), 'utf8');
const observerRole = /^OBSERVER = \{[\s\S]*?^\}/m.exec(authConf)?.[0];
if (observerRole === undefined) throw new Error('deploy/nats/auth.conf defines no OBSERVER role');
// The other users' permissions are deny-lists: each may do everything but what its test is about.
const dir = mkdtempSync(join(tmpdir(), 'tenaz-refused-'));
const config = join(dir, 'users.conf');
writeFileSync(
  config,
  `${observerRole}
authorization {
  users: [
    { user: admin, password: "${PASSWORD}" }
    { user: nodispatch, password: "${PASSWORD}", permissions: { publish: { deny: ["tenaz.task.>"] } } }
    { user: nocreate, password: "${PASSWORD}", permissions: { publish: { deny: ["$JS.API.STREAM.CREATE.${FRESH}_tasks"] } } }
    { user: observer, password: "${PASSWORD}", permissions: $OBSERVER }
  ]
}
`,
);
const nats = useNatsServer({ args: ['-c', config] });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REFUSAL_LINE = 'the NATS server refuses this user the dispatch of task runs; they fail without a retry';
/**
 * How long the flow run may take to fail: a refusal is answered at once. Without one, the
 * dispatch is sent again and again and the run never ends: a loaded machine gets room here.
 */
const PROMPTLY_MS = 15_000;

const work = task({ name: 'refused-work', retries: 3, retryDelayMs: 10 }, async (x: number) => x);
const fanOut = flow({ name: 'refused-fan-out' }, async (n: number) => Promise.all(Array.from({ length: n }, (_, i) => work(i))));

const open: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const resource of open.splice(0).reverse()) await resource.close().catch(() => undefined);
});

async function as(user: 'admin' | 'nodispatch' | 'nocreate' | 'observer'): Promise<NatsConnection> {
  const connection = await connect({ servers: nats.server.url, user, pass: PASSWORD });
  open.push(connection);
  return connection;
}

function owner(connection: NatsConnection, namespace?: string): { orchestrator: Orchestrator; records: LogRecord[]; events: ReturnType<typeof recordEvents> } {
  const { logger, records } = createMemoryLogger();
  const orchestrator = createOrchestrator({ nats: connection, logger, namespace });
  const events = recordEvents(orchestrator);
  open.push(orchestrator, { close: async () => events.close() });
  return { orchestrator, records, events };
}

/** The run's end, or a rejection after `ms`: without the fix the run never ends. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The error a flow run ends with (undefined if it completes), once it ends within `ms`. */
function failureWithin(run: { result(): Promise<unknown> }, ms: number): Promise<unknown> {
  return within(
    run.result().then(
      () => undefined,
      (e: unknown) => e,
    ),
    ms,
  );
}

const terminalTaskStates = (events: RunEvent[]) =>
  events.filter((e) => e.type === 'task.state' && ['Completed', 'Failed', 'Crashed', 'Cancelled', 'TimedOut'].includes(e.state.name)).map((e) => e.state);

describe('a dispatch the server refuses this user', () => {
  it('fails the task runs at once with PermissionDeniedError, unretried, and the flow run ends Failed within seconds', async () => {
    // The stream exists (an admin made it): only the publish to the task's subject is refused.
    await ensureTasksStream(await jetstreamManager(await as('admin')), createSubjects());
    const { orchestrator, records, events } = owner(await as('nodispatch'));
    const run = orchestrator.start(fanOut, 5);
    const error = await failureWithin(run, PROMPTLY_MS);
    expect(error).toBeInstanceOf(PermissionDeniedError);
    expect(error).toMatchObject({ code: 'PERMISSION_DENIED', retryable: false });
    expect((error as Error).message).toContain("'tenaz.task.default.refused-work'");
    expect(run.state).toMatchObject({ name: 'Failed', errorCode: 'PERMISSION_DENIED' });

    // Each task run ends Failed after its one attempt, although its task allows 3 retries.
    await events.untilFlowEnds();
    const ends = terminalTaskStates(events.events);
    expect(ends).toHaveLength(5);
    for (const state of ends) expect(state).toMatchObject({ name: 'Failed', attempt: 1, errorName: 'PermissionDeniedError', errorCode: 'PERMISSION_DENIED' });
    expect(events.events.some((e) => e.type === 'task.state' && e.state.name === 'AwaitingRetry')).toBe(false);

    // One line says it, not one per task run; nothing says it is being tried again.
    expect(records.filter((r) => r.msg === REFUSAL_LINE)).toHaveLength(1);
    expect(records.filter((r) => r.msg === REFUSAL_LINE)[0]).toMatchObject({ level: 40, refusedSinceLastLine: 1 });
    expect(records.some((r) => /trying again/.test(r.msg))).toBe(false);
  });

  it('fails the task run the same way when what is refused is making the tasks stream', async () => {
    const { orchestrator, records } = owner(await as('nocreate'), FRESH);
    const run = orchestrator.start(fanOut, 2);
    const error = await failureWithin(run, PROMPTLY_MS);
    expect(error).toBeInstanceOf(PermissionDeniedError);
    expect((error as Error).message).toContain(`'$JS.API.STREAM.CREATE.${FRESH}_tasks'`);
    expect(run.state).toMatchObject({ name: 'Failed', errorCode: 'PERMISSION_DENIED' });
    expect(records.filter((r) => r.msg === REFUSAL_LINE)).toHaveLength(1);
  });

  it('fails the flow run of the observer role of deploy/nats/auth.conf within seconds, with PermissionDeniedError', async () => {
    await ensureTasksStream(await jetstreamManager(await as('admin')), createSubjects());
    // Refused much else too (events, records, its own owner subject): what it is told is the dispatch.
    const { orchestrator, records } = owner(await as('observer'));
    const run = orchestrator.start(fanOut, 3);
    const error = await failureWithin(run, PROMPTLY_MS);
    expect(error).toBeInstanceOf(PermissionDeniedError);
    expect(run.state).toMatchObject({ name: 'Failed', errorCode: 'PERMISSION_DENIED' });
    expect(records.filter((r) => r.msg === REFUSAL_LINE)).toHaveLength(1);
  });
});

describe('StreamPublisher, as a user the server refuses one subject', () => {
  it('fails the publishes waiting on the refused subject with PermissionDeniedError, and only those', async () => {
    await ensureWorkQueueStream(await jetstreamManager(await as('admin')), 'refusaltest', 'refusaltest.>');
    // tenaz.task.> is refused to this user, and taken by no stream: without the refusal it would time out.
    const publisher = new StreamPublisher(await as('nodispatch'), 30_000);
    open.push({ close: async () => publisher.close() });
    const bytes = new TextEncoder().encode('x');
    const [allowed, refused, refusedToo] = await within(
      Promise.allSettled([publisher.publish('refusaltest.a', bytes), publisher.publish('tenaz.task.p.t', bytes), publisher.publish('tenaz.task.p.t', bytes)]),
      PROMPTLY_MS,
    );
    expect(allowed).toMatchObject({ status: 'fulfilled', value: { stream: 'refusaltest' } });
    for (const result of [refused, refusedToo]) {
      expect(result?.status).toBe('rejected');
      const reason = (result as PromiseRejectedResult).reason as PermissionDeniedError;
      expect(reason).toBeInstanceOf(PermissionDeniedError);
      expect(reason.message).toContain("'tenaz.task.p.t'");
      expect((reason.cause as Error).name).toBe('PermissionViolationError');
    }
  });
});
