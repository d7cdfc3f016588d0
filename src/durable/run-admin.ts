/**
 * Managing recorded runs from any process: list them, show one with its task
 * runs, start a flow run by name for a process that serves the flow, retry a
 * failed one (reusing what completed), wait for one to end. All of it reads
 * and writes the run records; none of it needs the flow's code.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { STATE_NAMES, isTerminal, type StateName } from '../../actors/state.js';
import { makeRunState } from '../runtime/run-common.js';
import { IllegalStateError, InvalidArgumentError, RunNotFoundError } from '../errors.js';
import type { FlowStateEvent } from '../events.js';
import { generateRunName } from '../names.js';
import type { Store } from '../store/store.js';
import type { Subjects } from '../subjects.js';
import { DropCounter } from '../drop-counter.js';
import type { EventStream } from '../runtime/watch.js';
import type { FlowTake } from './flow-queue.js';
import { endRun } from './end-run.js';
import { readCalls } from './journal.js';
import { describeFailure, isPassingFailure } from '../nats/passing-failure.js';
import {
  ACTIVE_BUCKET,
  JOURNAL_BUCKET,
  RECORD_VERSION,
  RUNS_BUCKET,
  appendHistory,
  journalKey,
  parseFlowRunRecord,
  readFlowRunRecord,
  subflowRunId,
  parseTaskRunRecord,
  type ActiveEntry,
  type FlowRunRecord,
  type TaskRunRecord,
} from './records.js';

/** Which flow runs `list()` returns; every field narrows. */
export interface RunListFilter {
  flowName?: string;
  /** A state name (`Running`, `Failed`, ...), any case. */
  state?: string;
  /** At most this many, newest first. @default 100 */
  limit?: number;
}

/** A flow run with the task runs it made, in call order. */
export interface FlowRunDetails {
  run: FlowRunRecord;
  taskRuns: TaskRunRecord[];
  /** The subflow runs it called, with their place among its calls (`runs show` on one shows its task runs). */
  subflows: Array<{ position: number; run: FlowRunRecord }>;
}

/** A flow run started by name: it runs in a process that serves its flow. */
export interface QueuedFlowRun {
  readonly id: string;
  readonly name: string;
  readonly flowName: string;
  /** Resolves with the record once the run has ended. */
  wait(): Promise<FlowRunRecord>;
}

export interface RunAdminHost {
  store: Store;
  subjects: Subjects;
  logger: Logger;
  now(): number;
  publishEvent(subject: string, event: FlowStateEvent): void;
  /** Queues a run for the processes serving its flow (needs NATS). */
  enqueue(take: Omit<FlowTake, 'v' | 'type'>, dedupeId: string): Promise<void>;
  /** Whether some live process serves the flow; `undefined` when this process cannot tell. */
  isServed(flowName: string): Promise<boolean | undefined>;
  /** The owners' leases now, `undefined` when this process cannot read them (no NATS). */
  leases(): Promise<ReadonlyArray<{ ownerId: string; flows: string[]; live: boolean }> | undefined>;
  watchFlowRun(flowRunId: string): EventStream;
  /** Asks the process that owns the flow run to cancel it (`Orchestrator.cancelRun`). */
  requestCancel(flowRunId: string, reason: string): Promise<void>;
  /**
   * Ends `Crashed`, in the event history, the task runs a flow run's dead process left in
   * flight, with `cause` as their message; resolves with how many (0 without a history).
   */
  endLostTaskRuns(run: { id: string; name: string; flowName: string }, cause: string): Promise<number>;
}

/** What `cancel()` did with a flow run that had not ended. */
export type CancelOutcome =
  /** No process had taken it: it ended `Cancelled` in its record; `record` is the ended one. */
  | { outcome: 'cancelled'; record: FlowRunRecord }
  /** A process owns it: its owner was asked to cancel it (it goes `Cancelling`, then `Cancelled`). */
  | { outcome: 'owned'; record: FlowRunRecord };

/** How often `wait()` looks at a record whose end was announced but is not written yet, in ms. */
const RECORD_POLL_MS = 50;
/** How often `wait()` reads the record while no end is announced, in case the announcement was missed, in ms. */
const WAIT_POLL_MS = 1_000;
/** First pause before `wait()` reads again a record it could not read (the server away), in ms; doubled each time. */
const WAIT_RETRY_MS = 100;
/** Longest pause between those reads, in ms: a server back is noticed within this. */
const WAIT_RETRY_MAX_MS = 2_000;
const DEFAULT_LIST_LIMIT = 100;
/** Reads of a record that `cancel()` found moved since it read it, before it gives up. */
const CANCEL_ATTEMPTS = 5;
/** A record unchanged for this long, whose owner holds no live lease, is an orphan (two default leases). */
const ORPHAN_AFTER_MS = 6_000;

