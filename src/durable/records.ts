/**
 * Run records: what the durable store keeps of every flow run and task run, so
 * that another process can show a run, resume it, or retry it.
 *
 * Buckets (of the `Store`; JetStream KV `<namespace>_<bucket>` over NATS):
 * - `runs`: a flow run's record, by flow run id;
 * - `journal`: a task run's record, by `<flowRunId>/<position>` (the call's position
 *   in its flow run, which is how a resumed flow run finds the result of a call it
 *   made before), or `-/<taskRunId>` for a task run called outside any flow;
 * - `active`: top-level flow runs not yet finished, by id, with their owner: what a
 *   process reads to find the runs of an owner that died.
 *
 * Bytes in the store are untrusted: a record that does not parse is reported and
 * skipped by its reader, never trusted.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { DropCounter } from '../drop-counter.js';
import type { Store } from '../store/store.js';
import { STATE_TYPE_BY_NAME, type RunState, type StateName, type StateType } from '../../actors/state.js';

export const RUNS_BUCKET = 'runs';
export const JOURNAL_BUCKET = 'journal';
export const ACTIVE_BUCKET = 'active';
export const RECORD_VERSION = 1;
/** States kept per record: the first ones and the latest ones of a run that retries without end. */
export const MAX_HISTORY = 100;

/** Why a run failed, as kept in its record. */
export interface RecordedError {
  name: string;
  code?: string;
  message: string;
}

interface RecordBase {
  v: typeof RECORD_VERSION;
  id: string;
  name: string;
  state: RunState;
  /** Every state the run went through, oldest first (at most `MAX_HISTORY`). */
  history: RunState[];
  attempt: number;
  /** The `seq` of the last event applied: an event at or below it is a repeat and changes nothing. */
  lastSeq: number;
  createdAt: number;
  updatedAt: number;
  /** Set once the run completed: the value is in `result`. */
  hasResult: boolean;
  result?: unknown;
  error?: RecordedError;
  tags: string[];
}

export interface FlowRunRecord extends RecordBase {
  kind: 'flow';
  flowName: string;
  parentId?: string;
  /** The flow's arguments, as the codec carries them. */
  parameters: unknown[];
  /**
   * Parameters by name, for a run started by name by a process without the flow's code
   * (`tenaz start NAME --param k=v`): the process that takes the run maps them onto the
   * flow's parameters, and keeps the result in `parameters`.
   */
  namedParameters?: Record<string, unknown>;
  /**
   * The text each named parameter was given as (`--param k=v`): a field the flow's schema
   * declares a string keeps it as written, where the value read as JSON would be a number.
   */
  namedParameterTexts?: Record<string, string>;
  /** The process that moves the run forward; none while the run waits for one (`tenaz start`, retry). */
  owner?: string;
  /** Task and subflow calls made so far: the next call's position. */
  calls: number;
  /** How many times another process took the run over after its owner stopped. */
  resumes: number;
}

export interface TaskRunRecord extends RecordBase {
  kind: 'task';
  taskName: string;
  flowRunId?: string;
  /** The call's position in its flow run. */
  position?: number;
  /** The worker that ran the latest attempt, when one did. */
  worker?: string;
}

/** What `active` holds per unfinished top-level flow run. */
export interface ActiveEntry {
  v: typeof RECORD_VERSION;
  flowName: string;
  /** Empty while the run waits for a process to take it. */
  owner: string;
}

/**
 * A subflow's id follows from its parent's and its position among the parent's calls,
 * so that a resumed parent calls the same subflow run again and finds its journal.
 */
