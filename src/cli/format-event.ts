/**
 * How `tenaz watch` prints run events: one line per event, grep-friendly.
 *
 *   18:02:04.289 | flow etl 'light-potoo' → Running
 *   18:02:04.301 | task double-3 'light-potoo' → Completed
 *   18:02:04.420 | task fetch-0 'light-potoo' → AwaitingRetry (retry in 200 ms): Error: HTTP 503
 *   18:02:04.622 | task fetch-0 'light-potoo' → Running (attempt 2)
 *
 * A flow line names the flow and the run; a task line names the task run and
 * the flow run it belongs to, so that grepping for `'light-potoo'` gives the
 * whole run. With `--json`, each event is printed whole as one JSON object.
 */
import type { StateName } from '../../actors/state.js';
import type { RunEvent } from '../events.js';

/** Turns events into output lines; keeps the flow run names seen, to name them on task lines. */
export type EventFormatter = (event: RunEvent) => string;

export interface EventFormatOptions {
  /** One JSON object per event instead of a line of text. @default false */
  json?: boolean;
  /** Colour the state names. @default false */
  colorize?: boolean;
}

/** Flow run names remembered for task lines; past this, the oldest are forgotten. */
const MAX_REMEMBERED_RUNS = 10_000;

const STATE_COLORS: Partial<Record<StateName, string>> = {
  Running: '34',
  Retrying: '34',
  Completed: '32',
  Cached: '32',
  AwaitingRetry: '33',
  Cancelling: '33',
  Cancelled: '33',
  Paused: '33',
  Failed: '31',
  TimedOut: '31',
  Crashed: '1;31',
};

/**
 * Creates the formatter of one watch session.
 * @example const format = createEventFormatter({ json: false }); for await (const e of events) out.write(`${format(e)}\n`);
 */
export function createEventFormatter(options: EventFormatOptions = {}): EventFormatter {
  if (options.json) return (event) => JSON.stringify(event);
  const colorize = options.colorize ?? false;
  const flowRunNames = new Map<string, string>();
  return (event) => {
    let subject: string;
    if (event.type === 'flow.state') {
      remember(flowRunNames, event.flowRunId, event.flowRunName);
      subject = `flow ${event.flowName} '${event.flowRunName}'`;
    } else {
      // A task run outside any flow has no flow run (undefined, or null once through msgpack).
      const flowRunId = event.flowRunId ?? undefined;
      const flowRun = flowRunId === undefined ? undefined : (flowRunNames.get(flowRunId) ?? flowRunId);
      subject = flowRun === undefined ? `task ${event.taskRunName}` : `task ${event.taskRunName} '${flowRun}'`;
    }
    return `${formatClock(event.state.timestamp)} | ${subject} → ${describeState(event.state, colorize)}`;
  };
}


function describeState(state: RunEvent['state'], colorize: boolean): string {
  const color = colorize ? STATE_COLORS[state.name] : undefined;
  let text = color === undefined ? state.name : `\u001b[${color}m${state.name}\u001b[0m`;
  const notes: string[] = [];
  if (state.attempt > 1) notes.push(`attempt ${state.attempt}`);
  if (state.name === 'AwaitingRetry' && typeof state.scheduledAt === 'number') {
    // An attempt lost with its worker is restarted within the crash budget, not retried.
    const crashed = state.errorCode === 'CRASHED';
    if (crashed) notes.push('crashed');
    notes.push(`${crashed ? 'restart' : 'retry'} in ${Math.max(0, state.scheduledAt - state.timestamp)} ms`);
  }
  if (notes.length > 0) text += ` (${notes.join(', ')})`;
  if (typeof state.message === 'string' && state.message !== '') {
    const name = state.errorName;
    const message = oneLine(state.message);
    text += `: ${name && !message.startsWith(`${name}:`) ? `${name}: ${message}` : message}`;
  }
  return text;
}

/** A message may hold newlines (a stack, a multi-line error); the line must stay one line. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}

function remember(names: Map<string, string>, flowRunId: string, name: string): void {
  if (names.has(flowRunId)) return;
  if (names.size >= MAX_REMEMBERED_RUNS) {
    const oldest = names.keys().next().value;
    if (oldest !== undefined) names.delete(oldest);
  }
  names.set(flowRunId, name);
}

/** `HH:MM:SS.mmm` in local time, as the log lines show it. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