export class RunAdmin {
  readonly #host: RunAdminHost;
  readonly #garbled: DropCounter;

  constructor(host: RunAdminHost) {
    this.#host = host;
    this.#garbled = new DropCounter(host.logger, 'skipped a run record that does not parse', host.now);
  }

  /** Recorded flow runs, newest first. Garbled records are reported and skipped. */
  async list(filter: RunListFilter = {}): Promise<FlowRunRecord[]> {
    const state = filter.state === undefined ? undefined : stateNamed(filter.state);
    const limit = filter.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) throw new InvalidArgumentError(`limit must be a positive integer, got ${filter.limit}`);
    const runs: FlowRunRecord[] = [];
    const revisions = new Map<string, number>();
    for (const entry of await this.#host.store.list(RUNS_BUCKET)) {
      const record = parseFlowRunRecord(entry.value);
      if (record === null) {
        this.#garbled.drop({ bucket: RUNS_BUCKET, key: entry.key });
        continue;
      }
      if (filter.flowName !== undefined && record.flowName !== filter.flowName) continue;
      if (state !== undefined && record.state.name !== state) continue;
      runs.push(record);
      revisions.set(record.id, entry.revision);
    }
    runs.sort((a, b) => b.createdAt - a.createdAt);
    const shown = runs.slice(0, limit);
    return this.#reconcile(shown.map((record) => ({ record, revision: revisions.get(record.id)! })));
  }

  /** A flow run's record. @throws RunNotFoundError */
  async get(flowRunId: string): Promise<FlowRunRecord> {
    const [record] = await this.#reconcile([await this.#read(flowRunId)]);
    return record!;
  }

  /** A flow run and its task runs, in call order. @throws RunNotFoundError */
  async show(flowRunId: string): Promise<FlowRunDetails> {
    const run = await this.get(flowRunId);
    const taskRuns: TaskRunRecord[] = [];
    const subflows: FlowRunDetails['subflows'] = [];
    for (const { position, task, subflow } of await readCalls(this.#host.store, flowRunId, run.calls)) {
      if (task === undefined) {
        const record = parseFlowRunRecord(subflow!.value);
        if (record === null) this.#garbled.drop({ bucket: RUNS_BUCKET, key: subflowRunId(flowRunId, position) });
        else subflows.push({ position, run: record });
        continue;
      }
      const record = parseTaskRunRecord(task.value);
      if (record === null) this.#garbled.drop({ bucket: JOURNAL_BUCKET, key: journalKey(flowRunId, position) });
      else taskRuns.push(record);
    }
    return { run, taskRuns, subflows };
  }

  /**
   * Starts a run of the flow named, in whichever live process serves it (now or
   * once one does): the run waits `Scheduled` until then. `parameters` is the flow's
   * argument list, or its parameters by name (`{ named: { repo: 'x' } }`), which the
   * serving process maps onto the flow's own parameters, as `tenaz run --param` does
   * (`texts`, the text each was given as, if any, for the fields its schema says are strings).
   */
  async start(flowName: string, parameters: unknown[] | { named: Record<string, unknown>; texts?: Record<string, string> }): Promise<QueuedFlowRun> {
    if (typeof flowName !== 'string' || flowName === '') throw new InvalidArgumentError('a flow run is started by the name of its flow');
    const named = Array.isArray(parameters) ? undefined : parameters?.named;
    const texts = Array.isArray(parameters) ? undefined : parameters?.texts;
    if (!Array.isArray(parameters) && (named === null || typeof named !== 'object' || Array.isArray(named))) {
      throw new InvalidArgumentError("parameters must be the flow's argument list or { named: { ... } }");
    }
    const now = this.#host.now();
    const id = randomUUID();
    const state = makeRunState('Scheduled', now, 1, undefined);
    const record: FlowRunRecord = {
      v: RECORD_VERSION,
      kind: 'flow',
      id,
      name: generateRunName(),
      flowName,
      parameters: Array.isArray(parameters) ? parameters : [],
      namedParameters: named,
      namedParameterTexts: texts,
      calls: 0,
      resumes: 0,
      state,
      history: [state],
      attempt: 1,
      lastSeq: 1,
      createdAt: now,
      updatedAt: now,
      hasResult: false,
      tags: [],
    };
    await this.#host.store.put(RUNS_BUCKET, id, record, { expectedRevision: 0 });
    await this.#queue(record, 'start', `start:${id}`);
    return this.#handle(record);
  }

  /**
   * A new attempt of a flow run that ended without completing: it waits for a
   * process serving its flow, which runs it again, reading back the results of
   * the task runs that completed. @throws RunNotFoundError, IllegalStateError
   */
  async retry(flowRunId: string): Promise<QueuedFlowRun> {
    const { record, revision } = await this.#read(flowRunId);
    if (!isTerminal(record.state.name) || record.state.type === 'COMPLETED') {
      throw new IllegalStateError(`flow run '${record.name}' is ${record.state.name}: only a run that ended without completing can be retried`);
    }
    if (record.parentId !== undefined) throw new IllegalStateError(`flow run '${record.name}' is a subflow: retry the flow run that called it`);
    const now = this.#host.now();
    const state = makeRunState('Scheduled', now, record.attempt + 1, undefined);
    const retried: FlowRunRecord = {
      ...record,
      owner: undefined,
      state,
      history: appendHistory(record.history, state),
      attempt: record.attempt + 1,
      lastSeq: record.lastSeq + 1,
      updatedAt: now,
      hasResult: false,
      result: undefined,
      error: undefined,
    };
    try {
      await this.#host.store.put(RUNS_BUCKET, flowRunId, retried, { expectedRevision: revision });
    } catch (error) {
      if ((error as { code?: string }).code === 'REVISION_MISMATCH') throw new IllegalStateError(`flow run '${record.name}' changed while it was being retried; try again`, { cause: error });
      throw error;
    }
    await this.#queue(retried, 'retry', `retry:${flowRunId}:${retried.attempt}`);
    return this.#handle(retried);
  }

  /**
   * Cancels a flow run. One that no process has taken yet (`Scheduled`, no owner) ends
   * `Cancelled` here, in its record, with a compare-and-set: a process taking it at the
   * same moment either wins (the run is then `owned`) or finds it ended and leaves it.
   * One that a process owns is reported `owned` once its owner was asked to cancel it, as
   * only it can stop the body.
   * @throws RunNotFoundError; IllegalStateError when the run has already ended
   */
  async cancel(flowRunId: string, reason = 'cancelled'): Promise<CancelOutcome> {
    for (let attempt = 0; attempt < CANCEL_ATTEMPTS; attempt += 1) {
      const { record, revision } = await this.#read(flowRunId);
      if (isTerminal(record.state.name)) throw new IllegalStateError(`flow run '${record.name}' (${record.id}) already ended ${record.state.name}`);
      if (record.owner !== undefined || record.state.name !== 'Scheduled') {
        await this.#host.requestCancel(record.id, reason);
        return { outcome: 'owned', record };
      }
      const error = { name: 'CancelledError', code: 'CANCELLED', message: `flow run '${record.name}': ${reason}` };
      if (await endRun(this.#host, record, revision, 'Cancelled', error)) {
        const ended = await readFlowRunRecord(this.#host.store, record.id, this.#garbled);
        return { outcome: 'cancelled', record: typeof ended === 'string' ? record : ended.record };
      }
      // The record moved (a process took the run, most likely): look again at what it is now.
    }
    throw new IllegalStateError(`flow run ${flowRunId} kept changing while it was being cancelled; try again`);
  }

  /**
   * Resolves with the record once the flow run has ended. Rides out a server that is
   * away for a while (a restart, a network cut): reads that fail for that reason are
   * tried again, with backoff, until the connection is back or closed for good.
   * @throws RunNotFoundError; ClosedError when the orchestrator or its connection closes
   */
  async wait(flowRunId: string): Promise<FlowRunRecord> {
    // Events first, then the record: an end between the two is seen one way or the other.
    const events = this.#host.watchFlowRun(flowRunId);
    const pauses = new AbortController();
    const pause = (ms: number) => sleep(ms, undefined, { signal: pauses.signal });
    let announced = false;
    let following = true;
    const ended = (async () => {
      for await (const event of events) {
        if (event.type === 'flow.state' && isTerminal(event.state.name)) {
          announced = true;
          return;
        }
      }
    })()
      .catch((err: unknown) => {
        // The record alone still tells: it is read every WAIT_POLL_MS.
        if (!pauses.signal.aborted) this.#host.logger.debug({ err, flowRunId }, "stopped following the flow run's events while waiting for its end");
      })
      .finally(() => (following = false));
    let failures = 0;
    try {
      for (;;) {
        let record: FlowRunRecord;
        try {
          record = await this.get(flowRunId);
          failures = 0;
        } catch (error) {
          if (!isPassingFailure(error)) throw error;
          failures += 1;
          const retryInMs = Math.min(WAIT_RETRY_MAX_MS, WAIT_RETRY_MS * 2 ** (failures - 1));
          // The first of a series at info, the rest at debug: an outage is one line, not one per try.
          this.#host.logger[failures === 1 ? 'info' : 'debug'](
            { flowRunId, failures, retryInMs, reason: describeFailure(error) },
            'could not read the flow run record while waiting for its end; reading it again',
          );
          await pause(retryInMs);
          continue;
        }
        if (isTerminal(record.state.name)) return record;
        // The end is announced before its record is written; events can also be missed
        // (no history, a subscription not yet made, an outage): the record is read again in any case.
        if (announced) await pause(RECORD_POLL_MS);
        else await Promise.race([following ? ended : undefined, pause(WAIT_POLL_MS)]);
      }
    } finally {
      pauses.abort();
      events.close();
    }
  }

  /**
   * Runs whose owner died while no process watched (every tenaz process was gone) would
   * show `Running` for ever: when no live process serves their flow, they end `Crashed`
   * here, as a watching process would have ended them.
   */
  async #reconcile(found: Array<{ record: FlowRunRecord; revision: number }>): Promise<FlowRunRecord[]> {
    const now = this.#host.now();
    const orphans = found.filter(({ record }) => record.owner !== undefined && record.parentId === undefined && !isTerminal(record.state.name) && now - record.updatedAt > ORPHAN_AFTER_MS);
    if (orphans.length === 0) return found.map(({ record }) => record);
    const leases = await this.#host.leases().catch(() => undefined);
    if (leases === undefined) return found.map(({ record }) => record);
    const live = leases.filter((lease) => lease.live);
    const ended = new Map<string, FlowRunRecord>();
    for (const { record, revision } of orphans) {
      if (live.some((lease) => lease.ownerId === record.owner)) continue;
      if (live.some((lease) => lease.flows.includes(record.flowName))) continue;
      const message = `its process stopped, and no live process serves flow '${record.flowName}' to resume it`;
      // Told by what is listed (or shown), and at info level: the reader did nothing wrong.
      if (await endRun(this.#host, record, revision, 'Crashed', { name: 'CrashedError', code: 'CRASHED', message }, 'info')) {
        const updated = await readFlowRunRecord(this.#host.store, record.id, this.#garbled);
        if (typeof updated !== 'string') ended.set(record.id, updated.record);
      }
    }
    return found.map(({ record }) => ended.get(record.id) ?? record);
  }

  async #queue(record: FlowRunRecord, reason: FlowTake['reason'], dedupeId: string): Promise<void> {
    const entry: ActiveEntry = { v: RECORD_VERSION, flowName: record.flowName, owner: '' };
    await this.#host.store.put(ACTIVE_BUCKET, record.id, entry);
    const { subjects } = this.#host;
    this.#host.publishEvent(subjects.flowEvent(record.flowName, record.id), {
      v: 1,
      type: 'flow.state',
      seq: record.lastSeq,
      flowName: record.flowName,
      flowRunId: record.id,
      flowRunName: record.name,
      parentFlowRunId: undefined,
      state: record.state,
      tags: record.tags,
    });
    await this.#host.enqueue({ flowRunId: record.id, flowName: record.flowName, reason }, dedupeId);
    if ((await this.#host.isServed(record.flowName)) === false) {
      this.#host.logger.warn({ flowRunId: record.id }, `No live process serves flow '${record.flowName}'; flow run '${record.name}' waits Scheduled until one does`);
    }
  }

  #handle(record: FlowRunRecord): QueuedFlowRun {
    return { id: record.id, name: record.name, flowName: record.flowName, wait: () => this.wait(record.id) };
  }

  async #read(flowRunId: string): Promise<{ record: FlowRunRecord; revision: number }> {
    if (typeof flowRunId !== 'string' || flowRunId === '') throw new InvalidArgumentError('a flow run id is needed');
    const stored = await readFlowRunRecord(this.#host.store, flowRunId, this.#garbled);
    if (stored === 'absent') throw new RunNotFoundError(`no flow run ${flowRunId} is recorded`);
    if (stored === 'garbled') throw new RunNotFoundError(`the record of flow run ${flowRunId} is garbled; it was skipped`);
    return stored;
  }
}

function stateNamed(text: string): StateName {
  const found = STATE_NAMES.find((name) => name.toLowerCase() === text.toLowerCase());
  if (found === undefined) throw new InvalidArgumentError(`no state is named ${JSON.stringify(text)}; states are ${STATE_NAMES.join(', ')}`);
  return found;
}