export function subflowRunId(parentId: string, position: number): string {
  const hex = createHash('sha256').update(`${parentId}/${position}`).digest('hex');
  // Shaped as a UUID (version 8: custom), as every other run id is.
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export function journalKey(flowRunId: string | undefined, positionOrTaskRunId: number | string): string {
  return `${flowRunId ?? '-'}/${positionOrTaskRunId}`;
}

const stateNames = Object.keys(STATE_TYPE_BY_NAME) as [StateName, ...StateName[]];
const stateTypes = [...new Set(Object.values(STATE_TYPE_BY_NAME))] as [StateType, ...StateType[]];

/** Absent, written as nil by a client of another language or as undefined by this one: read as absent. */
const optional = <T extends z.ZodType>(schema: T) => schema.nullish().transform((value) => value ?? undefined);

const stateSchema = z.object({
  type: z.enum(stateTypes),
  name: z.enum(stateNames),
  timestamp: z.number(),
  attempt: z.number().int(),
  message: optional(z.string()),
  errorName: optional(z.string()),
  errorCode: optional(z.string()),
  scheduledAt: optional(z.number()),
});

const base = {
  v: z.literal(RECORD_VERSION),
  id: z.string().min(1),
  name: z.string(),
  state: stateSchema,
  history: z.array(stateSchema),
  attempt: z.number().int().min(1),
  lastSeq: z.number().int().min(0),
  createdAt: z.number(),
  updatedAt: z.number(),
  hasResult: z.boolean(),
  result: z.unknown().optional(),
  error: optional(z.object({ name: z.string(), code: optional(z.string()), message: z.string() })),
  tags: z.array(z.string()),
};

const flowRunRecordSchema = z.looseObject({
  ...base,
  kind: z.literal('flow'),
  flowName: z.string().min(1),
  parentId: optional(z.string()),
  parameters: z.array(z.unknown()),
  namedParameters: optional(z.record(z.string(), z.unknown())),
  namedParameterTexts: optional(z.record(z.string(), z.string())),
  owner: optional(z.string()),
  calls: z.number().int().min(0),
  resumes: z.number().int().min(0),
});

const taskRunRecordSchema = z.looseObject({
  ...base,
  kind: z.literal('task'),
  taskName: z.string().min(1),
  flowRunId: optional(z.string()),
  position: optional(z.number().int().min(0)),
  worker: optional(z.string()),
});

const activeEntrySchema = z.looseObject({ v: z.literal(RECORD_VERSION), flowName: z.string().min(1), owner: z.string() });

/** The record, or `null` when the stored value is not a flow run record. */
export function parseFlowRunRecord(value: unknown): FlowRunRecord | null {
  const parsed = flowRunRecordSchema.safeParse(value);
  return parsed.success ? (parsed.data as FlowRunRecord) : null;
}

/** A flow run's record and the revision it was read at. */
export interface StoredFlowRun {
  record: FlowRunRecord;
  revision: number;
}

/** A flow run's record as stored: `'absent'`, `'garbled'` (reported to `garbled`), or the record. */
export async function readFlowRunRecord(store: Store, flowRunId: string, garbled: DropCounter): Promise<StoredFlowRun | 'absent' | 'garbled'> {
  const entry = await store.get(RUNS_BUCKET, flowRunId);
  if (entry === null) return 'absent';
  const record = parseFlowRunRecord(entry.value);
  if (record === null) {
    garbled.drop({ bucket: RUNS_BUCKET, key: flowRunId });
    return 'garbled';
  }
  return { record, revision: entry.revision };
}

/** The record, or `null` when the stored value is not a task run record. */
export function parseTaskRunRecord(value: unknown): TaskRunRecord | null {
  const parsed = taskRunRecordSchema.safeParse(value);
  return parsed.success ? (parsed.data as TaskRunRecord) : null;
}

export function parseActiveEntry(value: unknown): ActiveEntry | null {
  const parsed = activeEntrySchema.safeParse(value);
  return parsed.success ? (parsed.data as ActiveEntry) : null;
}

/** Appends a state, keeping the first half and the latest of a history that grew past `MAX_HISTORY`. */
export function appendHistory(history: RunState[], state: RunState): RunState[] {
  const next = history.length < MAX_HISTORY ? history.concat(state) : [...history.slice(0, MAX_HISTORY / 2), ...history.slice(-(MAX_HISTORY / 2 - 1)), state];
  return next;
}

/** A record's copy to write: what is written must not change while it is on its way. */
export function snapshotRecord<R extends FlowRunRecord | TaskRunRecord>(record: R): R {
  return { ...record, history: record.history.slice(), tags: record.tags.slice() };
}
