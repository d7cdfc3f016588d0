/**
 * Reading a flow run's calls back from the store, in call order, and ending the task runs
 * among them that a dead process left in flight.
 */
import { isTerminal } from '../../actors/state.js';
import { CrashedError, toWireError } from '../errors.js';
import { makeRunState } from '../runtime/run-common.js';
import type { Store, StoreEntry } from '../store/store.js';
import { JOURNAL_BUCKET, RUNS_BUCKET, appendHistory, journalKey, parseTaskRunRecord, subflowRunId, type TaskRunRecord } from './records.js';

/** Entries read at once. */
const READS_AT_ONCE = 32;

/** What the store holds at one position of a flow run: a task run's entry, or else a subflow run's record. */
export interface CallEntry {
  position: number;
  /** The task run's journal entry; `undefined` for a subflow. */
  task?: StoreEntry;
  /** The subflow run's record, when no task was called at the position. */
  subflow?: StoreEntry;
}

/**
 * The calls of flow run `flowRunId` found in the store, in call order. Positions are dense
 * from 0; `calls`, the count in the run's record, may lag behind it, so reading goes on past
 * it until a batch finds nothing.
 */
export async function readCalls(store: Store, flowRunId: string, calls: number): Promise<CallEntry[]> {
  const found: CallEntry[] = [];
  for (let start = 0; ; start += READS_AT_ONCE) {
    const positions = Array.from({ length: READS_AT_ONCE }, (_, i) => start + i);
    const tasks = await Promise.all(positions.map((position) => store.get(JOURNAL_BUCKET, journalKey(flowRunId, position))));
    // A call with no journal entry was a subflow (or is not made yet): its run has an id of its own.
    const subflows = await Promise.all(positions.map((position, i) => (tasks[i] === null ? store.get(RUNS_BUCKET, subflowRunId(flowRunId, position)) : null)));
    let inBatch = 0;
    for (const [i, position] of positions.entries()) {
      const task = tasks[i];
      const subflow = subflows[i];
      if (task !== null && task !== undefined) found.push({ position, task });
      else if (subflow !== null && subflow !== undefined) found.push({ position, subflow });
      else continue;
      inBatch += 1;
    }
    if (inBatch === 0 && start + READS_AT_ONCE >= calls) return found;
  }
}

/**
 * Ends `Crashed`, in the journal, the task runs of flow run `flowRunId` that are not ended
 * there: the calls a dead process left in flight, which the run, now ended, never made again.
 * Without it their records would show them `Running` for ever. Each is written only over the
 * revision read (a task run that ends meanwhile is left as it ends). Resolves with how many.
 */
export async function endUnfinishedCalls(store: Store, flowRunId: string, calls: number, cause: string, now: number): Promise<number> {
  let ended = 0;
  for (const { position, task } of await readCalls(store, flowRunId, calls)) {
    const record = task === undefined ? null : parseTaskRunRecord(task.value);
    if (task === undefined || record === null || isTerminal(record.state.name)) continue;
    const error = toWireError(new CrashedError(cause));
    const state = makeRunState('Crashed', now, record.attempt, error);
    const crashed: TaskRunRecord = { ...record, state, history: appendHistory(record.history, state), lastSeq: record.lastSeq + 1, updatedAt: now, error: { name: error.name, code: error.code, message: error.message } };
    try {
      await store.put(JOURNAL_BUCKET, journalKey(flowRunId, position), crashed, { expectedRevision: task.revision });
      ended += 1;
    } catch (failure) {
      if ((failure as { code?: string }).code !== 'REVISION_MISMATCH') throw failure;
    }
  }
  return ended;
}
