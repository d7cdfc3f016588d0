/**
 * The durable side of the runs a process owns: every transition of a flow run
 * or task run lands in its record (see records.ts), written compare-and-set by
 * a `RecordWriter`; a resumed flow run reads the records of the calls it made
 * before (its journal).
 *
 * Exactly-once transitions: a record keeps the `seq` of the last event applied,
 * and an event at or below it changes nothing. Fencing: a write that finds the
 * record moved by someone else stops this process's hold on the run.
 */
import type { Logger } from 'pino';
import { isTerminal, type RunState } from '../../actors/state.js';
import { encodeValue, toWireValue } from '../codec.js';
import { ResultTooLargeError, type ErrorCode, type RevisionMismatchError } from '../errors.js';
import type { FlowStateEvent, RunEvent, TaskStateEvent } from '../events.js';
import type { Store } from '../store/store.js';
import { DropCounter } from '../drop-counter.js';
import { RecordWriter } from './record-writer.js';
import { endUnfinishedCalls } from './journal.js';
import {
  ACTIVE_BUCKET,
  JOURNAL_BUCKET,
  RECORD_VERSION,
  RUNS_BUCKET,
  appendHistory,
  journalKey,
  parseFlowRunRecord,
  subflowRunId,
  parseTaskRunRecord,
  snapshotRecord,
  type ActiveEntry,
  type FlowRunRecord,
  type RecordedError,
  type TaskRunRecord,
} from './records.js';
import { failureFields } from '../nats/passing-failure.js';

/** The code of a call refused for not being the call recorded at its position (see `lookup`). */
const NON_DETERMINISM_CODE: ErrorCode = 'NON_DETERMINISM';

export interface DurableOptions {
  /** How long a transition that does not end a run may wait to be written with the next, in ms. @default 200 */
  writeWindowMs?: number;
  /** The largest result kept, encoded, in bytes; a larger one fails its run with `ResultTooLargeError`. @default 524288 */
  maxResultBytes?: number;
}

/** What the recorder reads of a flow run (`FlowRunRuntime` implements it). */
export interface RecordedFlowRun {
  readonly id: string;
  readonly name: string;
  readonly flowName: string;
  readonly parentId: string | undefined;
  /** The top-level flow run: its owner moves the whole tree forward. */
  readonly rootId: string;
  readonly position: number | undefined;
  readonly parameters: unknown[];
  readonly tags: string[];
  readonly calls: number;
  /** Whether the run was started before, by a process that died: calls it left in flight may be unended. */
  readonly resumed: boolean;
  /** The run's last state. */
  readonly state: RunState | undefined;
  /** This process no longer holds the run: stop it without a word to observers. */
  fence(reason: string): void;
}

/** What the recorder reads of a task run (`TaskRunRuntime` implements it). */
export interface RecordedTaskRun {
  readonly id: string;
  readonly name: string;
  readonly taskName: string;
  readonly flowRun: RecordedFlowRun | undefined;
  readonly position: number | undefined;
  readonly tags: string[];
  /** The revision of the journal entry at this call's position when the run started (0: none). */
  readonly journalRevision: number;
  /** The worker holding the current attempt, if any. */
  readonly workerId: string | undefined;
}

/** What the journal holds at one position of a resumed flow run. */
export type JournalLookup =
  | { kind: 'miss'; revision: number }
  | { kind: 'hit'; record: TaskRunRecord; revision: number }
  | { kind: 'conflict'; recordedTaskName: string; revision: number };

export const DEFAULT_WRITE_WINDOW_MS = 200;
export const DEFAULT_MAX_RESULT_BYTES = 512 * 1024;

export class RunRecorder {
  readonly ownerId: string;
  readonly maxResultBytes: number;
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #flows = new Map<string, RecordWriter<FlowRunRecord>>();
  readonly #tasks = new Map<string, RecordWriter<TaskRunRecord>>();
  readonly #garbled: DropCounter;

  constructor(options: DurableOptions & { store: Store; ownerId: string; logger: Logger; now: () => number }) {
    this.ownerId = options.ownerId;
    this.#store = options.store;
    this.#logger = options.logger;
    this.#now = options.now;
    this.#windowMs = options.writeWindowMs ?? DEFAULT_WRITE_WINDOW_MS;
    this.maxResultBytes = options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
    this.#garbled = new DropCounter(options.logger, 'skipped a run record that does not parse', options.now);
  }

