/**
 * Ends, in its record, a flow run that no process runs (its process died and
 * nobody serves its flow, its parameters do not fit the flow, or it was
 * cancelled before any process took it), and tells
 * observers, as the run itself would have.
 */
import type { Logger } from 'pino';
import { makeRunState } from '../runtime/run-common.js';
import type { FlowStateEvent } from '../events.js';
import type { Store } from '../store/store.js';
import type { Subjects } from '../subjects.js';
import { ACTIVE_BUCKET, RUNS_BUCKET, appendHistory, type FlowRunRecord, type RecordedError } from './records.js';
import { endUnfinishedCalls } from './journal.js';

export interface EndRunHost {
  store: Store;
  subjects: Subjects;
  logger: Logger;
  now(): number;
  publishEvent(subject: string, event: FlowStateEvent): void;
  /**
   * Ends `Crashed`, in the event history, the task runs a flow run's dead process left in
   * flight, with `cause` as their message; resolves with how many (0 without a history).
   */
  endLostTaskRuns?(run: { id: string; name: string; flowName: string }, cause: string): Promise<number>;
}

/**
 * Writes the end over the record found at `revision`; resolves with false, and
 * changes nothing, when the record moved meanwhile (someone else decided first).
 */
export async function endRun(
  host: EndRunHost,
  record: FlowRunRecord,
  revision: number,
  name: 'Crashed' | 'Failed' | 'Cancelled',
  error: Required<RecordedError>,
  /** How loud the end line is: a cancel, or an end found by a process that only reads the runs, is no error of its own. */
  level: 'info' | 'error' = name === 'Cancelled' ? 'info' : 'error',
): Promise<boolean> {
  const { store, logger } = host;
  const now = host.now();
  const state = makeRunState(name, now, record.attempt, { ...error, retryable: false });
  const ended: FlowRunRecord = { ...record, state, history: appendHistory(record.history, state), lastSeq: record.lastSeq + 1, updatedAt: now, error };
  try {
    await store.put(RUNS_BUCKET, record.id, ended, { expectedRevision: revision });
  } catch (failure) {
    if ((failure as { code?: string }).code === 'REVISION_MISMATCH') return false;
    throw failure;
  }
  await store.delete(ACTIVE_BUCKET, record.id);
  const line = `Flow run '${record.name}' - Finished in state ${name}('${error.message}')`;
  logger[level]({ flowRunId: record.id, flowName: record.flowName }, line);
  // The run's task runs in flight would otherwise show Running for ever, in the history and in
  // their records: their owner died, and no process resumes the run to end them.
  const cause = `flow run '${record.name}' ended ${name}: ${error.message}`;
  if (name === 'Crashed' && host.endLostTaskRuns !== undefined) {
    await host.endLostTaskRuns(record, cause).catch((err: unknown) => {
      logger.warn({ err, flowRunId: record.id }, `could not end the task runs flow run '${record.name}' left running`);
    });
  }
  await endUnfinishedCalls(store, record.id, record.calls, cause, host.now()).catch((err: unknown) => {
    logger.warn({ err, flowRunId: record.id }, `could not end the records of the task runs flow run '${record.name}' left running`);
  });
  // Told last: observers see a run end after its task runs, as when the run ends itself.
  host.publishEvent(host.subjects.flowEvent(record.flowName, record.id), {
    v: 1,
    type: 'flow.state',
    seq: ended.lastSeq,
    flowName: record.flowName,
    flowRunId: record.id,
    flowRunName: record.name,
    parentFlowRunId: record.parentId,
    state,
    tags: record.tags,
  });
  return true;
}
