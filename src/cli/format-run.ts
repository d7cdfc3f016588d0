/**
 * How `tenaz runs` and `tenaz start` print run records: a table of flow runs,
 * one flow run with its task runs, durations and times.
 *
 *   ID                                    NAME          FLOW           STATE      ATTEMPT  STARTED              DURATION
 *   0b6e4c1a-…                            light-potoo   durable-steps  Completed  1        2026-11-23 18:02:04  1.2s
 *
 * Times are local, to the second; a run's duration is its latest attempt's,
 * from its first `Running` state to its end (or to now, while it runs).
 */
import { isTerminal } from '../../actors/state.js';
import type { FlowRunDetails } from '../durable/run-admin.js';
import type { FlowRunRecord, RecordedError, TaskRunRecord } from '../durable/records.js';
import { toJson } from './json.js';

const NONE = '-';

/** Flow runs as a table with a header line; `now` dates the runs still going. */
export function formatRunTable(runs: readonly FlowRunRecord[], now: number): string {
  const rows = runs.map((run) => [run.id, run.name, run.flowName, run.state.name, String(run.attempt), formatTime(startOf(run)), formatSpan(run, now)]);
  return formatTable(['ID', 'NAME', 'FLOW', 'STATE', 'ATTEMPT', 'STARTED', 'DURATION'], rows);
}

/** A flow run, field by field, then its task runs in call order. */
export function formatRunDetails({ run, taskRuns, subflows }: FlowRunDetails, now: number): string {
  const fields: Array<[string, string]> = [
    ['flow', run.flowName],
    ['state', run.state.name],
    ['attempt', String(run.attempt)],
    ['owner', run.owner ?? NONE],
    ['resumes', String(run.resumes)],
    ['created', formatTime(run.createdAt)],
    ['updated', formatTime(run.updatedAt)],
    ['started', formatTime(startOf(run))],
    ['duration', formatSpan(run, now)],
  ];
  if (run.parentId !== undefined) fields.push(['parent', run.parentId]);
  const error = describeError(run);
  if (error !== undefined) fields.push(['error', error]);
  if (run.state.type === 'COMPLETED' && run.hasResult) fields.push(['result', toJson(run.result)]);
  const width = Math.max(...fields.map(([label]) => label.length));
  const lines = [`flow run '${run.name}' (${run.id})`, ...fields.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`), ''];
  if (taskRuns.length === 0 && subflows.length === 0) {
    lines.push('no task runs');
  } else {
    const title = subflows.length === 0 ? `task runs (${taskRuns.length}):` : `task runs (${taskRuns.length}) and subflow runs (${subflows.length}), in call order:`;
    lines.push(title);
    // A subflow run's own task runs are shown by `runs show` of its id, which its row gives.
    // Calls are numbered from 1, as a NonDeterminismError names them (`call #3`); `--json` keeps
    // each one's `position`, from 0.
    const callNumber = (position: number) => String(position + 1);
    const calls = [
      ...taskRuns.map((task) => ({
        position: task.position ?? -1,
        row: [task.position === undefined ? NONE : callNumber(task.position), task.name, task.state.name, String(task.attempt), task.worker ?? NONE, formatSpan(task, now), describeError(task) ?? ''],
      })),
      ...subflows.map(({ position, run: subflow }) => ({
        position,
        row: [callNumber(position), `${subflow.name} (subflow '${subflow.flowName}', ${subflow.id})`, subflow.state.name, String(subflow.attempt), NONE, formatSpan(subflow, now), describeError(subflow) ?? ''],
      })),
    ].sort((a, b) => a.position - b.position);
    lines.push(indent(formatTable(['#', 'NAME', 'STATE', 'ATTEMPT', 'WORKER', 'DURATION', 'ERROR'], calls.map((call) => call.row))));
  }
  return lines.join('\n');
}

/** `ParameterValidationError: steps: Too small`, from the run's error or its state's message; one line. */
export function describeError(record: { error?: RecordedError; state: FlowRunRecord['state'] }): string | undefined {
  const name = record.error?.name ?? record.state.errorName;
  const message = record.error?.message ?? record.state.message;
  if (message === undefined || message === '') return undefined;
  const text = oneLine(message);
  return name && !text.startsWith(`${name}:`) ? `${name}: ${text}` : text;
}

/** A flow's result as `tenaz run` prints it: JSON indented by two spaces (see `toJson`). */
export function toResultJson(value: unknown): string {
  return toJson(value, 2);
}

/** `850ms`, `12.3s`, `4m 05s`, `2h 03m`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  const seconds = Math.floor(ms / 1_000);
  if (seconds < 3_600) return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3_600)}h ${String(Math.floor(seconds / 60) % 60).padStart(2, '0')}m`;
}

/** `2026-11-23 18:02:04` in local time, or `-`. */
export function formatTime(ms: number | undefined): string {
  if (ms === undefined) return NONE;
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** When the latest attempt began running; undefined when it has not (yet). */
function startOf(record: FlowRunRecord | TaskRunRecord): number | undefined {
  return record.history.find((state) => state.attempt === record.attempt && state.type === 'RUNNING')?.timestamp;
}

function formatSpan(record: FlowRunRecord | TaskRunRecord, now: number): string {
  const start = startOf(record);
  if (start === undefined) return NONE;
  const end = isTerminal(record.state.name) ? record.state.timestamp : now;
  return formatDuration(end - start);
}

/** Columns padded to their widest cell, two spaces apart; the last one is not padded. */
function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [header, ...rows].map(line).join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

/** A message may hold newlines (a stack, zod's issue list); a field must stay one line. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}
