/**
 * The durable side of a process that serves flows: it takes flow runs from the
 * flow queue (started by name elsewhere, retried, or left by a process that
 * died) and resumes them here; and, for every lease that lapses, it queues the
 * dead owner's runs for a process that serves their flow, or marks them
 * `Crashed` when no live process does.
 */
import { jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { isTerminal } from '../../actors/state.js';
import { parseMessage } from '../codec.js';
import { DropCounter } from '../drop-counter.js';
import type { FlowStateEvent } from '../events.js';
import type { Store } from '../store/store.js';
import type { Subjects } from '../subjects.js';
import type { FlowDefinition } from '../runtime/definitions.js';
import { ensureFlowConsumer, ensureFlowsStream, enqueueFlowRun, flowTakeSchema, type FlowTake } from './flow-queue.js';
import type { OwnerDirectory } from './owners.js';
import { toFlowArgs } from '../runtime/flow-args.js';
import { ACTIVE_BUCKET, parseActiveEntry, readFlowRunRecord, type FlowRunRecord } from './records.js';
import { endRun, type EndRunHost } from './end-run.js';
import type { RunRecorder } from './run-recorder.js';
import { failureFields } from '../nats/passing-failure.js';

export interface FlowServerHost extends Pick<EndRunHost, 'endLostTaskRuns'> {
  connection: NatsConnection;
  subjects: Subjects;
  /** Copies of the flow queue stream, if this process creates it. */
  replicas: number;
  store: Store;
  recorder: RunRecorder;
  directory: OwnerDirectory;
  logger: Logger;
  now(): number;
  /** Whether the flow run runs in this process now. */
  isRunning(flowRunId: string): boolean;
  /** Starts a flow run taken over here, from its record. */
  resume(definition: FlowDefinition, record: FlowRunRecord, revision: number): void;
  publishEvent(subject: string, event: FlowStateEvent): void;
}

/** Tries at taking one run whose record others keep moving. */
const TAKE_ATTEMPTS = 3;
/** How often the active runs are swept for owners this process never saw, in leases. */
const SWEEP_EVERY_LEASES = 10;

export class FlowServer {
  readonly #host: FlowServerHost;
  readonly #served = new Map<string, FlowDefinition>();
  readonly #consumers: ConsumerMessages[] = [];
  readonly #drops: DropCounter;
  readonly #garbled: DropCounter;
  /** Owners whose runs this process handed on, and when: a sweep hands on what is still left later. */
  readonly #handled = new Map<string, number>();
  /** Owners of active runs that no lease named at the last sweep. */
  #unknownOwners = new Set<string>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(host: FlowServerHost) {
    this.#host = host;
    this.#drops = new DropCounter(host.logger, 'dropped a flow queue message that is not a take of a served flow', host.now);
    this.#garbled = new DropCounter(host.logger, 'skipped a garbled run record', host.now);
  }

  /** The names of the flows served here. */
  get flowNames(): string[] {
    return [...this.#served.keys()];
  }

  /** Starts sweeping for runs of owners that died while nobody watched. */
  start(): void {
    if (this.#sweepTimer !== undefined) return;
    const every = this.#host.directory.leaseMs * SWEEP_EVERY_LEASES;
    // The first sweep waits one lease, so that live owners have been seen.
    const first = setTimeout(() => void this.sweep(), this.#host.directory.leaseMs * 1.5);
    first.unref();
    this.#sweepTimer = setInterval(() => void this.sweep(), every);
    this.#sweepTimer.unref();
  }

  /** Serves these flows from now on: takes their queued runs. */
  async serve(definitions: readonly FlowDefinition[]): Promise<void> {
    const { connection, subjects, logger } = this.#host;
    const fresh = definitions.filter((definition) => !this.#served.has(definition.options.name));
    if (fresh.length === 0) return;
    const jsm = await jetstreamManager(connection);
    await ensureFlowsStream(jsm, subjects, this.#host.replicas);
    const js = jetstream(connection);
    for (const definition of fresh) {
      const name = definition.options.name;
      this.#served.set(name, definition);
      const consumer = await js.consumers.get(subjects.flowsStream, await ensureFlowConsumer(jsm, subjects, name));
      const messages = await consumer.consume({ max_messages: 16 });
      this.#consumers.push(messages);
      void this.#consume(messages, definition);
    }
    await this.#host.directory.renew();
    logger.info({ flows: this.flowNames }, `Serving flow(s) ${this.flowNames.map((n) => `'${n}'`).join(', ')}`);
  }

  /** Queues a run for a process that serves its flow; resolves with false when it was queued already. */
  async enqueue(take: Omit<FlowTake, 'v' | 'type'>, dedupeId: string): Promise<boolean> {
    const jsm = await jetstreamManager(this.#host.connection);
    return enqueueFlowRun(this.#host.connection, jsm, this.#host.subjects, take, dedupeId, this.#host.replicas);
  }

  /** An owner's lease lapsed: its unfinished runs go to a process that serves them, or end `Crashed`. */
  async onLapsed(ownerId: string): Promise<void> {
    const now = this.#host.now();
    if (this.#closed || now - (this.#handled.get(ownerId) ?? -Infinity) < this.#requeueMs) return;
    this.#handled.set(ownerId, now);
    const { directory, logger } = this.#host;
    try {
      const active = await this.#host.store.list(ACTIVE_BUCKET);
      let queued = 0;
      for (const entry of active) {
        const parsed = parseActiveEntry(entry.value);
        if (parsed === null) {
          this.#garbled.drop({ bucket: ACTIVE_BUCKET, key: entry.key });
          continue;
        }
        if (parsed.owner !== ownerId) continue;
        queued += (await this.#rescue(entry.key, parsed.flowName, ownerId)) ? 1 : 0;
      }
      if (queued > 0) logger.info({ ownerId }, `Queued ${queued} flow run(s) of a process whose lease lapsed, to be resumed by a process serving their flow`);
      directory.forget(ownerId);
    } catch (err) {
      // Another lapse or the next sweep tries again.
      this.#handled.delete(ownerId);
      logger.warn({ ...failureFields(err), ownerId }, 'could not hand on the flow runs of a process whose lease lapsed');
    }
  }

  /**
   * A run handed on that is still active this long after (its take was lost) is handed on
   * again: the queue's id for it changes with each period, so the repeat is not dropped.
   */
  get #requeueMs(): number {
    return this.#host.directory.leaseMs * SWEEP_EVERY_LEASES;
  }

  /** Runs owned by processes no live lease names (they died before anyone here watched, or their take was lost): handled as lapsed. */
  async sweep(): Promise<void> {
    if (this.#closed) return;
    const { directory, logger } = this.#host;
    try {
      const owners = new Set<string>();
      const unknown = new Set<string>();
      for (const entry of await this.#host.store.list(ACTIVE_BUCKET)) {
        const owner = parseActiveEntry(entry.value)?.owner;
        if (!owner || owner === directory.ownerId || directory.isLive(owner)) continue;
        // An owner no lease names may be one that started a moment ago: it must stay unknown until the next sweep.
        if (directory.owners.has(owner) || this.#unknownOwners.has(owner)) owners.add(owner);
        else unknown.add(owner);
      }
      this.#unknownOwners = unknown;
      for (const owner of owners) await this.onLapsed(owner);
    } catch (err) {
      logger.debug({ err }, 'could not sweep the active flow runs');
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    await Promise.all(this.#consumers.map((messages) => messages.close().catch(() => {})));
  }

  /** Queues one run of a dead owner; marks it `Crashed` when no live process serves its flow. */
  async #rescue(flowRunId: string, flowName: string, deadOwner: string): Promise<boolean> {
    const { directory } = this.#host;
    if (directory.servers(flowName).length > 0) {
      const period = Math.floor(this.#host.now() / this.#requeueMs);
      return this.enqueue({ flowRunId, flowName, reason: 'resume', deadOwner }, `resume:${flowRunId}:${deadOwner}:${period}`);
    }
    const { store } = this.#host;
    const stored = await readFlowRunRecord(store, flowRunId, this.#garbled);
    if (typeof stored === 'string') {
      await store.delete(ACTIVE_BUCKET, flowRunId);
      return false;
    }
    const { record, revision } = stored;
    if (isTerminal(record.state.name) || record.owner !== deadOwner) return false;
    const message = `its process stopped, and no live process serves flow '${flowName}' to resume it`;
    await endRun(this.#host, record, revision, 'Crashed', { name: 'CrashedError', code: 'CRASHED', message });
    return false;
  }

  async #consume(messages: ConsumerMessages, definition: FlowDefinition): Promise<void> {
    try {
      for await (const message of messages) await this.#onTake(message, definition);
    } catch (err) {
      if (!this.#closed) this.#host.logger.error({ err, flowName: definition.options.name }, 'stopped taking runs of this flow');
    }
  }

  async #onTake(message: JsMsg, definition: FlowDefinition): Promise<void> {
    const decoded = parseMessage(message.data);
    const parsed = decoded === null ? null : flowTakeSchema.safeParse(decoded);
    if (!parsed?.success || parsed.data.flowName !== definition.options.name) {
      this.#drops.drop({ subject: message.subject });
      message.term();
      return;
    }
    try {
      await this.#take(parsed.data, definition);
      message.ack();
    } catch (err) {
      // The store is away: let the message come back.
      this.#host.logger.warn({ ...failureFields(err), flowRunId: parsed.data.flowRunId }, 'could not take a queued flow run; it will be delivered again');
      message.nak(1_000);
    }
  }

  /** Takes the run if nobody live holds it; compare-and-set on its record decides between racing processes. */
  async #take(take: FlowTake, definition: FlowDefinition): Promise<void> {
    const { store, recorder, directory, logger } = this.#host;
    for (let attempt = 0; attempt < TAKE_ATTEMPTS; attempt += 1) {
      const stored = await readFlowRunRecord(store, take.flowRunId, this.#garbled);
      if (stored === 'absent') return this.#drops.drop({ flowRunId: take.flowRunId, reason: 'no such flow run recorded' });
      if (stored === 'garbled') return;
      const { record, revision } = stored;
      if (isTerminal(record.state.name) || record.flowName !== definition.options.name) return;
      if (this.#host.isRunning(record.id)) return;
      // Held by a live owner: someone took it first. The owner a resume names is dead, whatever this process saw of it yet.
      const holder = record.owner;
      if (holder !== undefined && holder !== directory.ownerId && holder !== take.deadOwner && directory.isLive(holder)) return;
      const previousOwner = record.owner;
      let parameters = record.parameters;
      if (record.namedParameters !== undefined) {
        try {
          const texts = record.namedParameterTexts === undefined ? undefined : new Map(Object.entries(record.namedParameterTexts));
          parameters = toFlowArgs(definition, new Map(Object.entries(record.namedParameters)), texts);
        } catch (error) {
          const message = (error as Error).message;
          if (await endRun(this.#host, record, revision, 'Failed', { name: 'ParameterValidationError', code: 'PARAMETER_VALIDATION', message })) return;
          continue;
        }
      }
      const taken = await recorder.take(record, revision, (r) => ({
        ...r,
        parameters,
        namedParameters: undefined,
        namedParameterTexts: undefined,
        resumes: previousOwner === undefined ? r.resumes : r.resumes + 1,
      }));
      if (taken === null) continue;
      logger.info(
        { flowRunId: record.id, previousOwner, reason: take.reason },
        previousOwner === undefined ? `Took flow run '${record.name}' of flow '${record.flowName}'` : `Took over flow run '${record.name}' of flow '${record.flowName}' from a process that stopped`,
      );
      this.#host.resume(definition, taken.record, taken.revision);
      return;
    }
  }
}
