/**
 * The orchestrator: one per process (or the ambient default). It starts flow
 * runs and task runs as supervised actors, publishes every transition on its
 * bus, and closes cleanly.
 */
import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import { createMemoryBus } from '../bus/memory.js';
import { ClosedError, DrainingError, InvalidArgumentError } from '../errors.js';
import type { EventFilter, RunEvent } from '../events.js';
import { createRootLogger } from '../log.js';
import { createMemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { DEFAULT_NAMESPACE, createSubjects } from '../subjects.js';
import { definitionOf, type FlowDefinition, type TaskDefinition } from './definitions.js';
import type { Engine } from './engine.js';
import { FlowRunRuntime } from './flow-run.js';
import { FlowRun, TaskFuture } from './handles.js';
import { provideMachines } from './machines.js';
import { TaskRunRuntime } from './task-run.js';

export interface OrchestratorOptions {
  /** Prefix of every subject, to keep several deployments apart. @default env TENAZ_NAMESPACE or 'tenaz' */
  namespace?: string;
  /** The process's root logger. @default a logger from `createRootLogger()` */
  logger?: Logger;
  /** Where cached results (and, later, run records) live. @default an in-memory store */
  store?: Store;
  /** The bus events are published on. @default an in-memory bus */
  bus?: Bus;
  /** Clock, ms since the epoch. @default Date.now */
  now?: () => number;
  /** Random source for jitter, in [0, 1). @default Math.random */
  random?: () => number;
}

export interface DrainOptions {
  /** How long in-flight runs may take before they are stopped, in ms. @default 30000 */
  graceMs?: number;
}

/** An async iterable of run events; `close()` ends it. */
export interface EventStream extends AsyncIterable<RunEvent> {
  close(): void;
}

/** Something `start()` accepts: a flow made by `flow()`. */
export interface StartableFlow<A extends unknown[], R> {
  (...args: A): Promise<R>;
}

/** Internal entry points used by `flow()` and `task()` callables. */
export const INTERNAL = Symbol.for('tenaz.orchestrator.internal');

export interface OrchestratorInternals {
  submitTask(definition: TaskDefinition, args: unknown[], flowRun: FlowRunRuntime | undefined): TaskRunRuntime;
  startFlow(definition: FlowDefinition, args: unknown[], parent: FlowRunRuntime | undefined): FlowRunRuntime;
}

export class Orchestrator implements AsyncDisposable {
  readonly #engine: Engine;
  readonly #ownsLogger: boolean;
  #state: 'open' | 'draining' | 'closed' = 'open';
  readonly #closedPromise: Promise<void>;
  #resolveClosed!: () => void;

  constructor(options: OrchestratorOptions = {}) {
    const namespace = options.namespace ?? process.env.TENAZ_NAMESPACE ?? DEFAULT_NAMESPACE;
    this.#ownsLogger = options.logger === undefined;
    const logger = options.logger ?? createRootLogger();
    const taskRuns = new Map<string, TaskRunRuntime>();
    const flowRuns = new Map<string, FlowRunRuntime>();
    const engineLogger = logger.child({ component: 'tenaz.engine' });
    const bus = options.bus ?? createMemoryBus({ logger: logger.child({ component: 'tenaz.bus' }) });
    this.#engine = {
      orchestrator: this,
      namespace,
      logger,
      engineLogger,
      bus,
      store: options.store ?? createMemoryStore({ now: options.now }),
      subjects: createSubjects(namespace),
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      machines: provideMachines({ taskRuns, flowRuns }),
      taskRuns,
      flowRuns,
      publishEvent: (subject, event) => {
        // Observers are told, but a bus that fails must not stop the runs themselves.
        try {
          if (!bus.isClosed) bus.publish(subject, event);
        } catch (err) {
          engineLogger.warn({ err, subject }, 'could not publish a run event');
        }
      },
    };
    this.#closedPromise = new Promise((resolve) => (this.#resolveClosed = resolve));
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

  /** Every run event matching the filter, from now on, in each run's order. */
  watch(filter: EventFilter = {}): EventStream {
    this.#check();
    const subscription = this.#engine.bus.subscribe(this.#engine.subjects.eventFilter(filter));
    return {
      async *[Symbol.asyncIterator]() {
        for await (const delivery of subscription) {
          const message = delivery.message;
          if (message.type === 'flow.state' || message.type === 'task.state') yield message as unknown as RunEvent;
        }
      },
      close: () => subscription.unsubscribe(),
    };
  }

  readonly [INTERNAL]: OrchestratorInternals = {
    submitTask: (definition, args, flowRun) => {
      // A draining orchestrator still serves the runs in flight.
      this.#check(flowRun !== undefined);
      const run = new TaskRunRuntime(this.#engine, definition, args, flowRun);
      flowRun?.addChild(run);
      run.start();
      return run;
    },
    startFlow: (definition, args, parent) => {
      this.#check(parent !== undefined);
      const run = new FlowRunRuntime(this.#engine, definition, args, parent);
      run.start();
      return run;
    },
  };

  /** Stops taking runs, lets the runs in flight finish within `graceMs`, then closes. */
  async drain(options: DrainOptions = {}): Promise<void> {
    if (this.#state !== 'open') return this.#closedPromise;
    this.#state = 'draining';
    const graceMs = options.graceMs ?? 30_000;
    const inFlight = [...this.#engine.flowRuns.values(), ...this.#engine.taskRuns.values()].map((run) => run.settled);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(inFlight),
      new Promise((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
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
    const { flowRuns, taskRuns } = this.#engine;
    const settling: Promise<unknown>[] = [];
    for (const run of [...flowRuns.values()]) {
      if (run.parent) continue;
      run.crash('the orchestrator was closed');
      settling.push(run.settled);
    }
    for (const run of [...taskRuns.values()]) {
      run.cancel('the orchestrator was closed');
      settling.push(run.settled);
    }
    await Promise.all(settling);
    await this.#engine.bus.drain();
    await this.#engine.store.close();
    if (this.#ownsLogger) this.#engine.logger.flush?.();
    this.#resolveClosed();
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
