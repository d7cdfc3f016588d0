/**
 * Nesting depth across processes. Regression: a task body that ran on a worker counted its
 * depth from 1 again, because the dispatch did not carry the task run's depth; a chain of
 * runs could go on for ever as long as it crossed to a worker now and then. The dispatch now
 * carries it, and the worker runs the body at that depth.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { flow, task } from '../../src/api.js';
import { createOrchestrator, type Orchestrator } from '../../src/runtime/orchestrator.js';
import { depthOfNewRun, MAX_RUN_DEPTH } from '../../src/runtime/context.js';
import type { TaskWorker } from '../../src/remote/worker.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';
import { useNatsServer } from '../support/use-nats-server.js';

const nats = useNatsServer();

/** The depth a run started by the calling body gets: what the limit is checked against. */
const nextDepth = () => depthOfNewRun('task', 'probe');

const leaf = task({ name: 'depth-leaf' }, async () => nextDepth());
/** On the worker: the depth its own calls get, and what a task it calls (dispatched again) sees. */
const probe = task({ name: 'depth-probe' }, async () => ({ nested: nextDepth(), leafNested: await leaf() }));
const callee = task({ name: 'depth-callee' }, async () => 'called');
/** On the worker: starts one run, of `callee`. */
const caller = task({ name: 'depth-caller' }, async () => callee());
/** `deep(n)` is a chain of n flow runs (depths 1 to n); the last calls `probe`, at depth n + 1. */
const deep = flow({ name: 'depth-deep' }, async (n: number): Promise<{ nested: number; leafNested: number }> => (n > 1 ? deep(n - 1) : probe()));
/** As `deep`, with `caller` at the end. */
const deepCall = flow({ name: 'depth-deep-call' }, async (n: number): Promise<string> => (n > 1 ? deepCall(n - 1) : caller()));

describe('nesting depth on a worker', () => {
  const open: Array<{ close(): Promise<unknown> }> = [];
  let owner: Orchestrator;
  let worker: TaskWorker;

  afterEach(async () => {
    await worker?.close();
    for (const resource of open.splice(0).reverse()) await resource.close().catch(() => undefined);
  });

  async function start(): Promise<void> {
    const connection = async (): Promise<NatsConnection> => {
      const nc = await connect({ servers: nats.server.url });
      open.push(nc);
      return nc;
    };
    const { logger } = createMemoryLogger('warn');
    // Nothing here is about records: 200 flow runs go faster without them.
    owner = createOrchestrator({ nats: await connection(), logger, durable: false });
    // The worker's process dispatches the calls its task bodies make to workers too (to itself).
    const workerSide = createOrchestrator({ nats: await connection(), logger, durable: false });
    open.push(owner, workerSide);
    worker = workerSide.worker({ tasks: [probe, leaf, caller, callee], concurrency: 4 });
    await worker.ready();
  }

  it('runs a task body at the depth of its task run, so the runs it starts nest one deeper, across every hop', async () => {
    await start();
    // Flow runs at depths 1 to 3, probe at 4: its calls get 5, and leaf (at 5) gives its own 6.
    expect(await owner.start(deep, 3).result()).toEqual({ nested: 5, leafNested: 6 });
  });

  it(`refuses a call from a task body on a worker that would be more than ${MAX_RUN_DEPTH} runs deep, and allows one exactly that deep`, async () => {
    await start();
    // caller at depth 199: callee, at 200, is the deepest run allowed.
    expect(await owner.start(deepCall, MAX_RUN_DEPTH - 2).result()).toBe('called');
    // caller at depth 200: callee, at 201, is refused on the worker, and caller fails with that.
    const run = owner.start(deepCall, MAX_RUN_DEPTH - 1);
    const error = await run.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ name: 'NestingDepthError', code: 'NESTING_TOO_DEEP', retryable: false });
    expect((error as Error).message).toContain("task 'depth-callee' was called by task run 'depth-caller-0' on a worker");
    expect(run.state).toMatchObject({ name: 'Failed', errorCode: 'NESTING_TOO_DEEP' });
  }, 60_000);
});
