/**
 * Task runs that a dead process left in flight never tell their end: their owner
 * is gone, and the flow run that resumes elsewhere makes the call again as a new
 * task run. The process that resumes the flow run ends them `Crashed` in the
 * event history instead, as their owner would have, from the last event each
 * published there (one read of the stream, last event per task run).
 */
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { isTerminal } from '../../actors/state.js';
import { parseMessage } from '../codec.js';
import { parseRunEvent, type TaskStateEvent } from '../events.js';
import { makeRunState } from '../runtime/run-common.js';
import type { Subjects } from '../subjects.js';
import type { FlowRunRecord } from './records.js';

export interface LostTaskRunsHost {
  connection: NatsConnection;
  subjects: Subjects;
  now(): number;
  publishEvent(subject: string, event: TaskStateEvent): void;
}

/** How long the read of the history may take, in ms. */
const READ_EXPIRES_MS = 5_000;

/**
 * Publishes `Crashed` for each task run of `record`'s flow run whose last event in the
 * history is not an end; resolves with how many. Task runs of its subflows are not looked at.
 */
export async function endLostTaskRuns(host: LostTaskRunsHost, record: FlowRunRecord): Promise<number> {
  const { connection, subjects } = host;
  const consumer = await jetstream(connection).consumers.get(subjects.eventsStream, {
    filter_subjects: subjects.eventFilter({ flowName: record.flowName, flowRunId: record.id, kind: 'task' }),
    deliver_policy: DeliverPolicy.LastPerSubject,
  });
  const pending = (await consumer.info()).num_pending;
  let ended = 0;
  if (pending === 0) return ended;
  const messages = await consumer.fetch({ max_messages: pending, expires: READ_EXPIRES_MS });
  let read = 0;
  for await (const message of messages) {
    read += 1;
    const decoded = parseMessage(message.data);
    const last = decoded === null ? null : parseRunEvent(decoded);
    if (last !== null && last.type === 'task.state' && last.flowRunId === record.id && !isTerminal(last.state.name)) {
      host.publishEvent(message.subject, lostEvent(last, record, host.now()));
      ended += 1;
    }
    if (read >= pending) break;
  }
  return ended;
}

function lostEvent(last: TaskStateEvent, record: FlowRunRecord, now: number): TaskStateEvent {
  const state = makeRunState('Crashed', now, last.state.attempt, {
    name: 'CrashedError',
    code: 'CRASHED',
    message: `the process that ran flow run '${record.name}' died; the flow run resumed in another process, which makes this call again as a new task run`,
    retryable: false,
  });
  return { ...last, seq: last.seq + 1, state };
}
