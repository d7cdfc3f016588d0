/**
 * The orchestrator: one per process (or the ambient default). It starts flow
 * runs and task runs as supervised actors, publishes every transition on its
 * bus, and closes cleanly.
 */
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { createActor, fromCallback, type AnyActorRef, type AnyEventObject } from 'xstate';
import { z } from 'zod';
import type { Bus, BusMessage, Delivery, Subscription } from '../bus/bus.js';
import { createMemoryBus } from '../bus/memory.js';
import { createNatsBus } from '../bus/nats.js';
import { ClosedError, DrainingError, IllegalStateError, InvalidArgumentError, NatsRequiredError, type PermissionDeniedError } from '../errors.js';
import { assertKnownKeys, type AllKeys } from '../options.js';
import { isTerminal } from '../../actors/state.js';
import { assertJetStream, connectNats, resolveNatsOption, type NatsOption } from '../nats/connection.js';
import { TaskDispatcher } from '../remote/dispatcher.js';
import { TaskWorker, type WorkerOptions } from '../remote/worker.js';
import type { EventFilter, RunEvent } from '../events.js';
import { ensureEventsStream, parseSince, type HistoryOptions, type Since } from '../history.js';
import { HistoryWriter } from '../history-writer.js';
import { followHistory, replayHistory, subscribeEvents, type EventStream } from './watch.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { DropCounter } from '../drop-counter.js';
import { createRootLogger } from '../log.js';
import { assertTimerMs } from '../retry.js';
import { createMemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { createKvStore } from '../store/kv.js';
import { DEFAULT_NAMESPACE, createSubjects } from '../subjects.js';
import { definitionOf, registeredFlows, type FlowDefinition, type TaskDefinition } from './definitions.js';
import type { Engine, RemoteExecution } from './engine.js';
import { FlowRunRuntime } from './flow-run.js';
import { FlowRun } from './handles.js';
import { provideMachines } from './machines.js';
import { TaskRunRuntime } from './task-run.js';
import { RunRecorder, type DurableOptions } from '../durable/run-recorder.js';
import { DEFAULT_LEASE_MS, MIN_LEASE_MS, OwnerDirectory, readLeases } from '../durable/owners.js';
import { FlowServer } from '../durable/flow-server.js';
import { RunAdmin } from '../durable/run-admin.js';
import { enqueueFlowRun } from '../durable/flow-queue.js';
import type { FlowRunRecord } from '../durable/records.js';
import { endLostTaskRuns, type LostTaskRunsHost, type ResumedFlowRun } from '../durable/lost-task-runs.js';
import { failureFields, toPermissionDenied } from '../nats/passing-failure.js';

export interface OrchestratorOptions {
  /** Prefix of every subject, to keep several deployments apart. @default env TENAZ_NAMESPACE or 'tenaz' */
  namespace?: string;
  /** The process's root logger. @default a logger from `createRootLogger()` */
  logger?: Logger;
  /** Where cached results (and, later, run records) live. @default JetStream KV with `nats`, else an in-memory store */
  store?: Store;
  /** The bus events are published on. @default an in-memory bus */
  bus?: Bus;
  /** Clock, ms since the epoch. @default Date.now */
  now?: () => number;
  /** Random source for jitter, in [0, 1). @default Math.random */
  random?: () => number;
  /**
   * A NATS connection to coordinate over: task runs go to workers, events go on
   * NATS. It stays open when the orchestrator closes (it is yours). To connect by
   * URL or options, use `connectOrchestrator`.
   */
  nats?: NatsConnection;
  /**
   * Where task runs execute: `'workers'` dispatches them over NATS to processes
   * serving their task (`tenaz worker`, `orchestrator.worker()`); `'local'` runs
   * them in this process. @default 'workers' with `nats`, else 'local'
   */
  execution?: 'local' | 'workers';
  /**
   * A task run on a worker that sends no heartbeat for this long is `Crashed` and
   * restarted within its crash budget, in ms (at least 100). @default 3000
   */
  heartbeatTimeoutMs?: number;
  /** How long a dispatched task run waits for a worker before a warning is logged, in ms. @default 10000 */
  claimWarningMs?: number;
  /**
   * The history of run events kept in JetStream (with `nats`), which `watch({ since })`
   * replays; `false` to neither create nor use it. @default kept 7 days, at most 1 GiB
   */
  history?: HistoryOptions | false;
  /**
   * Copies of each JetStream stream and KV bucket this process creates (the task and flow
   * queues, the event history, run records, leases, the cache): 3 on a three-node cluster,
   * so that losing a node loses and stops nothing. Streams and buckets that exist already
   * are used as they are. @default 1
   */
  replicas?: number;
  /**
   * Durable runs: every transition of every run is recorded in the store (JetStream KV
   * with `nats`), results included; a flow run whose process dies is resumed by a
   * process that serves its flow (`serveFlows()`, `tenaz worker`), its completed task
   * runs read back, not run again. `false` turns it off.
   * @default on with `nats` and `execution: 'workers'`, else off
   */
  durable?: boolean | DurableRunOptions;
}

const ORCHESTRATOR_KEYS: ReadonlySet<string> = new Set(
  Object.keys({
    namespace: true, logger: true, store: true, bus: true, now: true, random: true, nats: true, execution: true,
    heartbeatTimeoutMs: true, claimWarningMs: true, history: true, replicas: true, durable: true,
  } satisfies AllKeys<OrchestratorOptions>),
);
const WATCH_KEYS: ReadonlySet<string> = new Set(Object.keys({ flowName: true, flowRunId: true, kind: true, since: true } satisfies AllKeys<WatchOptions>));
const DURABLE_KEYS: ReadonlySet<string> = new Set(
  Object.keys({ leaseMs: true, keepMs: true, writeWindowMs: true, maxResultBytes: true } satisfies AllKeys<DurableRunOptions>),
);

const END_STUCK_RUNS = Symbol('endStuckRuns');
const STUCK_CAUSE = 'its body awaits something that nothing left in this process can settle (no timer, socket or other work is pending)';
/** The open orchestrators, told by the process's one `beforeExit` listener. */
const openOrchestrators = new Set<Orchestrator>();
const onBeforeExit = () => {
  for (const orchestrator of openOrchestrators) orchestrator[END_STUCK_RUNS]();
};

function watchForStuckRuns(orchestrator: Orchestrator): void {
  if (openOrchestrators.size === 0) process.on('beforeExit', onBeforeExit);
  openOrchestrators.add(orchestrator);
}

function unwatchForStuckRuns(orchestrator: Orchestrator): void {
  openOrchestrators.delete(orchestrator);
  if (openOrchestrators.size === 0) process.off('beforeExit', onBeforeExit);
}

/**
 * A call made by a flow run's body after that run ended (a timer the body left behind) is
 * refused: it would run under a finished run, its events naming a run already `Completed`.
 */
function assertCallerRunning(kind: 'task' | 'flow', name: string, caller: FlowRunRuntime | undefined): void {
  const state = caller?.state;
  if (state === undefined || !isTerminal(state.name)) return;
  throw new IllegalStateError(
    `${kind} '${name}' was called by flow run '${caller!.name}' after that run had ended ${state.name}: a flow must await what it calls before it returns`,
  );
}

/** Refuses what would otherwise fail later, inside a run: a misspelt option, a clock that is not a function. */
function assertOrchestratorOptions(options: OrchestratorOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError(`orchestrator options must be an object, got ${String(options)}`);
  assertKnownKeys('unknown orchestrator option', options, ORCHESTRATOR_KEYS);
  if (typeof options.durable === 'object' && options.durable !== null) assertKnownKeys('unknown durable option', options.durable, DURABLE_KEYS);
  for (const name of ['now', 'random'] as const) {
    const value = options[name];
    if (value !== undefined && typeof value !== 'function') {
      throw new InvalidArgumentError(`${name} must be a function returning a number, such as ${name === 'now' ? 'Date.now' : 'Math.random'}; got ${typeof value}`);
    }
  }
}

/** Options of durable runs. */
export interface DurableRunOptions extends DurableOptions {
  /**
   * How long this process's lease on its flow runs lasts without renewal, in ms (at
   * least 300): once it lapses, a process serving the flow takes the run over. @default 3000
   */
  leaseMs?: number;
  /**
   * How long run records (and cached results) are kept after their last write, in ms; 0
   * keeps them for ever. Applies to the KV buckets this process creates. A flow run that
   * goes this long without a transition loses its record. @default 30 days
   */
  keepMs?: number;
}

/** Which flows `serveFlows()` serves. */
export interface ServeFlowsOptions {
  /** The flows, as made by `flow()`. @default every flow defined in this process */
  flows?: readonly unknown[];
}

/** What to watch; `since` replays the history first (needs NATS). */
export interface WatchOptions extends EventFilter {
  /** Replay from this time or history sequence, then go on live, without a gap or a duplicate. */
  since?: Since;
}

export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 3_000;
const MIN_HEARTBEAT_TIMEOUT_MS = 100;
const DEFAULT_CLAIM_WARNING_MS = 10_000;
/** What XState names the event an actor's parent gets when the actor fails: this, then the actor's id. */
const ACTOR_ERROR_PREFIX = 'xstate.error.actor.';
/** How long run records are kept after their last write, by default, in ms: 30 days. */
const DEFAULT_KEEP_MS = 30 * 24 * 60 * 60 * 1000;
/** How long a closing orchestrator waits for run records still being written, in ms. */
const RECORD_FLUSH_GRACE_MS = 5_000;

const flowCancelSchema = z.object({
  v: z.literal(1),
  type: z.literal('flow.cancel'),
  flowRunId: z.string().min(1).max(200),
  reason: z.string().max(1_000).default('cancelled'),
});

function flowCancelMessage(flowRunId: string, reason: string): BusMessage {
  return { v: 1, type: 'flow.cancel', flowRunId, reason };
}

/** Marks a connection the orchestrator opened itself and must close. */
const OWNED_CONNECTION = Symbol('tenaz.ownedConnection');

export interface DrainOptions {
  /** How long in-flight runs may take before they are stopped, in ms. @default 30000 */
  graceMs?: number;
}

export type { EventStream } from './watch.js';

/** Something `start()` accepts: a flow made by `flow()`. */
export interface StartableFlow<A extends unknown[], R> {
  (...args: A): Promise<R>;
}

/** Internal entry points used by `flow()` and `task()` callables. */
export const INTERNAL = Symbol.for('tenaz.orchestrator.internal');

export interface OrchestratorInternals {
  /** Settles once the event history stream exists, or could not be made. Never rejects. */
  historyReady(): Promise<void>;
  /** Once `historyReady` settled: why the server refused this user the history, if it did (a role that may not run flows). */
  historyRefusal(): PermissionDeniedError | undefined;
  submitTask(definition: TaskDefinition, args: unknown[], flowRun: FlowRunRuntime | undefined): TaskRunRuntime;
  startFlow(definition: FlowDefinition, args: unknown[], parent: FlowRunRuntime | undefined): FlowRunRuntime;
}

export class Orchestrator implements AsyncDisposable {
  /** This process's identity as the owner of runs: in dispatches, leases and records. */
  readonly ownerId = randomUUID();
  readonly #engine: Engine;
  #directory: OwnerDirectory | undefined;
  #flowServer: FlowServer | undefined;
  #runs: RunAdmin | undefined;
  readonly #leaseMs: number;
  /** Copies of each stream and KV bucket this process creates. */
  readonly #replicas: number;
  readonly #actorParent: AnyActorRef;
  readonly #ownsLogger: boolean;
  readonly #nats: NatsConnection | undefined;
  readonly #workers = new Set<TaskWorker>();
  #history = false;
  #historyOption: HistoryOptions | false | undefined;
  #historyStarted = false;
  #control: Subscription | undefined;
  #controlDrops: DropCounter | undefined;
  /** Settles once the history stream exists (or could not be made). */
  #historyReady: Promise<void> = Promise.resolve();
  #historyRefusal: PermissionDeniedError | undefined;
  /** Stores the events published here in the history, once it exists (see `HistoryWriter`). */
  #historyWriter: HistoryWriter | undefined;
  #state: 'open' | 'draining' | 'closed' = 'open';
  readonly #closedPromise: Promise<void>;
  #resolveClosed!: () => void;

  constructor(options: OrchestratorOptions & { [OWNED_CONNECTION]?: boolean } = {}) {
    assertOrchestratorOptions(options);
    const namespace = options.namespace ?? process.env.TENAZ_NAMESPACE ?? DEFAULT_NAMESPACE;
    this.#ownsLogger = options.logger === undefined;
    const logger = options.logger ?? createRootLogger();
    assertLogger(logger);
    const taskRuns = new Map<string, TaskRunRuntime>();
    const flowRuns = new Map<string, FlowRunRuntime>();
    const engineLogger = logger.child({ component: 'tenaz.engine' });
    const nats = options.nats;
    this.#nats = nats;
    if (options.bus !== undefined && nats !== undefined) throw new InvalidArgumentError('give either bus or nats, not both');
    const execution = options.execution ?? (nats ? 'workers' : 'local');
    if (execution !== 'local' && execution !== 'workers') {
      throw new InvalidArgumentError(`execution must be 'local' or 'workers', got ${JSON.stringify(execution)}`);
    }
    if (execution === 'workers' && !nats) throw new NatsRequiredError("execution 'workers' needs a NATS connection (option nats)");
    const busLogger = logger.child({ component: 'tenaz.bus' });
    const bus =
      options.bus ??
      (nats ? createNatsBus({ connection: nats, owned: options[OWNED_CONNECTION] === true, logger: busLogger }) : createMemoryBus({ logger: busLogger }));
    const subjects = createSubjects(namespace);
    const replicas = options.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new InvalidArgumentError(`replicas must be an integer from 1 to 5, got ${replicas}`);
    this.#replicas = replicas;
    let remote: RemoteExecution | undefined;
    if (execution === 'workers' && nats) {
      const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
      if (!Number.isFinite(heartbeatTimeoutMs) || heartbeatTimeoutMs < MIN_HEARTBEAT_TIMEOUT_MS) {
        throw new InvalidArgumentError(`heartbeatTimeoutMs must be at least ${MIN_HEARTBEAT_TIMEOUT_MS}, got ${heartbeatTimeoutMs}`);
      }
      assertTimerMs('heartbeatTimeoutMs', heartbeatTimeoutMs);
      const claimWarningMs = options.claimWarningMs ?? DEFAULT_CLAIM_WARNING_MS;
      if (!Number.isFinite(claimWarningMs) || claimWarningMs <= 0) {
        throw new InvalidArgumentError(`claimWarningMs must be a positive number of ms, got ${claimWarningMs}`);
      }
      assertTimerMs('claimWarningMs', claimWarningMs);
      // Three heartbeats per timeout: one lost or late heartbeat is not a crash.
      const heartbeatMs = Math.max(30, Math.floor(heartbeatTimeoutMs / 3));
      remote = {
        dispatcher: new TaskDispatcher({
          connection: nats,
          bus,
          subjects,
          logger: logger.child({ component: 'tenaz.dispatch' }),
          runs: taskRuns,
          ownerId: this.ownerId,
          heartbeatMs,
          heartbeatTimeoutMs,
          claimWarningMs,
          replicas,
        }),
        heartbeatTimeoutMs,
        heartbeatMs,
        claimWarningMs,
      };
    }
    const durableOption = options.durable ?? (nats !== undefined && execution === 'workers');
    const durableOptions = typeof durableOption === 'object' ? durableOption : {};
    const keepMs = durableOptions.keepMs ?? DEFAULT_KEEP_MS;
    if (!Number.isFinite(keepMs) || keepMs < 0) throw new InvalidArgumentError(`durable.keepMs must be a number of ms (0: for ever), got ${durableOptions.keepMs}`);
    const store =
      options.store ??
      // Over NATS the cache and the run records live in JetStream KV, so every process sees them.
      (nats ? createKvStore({ connection: nats, namespace, logger, now: options.now, bucketMaxAgeMs: keepMs, replicas }) : createMemoryStore({ now: options.now }));
    this.#leaseMs = durableOptions.leaseMs ?? DEFAULT_LEASE_MS;
    if (!Number.isFinite(this.#leaseMs) || this.#leaseMs < MIN_LEASE_MS) {
      throw new InvalidArgumentError(`durable.leaseMs must be at least ${MIN_LEASE_MS}, got ${durableOptions.leaseMs}`);
    }
    assertTimerMs('durable.leaseMs', this.#leaseMs);
    const durable =
      durableOption === false
        ? undefined
        : new RunRecorder({ ...durableOptions, store, ownerId: this.ownerId, logger: logger.child({ component: 'tenaz.records' }), now: options.now ?? Date.now });
    // The parent of the task-run actors of the shared system: an error of one (an action that
    // threw) ends its run, whose id is the actor's; their ends need nothing.
    this.#actorParent = createActor(
      fromCallback<AnyEventObject>(({ receive }) =>
        receive((event) => {
          if (event.type.startsWith(ACTOR_ERROR_PREFIX)) taskRuns.get(event.type.slice(ACTOR_ERROR_PREFIX.length))?.failedInside((event as { error?: unknown }).error);
        }),
      ),
    ).start();
    this.#engine = {
      actorParent: this.#actorParent,
      durable,
      remote,
      orchestrator: this,
      namespace,
      logger,
      engineLogger,
      bus,
      store,
      subjects,
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      machines: provideMachines({ taskRuns, flowRuns }),
      taskRuns,
      flowRuns,
      publishEvent: (subject, event) => {
        // Observers are told, but a bus that fails must not stop the runs themselves.
        try {
          if (bus.isClosed) return;
          // Once this process has the history, each event is sent until the history stores it.
          if (this.#historyWriter !== undefined) this.#historyWriter.publish(subject, event);
          else bus.publish(subject, event);
        } catch (err) {
          engineLogger.warn({ err, subject }, 'could not publish a run event');
        }
      },
      endLostTaskRuns: (run) => this.#endLostTaskRuns(run),
    };
    this.#closedPromise = new Promise((resolve) => (this.#resolveClosed = resolve));
    watchForStuckRuns(this);
    this.#history = nats !== undefined && options.history !== false;
    // Only processes that own runs make the history stream (those that dispatch tasks to
    // workers, and those that serve flows): workers and observers may not have the right to
    // (see deploy/nats/auth.conf).
    this.#historyOption = options.history;
    if (remote !== undefined) this.#keepHistory();
  }

  /**
   * Makes the event history stream, once, in the background (connectOrchestrator waits for
   * it): events published before the stream exists are simply not in the history.
   */
  #keepHistory(): void {
    const nats = this.#nats;
    if (nats === undefined || this.#historyOption === false || this.#historyStarted) return;
    this.#historyStarted = true;
    const { subjects, engineLogger } = this.#engine;
    const history = this.#historyOption;
    this.#historyReady = jetstreamManager(nats)
      .then((jsm) => ensureEventsStream(jsm, subjects, history, this.#replicas))
      .then((historyReplicas) => {
        // Only a replicated history elects leaders, and drops what is published meanwhile. On one
        // server a plain publish is stored whenever the server is up (the client keeps what it
        // publishes while it reconnects), and the writer's acknowledgements would cost W1 over
        // NATS about a quarter of its throughput for nothing.
        if (this.#state !== 'closed' && historyReplicas > 1) this.#historyWriter = new HistoryWriter(nats, engineLogger);
      })
      .catch((err: unknown) => {
        this.#historyRefusal = toPermissionDenied(err);
        engineLogger.warn(failureFields(err), 'could not create the event history stream; events are not kept');
      });
  }

  /** Flow runs owned here can be cancelled from any process (`tenaz runs cancel`): listen once there is one. */
  #listenForControl(): void {
    if (this.#control !== undefined || this.#nats === undefined) return;
    const { bus, subjects, engineLogger } = this.#engine;
    this.#controlDrops = new DropCounter(engineLogger, 'dropped a control message that is not a flow run cancel');
    this.#control = bus.subscribe(subjects.allControl, { callback: (delivery) => this.#onControl(delivery) });
  }

  /**
   * With NATS, a durable orchestrator keeps a lease on the flow runs it owns and
   * watches everyone else's, from its first flow run or served flow on.
   */
  #durableServices(): FlowServer | undefined {
    const nats = this.#nats;
    const recorder = this.#engine.durable;
    if (nats === undefined || recorder === undefined) return undefined;
    if (this.#flowServer) return this.#flowServer;
    const { subjects, namespace, store } = this.#engine;
    const logger = this.#engine.logger.child({ component: 'tenaz.durable' });
    let server: FlowServer | undefined;
    const directory = new OwnerDirectory({
      connection: nats,
      namespace,
      ownerId: this.ownerId,
      leaseMs: this.#leaseMs,
      replicas: this.#replicas,
      servedFlows: () => server?.flowNames ?? [],
      onLapsed: (ownerId) => void server?.onLapsed(ownerId),
      logger,
      now: this.#engine.now,
    });
    server = new FlowServer({
      connection: nats,
      subjects,
      replicas: this.#replicas,
      store,
      recorder,
      directory,
      logger,
      now: this.#engine.now,
      isRunning: (flowRunId) => this.#engine.flowRuns.has(flowRunId),
      resume: (definition, record, revision) => this.#resume(definition, record, revision),
      publishEvent: (subject, event) => this.#engine.publishEvent(subject, event),
      endLostTaskRuns: (run, cause) => this.#endLostTaskRunsOf(run, cause),
    });
    this.#directory = directory;
    this.#flowServer = server;
    directory.start().then(
      () => server.start(),
      (err: unknown) => logger.warn({ err }, 'could not start the lease of this process; its flow runs cannot be resumed elsewhere if it dies'),
    );
    return server;
  }

  /** Starts a flow run taken over from its record. */
  #resume(definition: FlowDefinition, record: FlowRunRecord, revision: number): void {
    if (this.#state !== 'open') return;
    this.#listenForControl();
    const run = new FlowRunRuntime(this.#engine, definition, record.parameters, undefined, { record, revision });
    run.start();
    // A run that ran before (taken over, or retried) may have left task runs in flight.
    if (record.state.name !== 'Scheduled' || record.attempt > 1) this.#endLostTaskRuns(run);
  }

  /** Ends `Crashed`, in the history, the task runs a dead process left in flight in a resumed flow run or subflow. */
  #endLostTaskRuns(run: ResumedFlowRun): void {
    const host = this.#lostTaskRunsHost();
    if (host === undefined) return;
    const { engineLogger } = this.#engine;
    endLostTaskRuns(host, run).then(
      (ended) => {
        if (ended > 0) engineLogger.info({ flowRunId: run.id }, `Ended ${ended} task run(s) of flow run '${run.name}' that its previous process left running: Crashed`);
      },
      (err: unknown) => engineLogger.warn({ ...failureFields(err), flowRunId: run.id }, 'could not end the task runs the previous process of a resumed flow run left running'),
    );
  }

  /** Ends the task runs a dead owner's flow run left in flight, the run itself being ended for good. */
  async #endLostTaskRunsOf(run: { id: string; name: string; flowName: string }, cause: string): Promise<number> {
    const host = this.#lostTaskRunsHost();
    // Nothing this process started: every task run of a dead owner's run is lost.
    return host === undefined ? 0 : endLostTaskRuns(host, { ...run, startedHere: () => false }, cause);
  }

  /** What ending lost task runs needs: the history, over NATS; none without it. */
  #lostTaskRunsHost(): LostTaskRunsHost | undefined {
    const nats = this.#nats;
    if (nats === undefined || !this.#history) return undefined;
    const engine = this.#engine;
    return { connection: nats, subjects: engine.subjects, now: () => engine.now(), publishEvent: (subject: string, event: RunEvent) => engine.publishEvent(subject, event) };
  }

  /**
   * Serves flows: runs started by name in other processes (`tenaz start`,
   * `runs.start()`), retried runs, and runs whose process died, are taken and
   * run here. Needs NATS and durable runs.
   * @example await orchestrator.serveFlows({ flows: [etl] });
   */
  async serveFlows(options: ServeFlowsOptions = {}): Promise<void> {
    this.#check();
    if (!this.#nats) throw new NatsRequiredError('serving flows needs an orchestrator connected to NATS');
    const server = this.#durableServices();
    if (!server) throw new InvalidArgumentError('serving flows needs durable runs (option durable)');
    // The runs it takes are owned here: their events belong in the history, as any owner's.
    this.#keepHistory();
    await this.#historyReady;
    await server.serve(resolveFlows(options.flows));
  }

  /**
   * Recorded runs: list, show, start by name, retry, wait. Needs durable runs.
   * @example const run = await orchestrator.runs.start('etl', [{ day: '2024-01-01' }]); const record = await run.wait();
   */
  get runs(): RunAdmin {
    if (this.#runs) return this.#runs;
    const { store, subjects, engineLogger, now } = this.#engine;
    if (this.#engine.durable === undefined) throw new InvalidArgumentError('runs are recorded only when they are durable (option durable)');
    const nats = this.#nats;
    this.#runs = new RunAdmin({
      store,
      subjects,
      logger: engineLogger,
      now,
      publishEvent: (subject, event) => this.#engine.publishEvent(subject, event),
      enqueue: async (take, dedupeId) => {
        if (!nats) throw new NatsRequiredError('a flow run started by name runs in a process serving its flow, over NATS');
        await jetstreamManager(nats).then((jsm) => enqueueFlowRun(nats, jsm, subjects, take, dedupeId, this.#replicas));
      },
      isServed: async (flowName) => {
        if (this.#directory) return this.#directory.servers(flowName).length > 0;
        if (!nats) return undefined;
        try {
          return (await readLeases(nats, this.namespace)).some((lease) => lease.live && lease.flows.includes(flowName));
        } catch {
          return undefined;
        }
      },
      leases: async () => (nats ? readLeases(nats, this.namespace) : undefined),
      watchFlowRun: (flowRunId) => this.watch({ flowRunId, kind: 'flow' }),
      endLostTaskRuns: (run, cause) => this.#endLostTaskRunsOf(run, cause),
      requestCancel: (flowRunId, reason) => this.cancelRun(flowRunId, reason),
    });
    return this.#runs;
  }

  /** The process's root logger, as given or created. */
  get logger(): Logger {
    return this.#engine.logger;
  }

  get namespace(): string {
    return this.#engine.namespace;
  }

  /** Flow runs and task runs in progress. */
  get activeRuns(): number {
    return this.#engine.flowRuns.size + this.#engine.taskRuns.size;
  }

  /**
   * Starts a flow run and returns its handle at once.
   * @example const run = orchestrator.start(getRepoInfo, 'PrefectHQ/prefect'); const info = await run.result();
   */
  start<A extends unknown[], R>(flowFn: StartableFlow<A, R>, ...args: A): FlowRun<Awaited<R>> {
    const definition = definitionOf(flowFn);
    if (definition?.kind !== 'flow') throw new InvalidArgumentError('start() takes a flow made by flow()');
    return new FlowRun(this[INTERNAL].startFlow(definition, args, undefined));
  }

  /** The NATS connection, when the orchestrator coordinates over NATS. */
  get nats(): NatsConnection | undefined {
    return this.#nats;
  }

  /**
   * Serves task runs dispatched over NATS: runs of the given tasks, in `pool`,
   * at most `concurrency` at a time. Close it with `drain()` or `close()`, or let
   * the orchestrator close it.
   * @example const worker = orchestrator.worker({ tasks: [callApi], concurrency: 8 });
   */
  worker(options: WorkerOptions): TaskWorker {
    this.#check();
    if (!this.#nats) throw new NatsRequiredError('a worker needs an orchestrator connected to NATS');
    const worker = new TaskWorker({
      ...options,
      orchestrator: this,
      connection: this.#nats,
      bus: this.#engine.bus,
      subjects: this.#engine.subjects,
      logger: this.#engine.logger,
      replicas: this.#replicas,
    });
    this.#workers.add(worker);
    void worker.closed().then(() => this.#workers.delete(worker));
    return worker;
  }

  /**
   * Every run event matching the filter, in each run's order: from now on, or, with
   * `since`, from that point of the history (NATS only) and then on, live.
   * @example for await (const event of orchestrator.watch({ flowName: 'etl', since: new Date(Date.now() - 60_000) })) ...
   */
  watch(options: WatchOptions = {}): EventStream {
    this.#check();
    // A misspelt key (`flowname`) would otherwise widen the watch to every event.
    assertKnownKeys('unknown watch() option', options, WATCH_KEYS);
    const { since, ...filter } = options;
    if (since !== undefined) return this.#replay(filter, parseSince(since));
    // Over NATS, live events come through the history too (see followHistory).
    const { bus, subjects, engineLogger } = this.#engine;
    if (this.#history && this.#nats) return followHistory(this.#nats, bus, subjects, filter, this.#engine.now(), engineLogger);
    return subscribeEvents(bus, subjects, filter, engineLogger, { resent: this.#nats !== undefined });
  }

  /**
   * Cancels a flow run by id, wherever it runs: here, or (over NATS) in the process
   * that owns it. Resolves once the request is sent; the run then goes `Cancelling`
   * and `Cancelled` (watch it to know when). Unknown ids are ignored by every owner.
   */
  async cancelRun(flowRunId: string, reason = 'cancelled'): Promise<void> {
    this.#check();
    if (typeof flowRunId !== 'string' || flowRunId === '') throw new InvalidArgumentError('cancelRun() needs a flow run id');
    const local = this.#engine.flowRuns.get(flowRunId);
    if (local) return local.cancel(reason);
    if (!this.#nats) return;
    this.#engine.bus.publish(this.#engine.subjects.control(flowRunId), flowCancelMessage(flowRunId, reason));
    await this.#engine.bus.flush();
  }

  #onControl(delivery: Delivery): void {
    const parsed = flowCancelSchema.safeParse(delivery.message);
    if (!parsed.success) {
      this.#controlDrops?.drop({ subject: delivery.subject, type: delivery.message.type });
      return;
    }
    const run = this.#engine.flowRuns.get(parsed.data.flowRunId);
    if (!run) return;
    this.#engine.engineLogger.info({ flowRunId: run.id, reason: parsed.data.reason }, `Cancelling flow run '${run.name}' at another process's request`);
    run.cancel(parsed.data.reason);
  }

  #replay(filter: EventFilter, since: Since): EventStream {
    if (!this.#nats) throw new NatsRequiredError('watch({ since }) replays the event history kept in NATS JetStream; this orchestrator has no NATS connection');
    if (!this.#history) throw new InvalidArgumentError('watch({ since }) needs the event history, which this orchestrator was created without (history: false)');
    return replayHistory(this.#nats, this.#engine.subjects, filter, since, this.#engine.engineLogger);
  }

  readonly [INTERNAL]: OrchestratorInternals = {
    historyReady: () => this.#historyReady,
    historyRefusal: () => this.#historyRefusal,
    submitTask: (definition, args, flowRun) => {
      // A draining orchestrator still serves the runs in flight.
      this.#check(flowRun !== undefined);
      assertCallerRunning('task', definition.options.name, flowRun);
      const run = new TaskRunRuntime(this.#engine, definition, args, flowRun);
      flowRun?.addChild(run);
      run.start();
      return run;
    },
    startFlow: (definition, args, parent) => {
      this.#check(parent !== undefined);
      assertCallerRunning('flow', definition.options.name, parent);
      this.#listenForControl();
      if (parent === undefined) this.#durableServices();
      const run = new FlowRunRuntime(this.#engine, definition, args, parent);
      run.start();
      return run;
    },
  };

  /** Stops taking runs, lets the runs in flight finish within `graceMs`, then closes. */
  async drain(options: DrainOptions = {}): Promise<void> {
    if (this.#state !== 'open') return this.#closedPromise;
    const graceMs = options.graceMs ?? 30_000;
    assertTimerMs('drain() graceMs', graceMs);
    this.#state = 'draining';
    const workers = [...this.#workers].map((worker) => worker.drain({ graceMs }));
    const inFlight = [...this.#engine.flowRuns.values(), ...this.#engine.taskRuns.values()].map((run) => run.settled);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(inFlight),
      new Promise((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    await Promise.all(workers);
    await this.#shutdown();
  }

  /** Closes now: runs in flight end `Crashed` (flows) or `Cancelled` (tasks outside flows). Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return this.#closedPromise;
    await this.#shutdown();
  }

  /** Resolves once closed. Never rejects. */
  closed(): Promise<void> {
    return this.#closedPromise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #shutdown(): Promise<void> {
    if (this.#state === 'closed') return this.#closedPromise;
    this.#state = 'closed';
    unwatchForStuckRuns(this);
    const { flowRuns, taskRuns } = this.#engine;
    // Workers hand their runs back first: their owners restart them elsewhere.
    await Promise.all([...this.#workers].map((worker) => worker.close()));
    await this.#flowServer?.close();
    const settling: Promise<unknown>[] = [];
    // Subflows too, each now: cancelled by its parent, a subflow would wait for its body, and
    // end after the bus has closed.
    const handedOver = new Map<string, boolean>();
    // Task runs first, then subflows before the runs that called them: each run publishes its end
    // after its children's, as when it ends by itself.
    for (const run of [...taskRuns.values()]) {
      run.cancel('the orchestrator was closed');
      settling.push(run.settled);
    }
    for (const run of [...flowRuns.values()].sort((a, b) => b.depth - a.depth)) {
      // A durable run that another live process serves is left to it, subflows and all: it
      // resumes the run once this process's lease is gone. Any other run ends here, Crashed.
      const root = run.rootRun;
      let toPeer = handedOver.get(root.id);
      if (toPeer === undefined) {
        toPeer = this.#directory?.servers(root.flowName).some((owner) => owner !== this.ownerId) === true;
        handedOver.set(root.id, toPeer);
      }
      if (toPeer) run.fence('this process closed; a process that serves the flow resumes it', { handedOver: true });
      else run.crash('the orchestrator was closed');
      settling.push(run.settled);
    }
    // Records still being written get a while (the server may be restarting), not forever.
    const flushDeadline = setTimeout(() => this.#engine.durable?.close(), RECORD_FLUSH_GRACE_MS);
    await Promise.all(settling);
    await this.#engine.durable?.flushed();
    clearTimeout(flushDeadline);
    await this.#directory?.close();
    this.#engine.durable?.close();
    this.#engine.remote?.dispatcher.close();
    this.#control?.unsubscribe();
    this.#historyWriter?.close();
    await this.#engine.bus.drain();
    await this.#engine.store.close();
    this.#actorParent.stop();
    if (this.#ownsLogger) this.#engine.logger.flush?.();
    this.#resolveClosed();
  }

  /**
   * Called when the process has nothing left to do (`beforeExit`) while runs are in flight:
   * no timer, socket or other work is pending that could ever settle their bodies, so they
   * end now, with a cause, rather than vanish with a process that exits under them.
   */
  [END_STUCK_RUNS](): void {
    const { flowRuns, taskRuns, engineLogger } = this.#engine;
    for (const run of [...flowRuns.values()]) {
      if (run.parent) continue;
      engineLogger.error({ flowRunId: run.id }, `Flow run '${run.name}' can never finish: ${STUCK_CAUSE}; it is marked Crashed`);
      run.crash(`the process had nothing left to do: ${STUCK_CAUSE}`);
    }
    for (const run of [...taskRuns.values()]) {
      if (run.flowRun) continue;
      engineLogger.error({ taskRunId: run.id }, `Task run '${run.name}' can never finish: ${STUCK_CAUSE}; it is cancelled`);
      run.cancel('the process had nothing left to do');
    }
  }

  #check(inFlight = false): void {
    if (this.#state === 'closed') throw new ClosedError('the orchestrator is closed');
    if (this.#state === 'draining' && !inFlight) throw new DrainingError('the orchestrator is draining and takes no new runs');
  }
}

/**
 * Creates an orchestrator for embedding: in-memory bus and store, no server.
 * @example await using orchestrator = createOrchestrator({ logger });
 */
export function createOrchestrator(options: OrchestratorOptions = {}): Orchestrator {
  return new Orchestrator(options);
}

export interface ConnectOptions extends Omit<OrchestratorOptions, 'nats'> {
  /** The NATS server(s): a URL, connection options, or an open connection. @default env TENAZ_NATS_URL */
  nats?: NatsOption;
}

/** What tenaz calls on a logger; `{ level: 'silent' }`, options for one rather than one, has none of it. */
const LOGGER_METHODS = ['child', 'trace', 'debug', 'info', 'warn', 'error', 'fatal', 'isLevelEnabled'] as const;

function assertLogger(logger: unknown): asserts logger is Logger {
  const missing = LOGGER_METHODS.filter((method) => typeof (logger as Record<string, unknown> | null)?.[method] !== 'function');
  if (missing.length === 0) return;
  throw new InvalidArgumentError(
    `logger must be a pino Logger, such as createRootLogger({ level: 'silent' }); this one has no ${missing.map((m) => `${m}()`).join(', ')}`,
  );
}

/**
 * Connects to NATS and creates an orchestrator over it. Without a NATS option
 * (and without TENAZ_NATS_URL) the orchestrator is the embedded one.
 * A connection opened here is drained when the orchestrator closes.
 * @example await using orchestrator = await connectOrchestrator({ nats: 'nats://127.0.0.1:4222' });
 */
export async function connectOrchestrator(options: ConnectOptions = {}): Promise<Orchestrator> {
  const option = resolveNatsOption(options.nats);
  if (option === undefined) return new Orchestrator({ ...options, nats: undefined });
  const logger = options.logger ?? createRootLogger();
  assertLogger(logger);
  const { connection, owned } = await connectNats(option, logger.child({ component: 'tenaz.nats' }));
  try {
    await assertJetStream(connection);
    const orchestrator = new Orchestrator({ ...options, logger, nats: connection, [OWNED_CONNECTION]: owned });
    await orchestrator[INTERNAL].historyReady();
    return orchestrator;
  } catch (error) {
    // Bad options: the connection opened for them must not be left open.
    if (owned) await connection.close().catch(() => {});
    throw error;
  }
}

/** The flow definitions to serve: the ones given, or every flow defined in this process. */
function resolveFlows(flows: readonly unknown[] | undefined): FlowDefinition[] {
  if (flows !== undefined) {
    return flows.map((value) => {
      const definition = definitionOf(value);
      if (definition?.kind !== 'flow') throw new InvalidArgumentError('serveFlows() takes flows made by flow()');
      return definition;
    });
  }
  const resolved: FlowDefinition[] = [];
  for (const [name, definitions] of registeredFlows()) {
    const first = definitions[0]!;
    if (definitions.some((definition) => definition.fn !== first.fn)) {
      throw new InvalidArgumentError(`flow name '${name}' is defined more than once with different functions: give each flow its own name`);
    }
    resolved.push(first);
  }
  return resolved;
}