  get store(): Store {
    return this.#store;
  }

  /** The error a result too large to keep fails its run with; `undefined` when it fits. */
  checkResult(value: unknown, what: string): ResultTooLargeError | undefined {
    // Most results are small scalars: they cannot exceed the limit, and need no trial encoding.
    if (value === null || (typeof value !== 'object' && typeof value !== 'string')) return undefined;
    if (typeof value === 'string' && value.length * 3 + 5 <= this.maxResultBytes) return undefined;
    const bytes = encodeValue(toWireValue(value)).length;
    if (bytes <= this.maxResultBytes) return undefined;
    return new ResultTooLargeError(`${what} returned ${bytes} bytes encoded; durable runs keep results of at most ${this.maxResultBytes} bytes (option durable.maxResultBytes)`);
  }

  /**
   * Takes over a flow run record found at `revision`, for this process. Resolves with
   * the record now written, or `null` when another process moved it meanwhile.
   */
  async take(record: FlowRunRecord, revision: number, change: (record: FlowRunRecord) => FlowRunRecord): Promise<{ record: FlowRunRecord; revision: number } | null> {
    const taken = change({ ...record, owner: this.ownerId, updatedAt: this.#now() });
    try {
      const written = await this.#store.put(RUNS_BUCKET, record.id, taken, { expectedRevision: revision });
      if (record.parentId === undefined) await this.#putActive(record.id, record.flowName);
      return { record: taken, revision: written };
    } catch (error) {
      if ((error as { code?: string }).code === 'REVISION_MISMATCH') return null;
      throw error;
    }
  }

  /**
   * The record a subflow of a resumed run left, when it ran before (same id, same flow): its
   * next transitions are written over it, so that the run goes on with its name and its events'
   * sequence. `undefined` when there is none (the subflow starts a record of its own).
   */
  async resumeSubflow(run: RecordedFlowRun): Promise<FlowRunRecord | undefined> {
    const entry = await this.#store.get(RUNS_BUCKET, run.id);
    const record = entry === null ? null : parseFlowRunRecord(entry.value);
    if (entry === null || record === null || record.flowName !== run.flowName) return undefined;
    const resumed: FlowRunRecord = { ...record, owner: this.ownerId, resumes: record.resumes + 1, hasResult: false, result: undefined, error: undefined };
    this.#flows.set(run.id, this.#flowWriter(run, resumed, entry.revision));
    return record;
  }

  /** A resumed flow run's record, from `take`, that its next transitions are written over. */
  adopt(run: RecordedFlowRun, record: FlowRunRecord, revision: number): void {
    this.#flows.set(run.id, this.#flowWriter(run, record, revision));
  }

  /** Applies a flow run's transition to its record. */
  flowState(run: RecordedFlowRun, event: FlowStateEvent, result: unknown, error: RecordedError | undefined): void {
    let writer = this.#flows.get(run.id);
    const first = writer === undefined;
    if (writer === undefined) {
      const record: FlowRunRecord = {
        ...this.#newRecord(run, event),
        kind: 'flow',
        flowName: run.flowName,
        parentId: run.parentId,
        parameters: run.parameters,
        owner: this.ownerId,
        calls: 0,
        resumes: 0,
      };
      writer = this.#flowWriter(run, record, 0);
      this.#flows.set(run.id, writer);
      if (run.parentId === undefined) void this.#putActive(run.id, run.flowName);
    }
    const terminal = isTerminal(event.state.name);
    writer.update((record) => applyState(record, event.seq, event.state, this.#now(), terminal, result, error, { calls: run.calls }), first || terminal);
  }

  /** Applies a task run's transition to its record. */
  taskState(run: RecordedTaskRun, event: TaskStateEvent, result: unknown, error: RecordedError | undefined): void {
    let writer = this.#tasks.get(run.id);
    if (writer === undefined) {
      // A call refused because the journal holds another call at its position is no call of the
      // run: that record stays, so that the code that made it can still resume the run (its code
      // rolled back, `runs retry`) and reuse its result.
      if (event.state.errorCode === NON_DETERMINISM_CODE) return;
      const record: TaskRunRecord = { ...this.#newRecord(run, event), kind: 'task', taskName: run.taskName, flowRunId: run.flowRun?.id, position: run.position };
      writer = this.#taskWriter(run, record);
      this.#tasks.set(run.id, writer);
    }
    const terminal = isTerminal(event.state.name);
    const workerId = run.workerId;
    writer.update((record) => applyState(record, event.seq, event.state, this.#now(), terminal, result, error, workerId === undefined ? {} : { worker: workerId }), terminal);
  }

  /** Resolves once the flow run's record is written (its end included); the run then leaves `active`. Never rejects. */
  async flowSettled(run: RecordedFlowRun): Promise<void> {
    const writer = this.#flows.get(run.id);
    if (writer === undefined) return;
    await writer.flushed();
    this.#flows.delete(run.id);
    if (writer.fenced) return;
    if (run.parentId === undefined) {
      await this.#store.delete(ACTIVE_BUCKET, run.id).catch((err: unknown) => this.#logger.warn({ ...failureFields(err), flowRunId: run.id }, 'could not remove a finished flow run from the active runs'));
    }
    // A resumed run that ended before making again a call the dead process left in flight
    // (it failed sooner) leaves that call's record unended: it ends Crashed, not Running for ever.
    if (run.resumed) {
      const cause = `flow run '${run.name}' ended ${run.state?.name ?? 'without'} before calling it again after it resumed; the process that called it had died`;
      await endUnfinishedCalls(this.#store, run.id, run.calls, cause, this.#now()).catch((err: unknown) =>
        this.#logger.warn({ ...failureFields(err), flowRunId: run.id }, 'could not end the records of the task runs the flow run left running before it resumed'),
      );
    }
  }

  /** Resolves once the task run's record is written. Never rejects. */
  async taskSettled(run: RecordedTaskRun): Promise<void> {
    const writer = this.#tasks.get(run.id);
    if (writer === undefined) return;
    await writer.flushed();
    this.#tasks.delete(run.id);
  }

  /** What the journal of a resumed flow run holds at `position`, for a call of `taskName`. Never rejects on garbage. */
  async lookup(flowRunId: string, position: number, taskName: string): Promise<JournalLookup> {
    const key = journalKey(flowRunId, position);
    const entry = await this.#store.get(JOURNAL_BUCKET, key);
    if (entry === null) {
      // No task was called here before; a subflow may have been.
      const subflow = await this.#store.get(RUNS_BUCKET, subflowRunId(flowRunId, position));
      const flowName = subflow === null ? undefined : parseFlowRunRecord(subflow.value)?.flowName;
      return flowName === undefined ? { kind: 'miss', revision: 0 } : { kind: 'conflict', recordedTaskName: `subflow '${flowName}'`, revision: 0 };
    }
    const record = parseTaskRunRecord(entry.value);
    if (record === null) {
      this.#garbled.drop({ bucket: JOURNAL_BUCKET, key, revision: entry.revision });
      return { kind: 'miss', revision: entry.revision };
    }
    if (record.taskName !== taskName) return { kind: 'conflict', recordedTaskName: `task '${record.taskName}'`, revision: entry.revision };
    if (record.hasResult && (record.state.name === 'Completed' || record.state.name === 'Cached')) return { kind: 'hit', record, revision: entry.revision };
    return { kind: 'miss', revision: entry.revision };
  }

  /**
   * What was called before at the position of a resumed run's subflow, when it was
   * not this flow: `task 'x'` or `subflow 'y'`; `undefined` when it was this flow or nothing.
   */
  async subflowConflict(parentId: string, position: number, subflowId: string, flowName: string): Promise<string | undefined> {
    const task = await this.#store.get(JOURNAL_BUCKET, journalKey(parentId, position));
    const taskName = task === null ? undefined : parseTaskRunRecord(task.value)?.taskName;
    if (taskName !== undefined) return `task '${taskName}'`;
    const entry = await this.#store.get(RUNS_BUCKET, subflowId);
    const recorded = entry === null ? undefined : parseFlowRunRecord(entry.value)?.flowName;
    if (recorded !== undefined && recorded !== flowName) return `subflow '${recorded}'`;
    return undefined;
  }

  /** Stops writing (the process closes); what was not written is dropped. */
  close(): void {
    for (const writer of [...this.#flows.values(), ...this.#tasks.values()]) writer.close();
    this.#flows.clear();
    this.#tasks.clear();
  }

  /** Resolves once every record written so far is in the store. Never rejects. */
  async flushed(): Promise<void> {
    await Promise.all([...this.#flows.values(), ...this.#tasks.values()].map((writer) => writer.flushed()));
  }

  /** What a flow run's and a task run's first record share; the first transition is applied to it next. */
  #newRecord(run: { id: string; name: string; tags: string[] }, event: RunEvent): Omit<FlowRunRecord, 'kind' | 'flowName' | 'parameters' | 'calls' | 'resumes'> {
    const now = this.#now();
    return { v: RECORD_VERSION, id: run.id, name: run.name, state: event.state, history: [], attempt: event.state.attempt, lastSeq: 0, createdAt: now, updatedAt: now, hasResult: false, tags: run.tags };
  }

  #flowWriter(run: RecordedFlowRun, record: FlowRunRecord, revision: number): RecordWriter<FlowRunRecord> {
    return new RecordWriter<FlowRunRecord>({
      store: this.#store,
      bucket: RUNS_BUCKET,
      key: run.id,
      record,
      revision,
      windowMs: this.#windowMs,
      snapshot: snapshotRecord,
      // Only the owner writes a top-level flow run's record: someone else wrote it, so it is theirs now.
      // A subflow's record is its root's owner's: a resumed root runs it again over its old record.
      onConflict: async () => (run.parentId === undefined ? null : this.#revisionIfOwned(run.rootId, RUNS_BUCKET, run.id)),
      onFenced: () => run.fence('another process took the flow run over (its record moved on without this process)'),
      logger: this.#logger,
    });
  }

  #taskWriter(run: RecordedTaskRun, record: TaskRunRecord): RecordWriter<TaskRunRecord> {
    const key = journalKey(run.flowRun?.id, run.flowRun ? (run.position ?? 0) : run.id);
    return new RecordWriter<TaskRunRecord>({
      store: this.#store,
      bucket: JOURNAL_BUCKET,
      key,
      record,
      revision: run.journalRevision,
      windowMs: this.#windowMs,
      snapshot: snapshotRecord,
      onConflict: (error) => this.#taskConflict(run, key, error),
      onFenced: () => run.flowRun?.fence('another process took the flow run over (a task run record moved on without this process)'),
      logger: this.#logger,
    });
  }

  /** A journal entry moved: a zombie of an earlier owner wrote it. The owner of the flow run writes over it. */
  async #taskConflict(run: RecordedTaskRun, key: string, error: RevisionMismatchError): Promise<number | null> {
    const flowRun = run.flowRun;
    if (flowRun === undefined) return null;
    const revision = await this.#revisionIfOwned(flowRun.rootId, JOURNAL_BUCKET, key);
    if (revision !== null) this.#logger.debug({ err: error, key }, 'a task run record was written before; writing over it, as this process owns its flow run');
    return revision;
  }

  /** The key's current revision, if this process owns the top-level flow run `rootId`; else `null`. */
  async #revisionIfOwned(rootId: string, bucket: string, key: string): Promise<number | null> {
    const root = await this.#store.get(RUNS_BUCKET, rootId);
    const owner = root === null ? undefined : parseFlowRunRecord(root.value)?.owner;
    if (owner !== this.ownerId) return null;
    return (await this.#store.get(bucket, key))?.revision ?? 0;
  }

  async #putActive(flowRunId: string, flowName: string): Promise<void> {
    const entry: ActiveEntry = { v: RECORD_VERSION, flowName, owner: this.ownerId };
    await this.#store.put(ACTIVE_BUCKET, flowRunId, entry).catch((err: unknown) => this.#logger.warn({ ...failureFields(err), flowRunId }, 'could not list a flow run as active'));
  }
}

/** A record after one more transition; the same record when the transition was applied already. */
function applyState<R extends FlowRunRecord | TaskRunRecord>(
  record: R,
  seq: number,
  state: RunState,
  now: number,
  terminal: boolean,
  result: unknown,
  error: RecordedError | undefined,
  extra: Partial<R>,
): R {
  if (seq <= record.lastSeq) return record;
  const next: R = { ...record, ...extra, state, history: appendHistory(record.history, state), attempt: state.attempt, lastSeq: seq, updatedAt: now };
  if (terminal && (state.name === 'Completed' || state.name === 'Cached')) {
    next.hasResult = true;
    next.result = result;
  } else if (terminal && error !== undefined) {
    next.error = error;
  }
  return next;
}
