/**
 * Every subject tenaz publishes or subscribes to is built here; call sites never
 * concatenate subjects. User-chosen names and run ids are untrusted, so each one
 * is encoded into a single token that cannot break routing (no `.`, `*`, `>`,
 * whitespace).
 *
 * Layout, with `<ns>` the namespace:
 * - `<ns>.evt.<flow>.<flowRunId>.flow`: flow run events
 * - `<ns>.evt.<flow>.<flowRunId>.task.<task>.<taskRunId>`: task run events
 *   (`_` for the flow and the flow run of a task run outside a flow)
 * - `<ns>.log.<flow>.<flowRunId>.<runId>`: run logs
 * - `<ns>.task.<pool>.<task>`: task dispatch, kept in the JetStream work-queue
 *   stream `<ns>_tasks` and taken through one durable consumer per pool and task
 * - `<ns>.owner.<ownerId>`: workers to the process that owns a task run
 *   (claims, heartbeats, results)
 * - `<ns>.worker.<workerId>`: the owner to a worker (cancel)
 * - `<ns>.ctl.<flowRunId>`: control of a flow run
 */
import { InvalidArgumentError } from './errors.js';

/** The namespace used when none is configured. */
export const DEFAULT_NAMESPACE = 'tenaz';

/** Stands for "no flow" / "no flow run"; `encodeToken` never produces it. */
const ABSENT = '_';
const SAFE_TOKEN = /^[A-Za-z0-9_-]+$/;
const ENCODED_TOKEN = /^(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+$/;
/** Characters `encodeURIComponent` leaves alone but a token must not contain. */
const URI_UNRESERVED_EXTRA = /[.!~*'()]/g;
const CACHE_LIMIT = 10_000;
/** Longer names are encoded every time rather than pinned in the cache. */
const CACHE_MAX_NAME_LENGTH = 256;

// The same flow and task names are encoded on every event: remember them. Cleared
// wholesale when full, which is cheaper than LRU bookkeeping and rarely happens.
const cache = new Map<string, string>();

/**
 * Encodes any non-empty string into one subject token: `[A-Za-z0-9_-]` stay as they
 * are, every other UTF-8 byte becomes `%XX` (uppercase hex). The bare name `_` is
 * encoded as `%5F`, because `_` alone marks an absent flow in subjects.
 * @throws InvalidArgumentError for an empty name or one that is not well-formed UTF-16.
 * @example encodeToken('etl.daily run') // 'etl%2Edaily%20run'
 */
export function encodeToken(name: string): string {
  // Run ids and most names need no escaping: skip the cache, which unique ids would only churn.
  if (typeof name === 'string' && name !== ABSENT && SAFE_TOKEN.test(name)) return name;
  const cached = cache.get(name);
  if (cached !== undefined) return cached;
  const token = encode(name);
  if (name.length <= CACHE_MAX_NAME_LENGTH) {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(name, token);
  }
  return token;
}

function encode(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidArgumentError(`a name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  if (name === ABSENT) return '%5F';
  if (SAFE_TOKEN.test(name)) return name;
  let encoded: string;
  try {
    encoded = encodeURIComponent(name);
  } catch (error) {
    // Lone surrogates have no UTF-8 form; encoding them lossily would merge distinct names.
    throw new InvalidArgumentError('a name must be well-formed unicode (it contains a lone surrogate)', { cause: error });
  }
  return encoded.replace(URI_UNRESERVED_EXTRA, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Decodes a token made by `encodeToken`. Returns null for anything `encodeToken`
 * would not have produced (bad escapes, lowercase hex, invalid UTF-8, needless
 * escapes such as `%41`), so each name has exactly one token and each token one name.
 * @example parseToken('etl%2Edaily') // 'etl.daily'
 */
export function parseToken(token: string): string | null {
  if (typeof token !== 'string' || !ENCODED_TOKEN.test(token)) return null;
  if (!token.includes('%')) return token === ABSENT ? null : token;
  let name: string;
  try {
    name = decodeURIComponent(token);
  } catch {
    return null;
  }
  return encodeToken(name) === token ? name : null;
}

/** Which events an event subscription receives. Unset fields match anything. */
export interface EventFilter {
  /** Only events of flow runs (and their task runs) of this flow. */
  flowName?: string;
  /** Only events of this flow run and its task runs. */
  flowRunId?: string;
  /** Only flow run events or only task run events. */
  kind?: 'flow' | 'task';
}

/** The subject builders of one namespace. Build with `createSubjects`. */
export interface Subjects {
  readonly namespace: string;
  /** Events of a flow run: `<ns>.evt.<flow>.<flowRunId>.flow`. */
  flowEvent(flowName: string, flowRunId: string): string;
  /**
   * Events of a task run: `<ns>.evt.<flow>.<flowRunId>.task.<task>.<taskRunId>`;
   * flow and flow run are `_` for a task run outside a flow.
   */
  taskEvent(flowName: string | undefined, flowRunId: string | undefined, taskName: string, taskRunId: string): string;
  /** Log records of a run: `<ns>.log.<flow>.<flowRunId>.<runId>`, `_` for what is absent. */
  runLog(flowName: string | undefined, flowRunId: string | undefined, runId: string): string;
  /** A subscription pattern for the events that `filter` selects. */
  eventFilter(filter?: EventFilter): string;
  /** Where workers of `pool` take runs of `taskName`: `<ns>.task.<pool>.<task>`. */
  taskDispatch(pool: string, taskName: string): string;
  /** The JetStream stream holding the history of run events: `<ns>_events`. */
  readonly eventsStream: string;
  /** Every dispatch subject: `<ns>.task.>`, the subjects of the tasks stream. */
  readonly allTaskDispatch: string;
  /** The JetStream work-queue stream of task dispatches: `<ns>_tasks`. */
  readonly tasksStream: string;
  /**
   * The durable consumer that workers of `pool` take runs of `taskName` through:
   * `<pool>~<task>` (encoded tokens; `~` never appears in one).
   */
  taskConsumer(pool: string, taskName: string): string;
  /** Where workers send claims, heartbeats and results to the owner of a run: `<ns>.owner.<ownerId>`. */
  owner(ownerId: string): string;
  /** Where the owner of a run sends control messages to a worker: `<ns>.worker.<workerId>`. */
  worker(workerId: string): string;
  /** Control messages (cancel, ...) for a flow run: `<ns>.ctl.<flowRunId>`. */
  control(flowRunId: string): string;
  /** Every flow run's control subject: `<ns>.ctl.*`. */
  readonly allControl: string;
  /** Where flow runs wait for a process that serves their flow: `<ns>.flowq.<flow>`. */
  flowQueue(flowName: string): string;
  /** Every flow queue subject: `<ns>.flowq.>`, the subjects of the flows stream. */
  readonly allFlowQueue: string;
  /** The JetStream work-queue stream of flow runs to take: `<ns>_flows`. */
  readonly flowsStream: string;
  /** The durable consumer that processes serving `flowName` take its runs through: `flow~<flow>`. */
  flowConsumer(flowName: string): string;
}

/**
 * Builds the subjects of a namespace. The namespace is used as is, so it must be
 * a plain token (`[A-Za-z0-9_-]+`).
 * @throws InvalidArgumentError for an invalid namespace.
 * @example
 * const subjects = createSubjects(DEFAULT_NAMESPACE);
 * bus.subscribe(subjects.eventFilter({ flowName: 'etl' }));
 */
export function createSubjects(namespace: string = DEFAULT_NAMESPACE): Subjects {
  if (typeof namespace !== 'string' || !SAFE_TOKEN.test(namespace)) {
    throw new InvalidArgumentError(`namespace must match [A-Za-z0-9_-]+, got ${JSON.stringify(namespace)}`);
  }
  const evt = `${namespace}.evt.`;
  const log = `${namespace}.log.`;
  const task = `${namespace}.task.`;
  const owner = `${namespace}.owner.`;
  const worker = `${namespace}.worker.`;
  const ctl = `${namespace}.ctl.`;
  const flowq = `${namespace}.flowq.`;
  const allEvents = `${evt}>`;

  return Object.freeze({
    namespace,
    flowEvent: (flowName: string, flowRunId: string) => `${evt}${encodeToken(flowName)}.${encodeToken(flowRunId)}.flow`,
    taskEvent: (flowName: string | undefined, flowRunId: string | undefined, taskName: string, taskRunId: string) =>
      `${evt}${optional(flowName)}.${optional(flowRunId)}.task.${encodeToken(taskName)}.${encodeToken(taskRunId)}`,
    runLog: (flowName: string | undefined, flowRunId: string | undefined, runId: string) =>
      `${log}${optional(flowName)}.${optional(flowRunId)}.${encodeToken(runId)}`,
    eventFilter: (filter: EventFilter = {}) => {
      const { flowName, flowRunId, kind } = filter;
      if (kind !== undefined && kind !== 'flow' && kind !== 'task') {
        throw new InvalidArgumentError(`kind must be 'flow' or 'task', got ${JSON.stringify(kind)}`);
      }
      const flow = flowName === undefined ? '*' : encodeToken(flowName);
      const run = flowRunId === undefined ? '*' : encodeToken(flowRunId);
      // Shortest equivalent patterns: every event subject has at least one token after the run.
      if (kind === undefined) {
        if (flowRunId === undefined) return flowName === undefined ? allEvents : `${evt}${flow}.>`;
        return `${evt}${flow}.${run}.>`;
      }
      return `${evt}${flow}.${run}.${kind === 'flow' ? 'flow' : 'task.*.*'}`;
    },
    taskDispatch: (pool: string, taskName: string) => `${task}${encodeToken(pool)}.${encodeToken(taskName)}`,
    eventsStream: `${namespace}_events`,
    allTaskDispatch: `${task}>`,
    tasksStream: `${namespace}_tasks`,
    taskConsumer: (pool: string, taskName: string) => `${encodeToken(pool)}~${encodeToken(taskName)}`,
    owner: (ownerId: string) => `${owner}${encodeToken(ownerId)}`,
    worker: (workerId: string) => `${worker}${encodeToken(workerId)}`,
    control: (flowRunId: string) => `${ctl}${encodeToken(flowRunId)}`,
    allControl: `${ctl}*`,
    flowQueue: (flowName: string) => `${flowq}${encodeToken(flowName)}`,
    allFlowQueue: `${flowq}>`,
    flowsStream: `${namespace}_flows`,
    flowConsumer: (flowName: string) => `flow~${encodeToken(flowName)}`,
  });
}

function optional(name: string | undefined): string {
  return name === undefined ? ABSENT : encodeToken(name);
}
