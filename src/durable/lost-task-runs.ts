/**
 * Task runs that a dead process left in flight never tell their end: their owner
 * is gone, and the flow run that resumes elsewhere makes the call again as a new
 * task run. The process that resumes the flow run (or a subflow of it) ends them
 * `Crashed` in the event history instead, as their owner would have, from the
 * last event each published there (one read of the stream, last event per task run).
 */
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { isTerminal } from '../../actors/state.js';
import { parseMessage } from '../codec.js';
import { parseRunEvent, type TaskStateEvent } from '../events.js';
import { makeRunState } from '../runtime/run-common.js';
import type { Subjects } from '../subjects.js';

export interface LostTaskRunsHost {
  connection: NatsConnection;
  subjects: Subjects;
  now(): number;
  publishEvent(subject: string, event: TaskStateEvent): void;
}

/** The resumed flow run (top-level or subflow) whose lost task runs are ended. */
export interface ResumedFlowRun {
  readonly id: string;
  readonly name: string;
  readonly flowName: string;
  /**
   * Whether this process started the task run, since the run resumed: the resumed run's own
   * calls publish their first events while the history is being read, and are not lost.
   */
  startedHere(taskRunId: string): boolean;
}

/** How long the read of the history may take, in ms. */
const READ_EXPIRES_MS = 5_000;

/**
 * Publishes `Crashed` for each task run of `run` that another process started and whose last
 * event in the history is not an end; resolves with how many. Each subflow of a resumed run
 * ends its own (subflows resume too, with the same id). `cause` is the message of their end: by
 * default, that the run resumed elsewhere; a run ended for good by a reader gives its own.
 */
export async function endLostTaskRuns(host: LostTaskRunsHost, run: ResumedFlowRun, cause = resumedCause(run)): Promise<number> {
  const { connection, subjects } = host;
  const consumer = await jetstream(connection).consumers.get(subjects.eventsStream, {
    filter_subjects: subjects.eventFilter({ flowName: run.flowName, flowRunId: run.id, kind: 'task' }),
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
    if (last !== null && last.type === 'task.state' && last.flowRunId === run.id && !isTerminal(last.state.name) && !run.startedHere(last.taskRunId)) {
      host.publishEvent(message.subject, lostEvent(last, cause, host.now()));
      ended += 1;
    }
    if (read >= pending) break;
  }
  return ended;
}

/** Why the task runs of a resumed run ended: their run goes on elsewhere, with calls of its own. */
function resumedCause(run: ResumedFlowRun): string {
  return `the process that ran flow run '${run.name}' died; the flow run resumed in another process, which makes this call again as a new task run`;
}

function lostEvent(last: TaskStateEvent, cause: string, now: number): TaskStateEvent {
  const state = makeRunState('Crashed', now, last.state.attempt, { name: 'CrashedError', code: 'CRASHED', message: cause, retryable: false });
  return { ...last, seq: last.seq + 1, state };
}
