/**
 * Task and flow options, and their resolution into the `Resolved…` forms the
 * runtime uses. Resolution happens once, when a task or flow is defined, so a
 * bad option fails at definition with an `InvalidArgumentError` naming it.
 */
import { distance } from 'fastest-levenshtein';
import type { ZodType } from 'zod';
import type { RunState } from '../actors/state.js';
import { InvalidArgumentError } from './errors.js';
import { encodeToken } from './subjects.js';
import { assertFiniteNonNegative, assertNonNegativeInteger, assertTimerMs, validateRetryDelay, type RetryDelay } from './retry.js';

/** Decides whether an error may be retried. */
export type RetryOn = (error: Error) => boolean;

/** A hook called when a run reaches a terminal state. Errors it throws are logged, never change the run. */
export type RunHook = (info: HookInfo) => void | Promise<void>;

export interface HookInfo {
  kind: 'flow' | 'task';
  runId: string;
  runName: string;
  name: string;
  state: RunState;
  /** The result, on completion. */
  result?: unknown;
  /** The error, on failure. */
  error?: Error;
}

interface CommonOptions {
  /** Name of the task or flow; appears in logs, events and subjects. Any characters. */
  name: string;
  /** Retries after the first attempt. Must be a non-negative integer. @default 0 */
  retries?: number;
  /** Delay before each retry, in ms: a number, one per retry (last repeats), or a function of the failed attempt. @default 0 */
  retryDelayMs?: RetryDelay;
  /** Spreads each retry delay by ±factor, e.g. 0.2 for ±20%. Must be a finite non-negative number. @default 0 */
  retryJitterFactor?: number;
  /** Which errors are retried. @default every error that is not a tenaz misuse or validation error */
  retryOn?: RetryOn;
  /** Time limit for each attempt, in ms; the attempt's signal is aborted when it passes. @default none */
  timeoutMs?: number;
  /** Called when the run completes (or is cached). */
  onCompletion?: RunHook | RunHook[];
  /** Called when the run ends failed, timed out or crashed. */
  onFailure?: RunHook | RunHook[];
  /** Free-form labels, carried in events. */
  tags?: string[];
}

export interface TaskOptions<A extends unknown[] = unknown[]> extends CommonOptions {
  /**
   * A cache key computed from the arguments: a later run with the same key,
   * within `cacheExpirationMs`, returns the earlier result in state `Cached`.
   */
  cacheKey?: (...args: A) => string;
  /** How long a cached result stays valid, in ms. @default forever */
  cacheExpirationMs?: number;
  /** Which worker pool may run the task (NATS mode). @default 'default' */
  pool?: string;
  /** Restarts allowed after crashes (the worker died), separate from `retries`. @default 1 */
  crashRestarts?: number;
}

export interface SupervisorOptions {
  /** At most this many task restarts... @default 1000 */
  maxRestarts?: number;
  /** ...within this window, in ms, before escalating to the flow run. @default 60000 */
  windowMs?: number;
}

export interface FlowOptions<P = unknown> extends CommonOptions {
  /**
   * A zod schema for the parameters. An object schema validates (and may
   * coerce or default) the flow's single argument; a tuple schema validates the
   * argument list. Bad parameters fail the run before any task runs.
   */
  params?: ZodType<P>;
  /** Run name: a template with `{param}` placeholders, or a function of the arguments. @default adjective-animal */
  runName?: string | ((...args: unknown[]) => string);
  /** Restart-intensity limit of the flow run's supervisor. */
  supervisor?: SupervisorOptions;
  /** How long a cancelled run waits for its body to settle, in ms. @default 10000 */
  cancelGraceMs?: number;
}

export interface ResolvedPolicy {
  name: string;
  retries: number;
  retryDelayMs: RetryDelay;
  retryJitterFactor: number;
  retryOn: RetryOn | undefined;
  timeoutMs: number | undefined;
  onCompletion: RunHook[];
  onFailure: RunHook[];
  tags: string[];
}

export interface ResolvedTaskOptions extends ResolvedPolicy {
  cacheKey: ((...args: unknown[]) => string) | undefined;
  cacheExpirationMs: number | undefined;
  pool: string;
  crashRestarts: number;
}

export interface ResolvedFlowOptions extends ResolvedPolicy {
  params: ZodType | undefined;
  runName: string | ((...args: unknown[]) => string) | undefined;
  maxRestarts: number;
  restartWindowMs: number;
  cancelGraceMs: number;
}

export const DEFAULT_MAX_RESTARTS = 1000;
export const DEFAULT_RESTART_WINDOW_MS = 60_000;
export const DEFAULT_CANCEL_GRACE_MS = 10_000;
export const DEFAULT_POOL = 'default';

// Every option a task or flow takes, so that a misspelt one (`retry: 3`) is refused rather
// than ignored. Records over the interfaces' keys: adding an option without listing it fails to compile.
export type AllKeys<T> = { readonly [K in keyof Required<T>]: true };
const COMMON_KEYS: AllKeys<CommonOptions> = {
  name: true, retries: true, retryDelayMs: true, retryJitterFactor: true, retryOn: true, timeoutMs: true, onCompletion: true, onFailure: true, tags: true,
};
const TASK_KEYS: ReadonlySet<string> = new Set(Object.keys({ ...COMMON_KEYS, cacheKey: true, cacheExpirationMs: true, pool: true, crashRestarts: true } satisfies AllKeys<TaskOptions>));
const FLOW_KEYS: ReadonlySet<string> = new Set(Object.keys({ ...COMMON_KEYS, params: true, runName: true, supervisor: true, cancelGraceMs: true } satisfies AllKeys<FlowOptions>));
const SUPERVISOR_KEYS: ReadonlySet<string> = new Set(Object.keys({ maxRestarts: true, windowMs: true } satisfies AllKeys<SupervisorOptions>));

function toHooks(field: string, value: RunHook | RunHook[] | undefined): RunHook[] {
  const hooks = value === undefined ? [] : Array.isArray(value) ? value : [value];
  hooks.forEach((hook, i) => {
    if (typeof hook !== 'function') throw new InvalidArgumentError(`${field}[${i}] must be a function`);
  });
  return hooks;
}

function resolvePolicy(kind: 'task' | 'flow', options: CommonOptions): ResolvedPolicy {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(`${kind}() needs an options object with a name`);
  }
  const { name } = options;
  if (typeof name !== 'string' || name.trim() === '') {
    throw new InvalidArgumentError(`${kind} name must be a non-empty string`);
  }
  // Refused now, not when the first run publishes under it (a name cut inside an emoji).
  try {
    encodeToken(name);
  } catch (error) {
    throw new InvalidArgumentError(`${kind} name ${JSON.stringify(name)}: ${(error as Error).message}`, { cause: error });
  }
  const at = `${kind} '${name}':`;
  assertKnownKeys(`${at} unknown ${kind} option`, options, kind === 'task' ? TASK_KEYS : FLOW_KEYS);
  const retries = options.retries ?? 0;
  assertNonNegativeInteger(`${at} retries`, retries);
  const retryDelayMs = options.retryDelayMs ?? 0;
  validateRetryDelay(`${at} retryDelayMs`, retryDelayMs);
  const retryJitterFactor = options.retryJitterFactor ?? 0;
  // Infinity would make each delay 0 or MAX_TIMER_MS at random, and 0 * Infinity is NaN.
  assertFiniteNonNegative(`${at} retryJitterFactor`, retryJitterFactor);
  if (options.retryOn !== undefined && typeof options.retryOn !== 'function') {
    throw new InvalidArgumentError(`${at} retryOn must be a function`);
  }
  if (options.timeoutMs !== undefined) assertTimerMs(`${at} timeoutMs`, options.timeoutMs, { positive: true });
  const tags = options.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string')) {
    throw new InvalidArgumentError(`${at} tags must be a list of strings, got ${describe(tags)}`);
  }
  return {
    name,
    retries,
    retryDelayMs,
    retryJitterFactor,
    retryOn: options.retryOn,
    timeoutMs: options.timeoutMs,
    onCompletion: toHooks(`${at} onCompletion`, options.onCompletion),
    onFailure: toHooks(`${at} onFailure`, options.onFailure),
    tags: [...tags],
  };
}

export function resolveTaskOptions(options: TaskOptions<never[]>): ResolvedTaskOptions {
  const policy = resolvePolicy('task', options);
  const at = `task '${policy.name}':`;
  if (options.cacheKey !== undefined && typeof options.cacheKey !== 'function') {
    throw new InvalidArgumentError(`${at} cacheKey must be a function of the arguments`);
  }
  // Not a timer: the store compares an entry's expiry time with the clock, so it may be as long as one likes.
  if (options.cacheExpirationMs !== undefined) assertPositive(`${at} cacheExpirationMs`, options.cacheExpirationMs);
  const crashRestarts = options.crashRestarts ?? 1;
  assertNonNegativeInteger(`${at} crashRestarts`, crashRestarts);
  const pool = options.pool ?? DEFAULT_POOL;
  if (typeof pool !== 'string' || pool === '') throw new InvalidArgumentError(`${at} pool must be a non-empty string`);
  return {
    ...policy,
    cacheKey: options.cacheKey as ((...args: unknown[]) => string) | undefined,
    cacheExpirationMs: options.cacheExpirationMs,
    pool,
    crashRestarts,
  };
}

export function resolveFlowOptions(options: FlowOptions<never>): ResolvedFlowOptions {
  const policy = resolvePolicy('flow', options);
  const at = `flow '${policy.name}':`;
  if (options.params !== undefined && typeof (options.params as ZodType).safeParse !== 'function') {
    throw new InvalidArgumentError(`${at} params must be a zod schema`);
  }
  const runName = options.runName;
  if (runName !== undefined && typeof runName !== 'string' && typeof runName !== 'function') {
    throw new InvalidArgumentError(`${at} runName must be a string template or a function`);
  }
  const supervisor = options.supervisor ?? {};
  if (supervisor === null || typeof supervisor !== 'object') {
    throw new InvalidArgumentError(`${at} supervisor must be an object { maxRestarts, windowMs }, got ${describe(supervisor)}`);
  }
  assertKnownKeys(`${at} unknown supervisor option`, supervisor, SUPERVISOR_KEYS);
  const maxRestarts = supervisor.maxRestarts ?? DEFAULT_MAX_RESTARTS;
  assertNonNegativeInteger(`${at} supervisor.maxRestarts`, maxRestarts);
  // Not a timer: the supervisor compares restart times with it, so it may be as long as one likes.
  const restartWindowMs = supervisor.windowMs ?? DEFAULT_RESTART_WINDOW_MS;
  assertPositive(`${at} supervisor.windowMs`, restartWindowMs);
  const cancelGraceMs = options.cancelGraceMs ?? DEFAULT_CANCEL_GRACE_MS;
  assertTimerMs(`${at} cancelGraceMs`, cancelGraceMs);
  return { ...policy, params: options.params as ZodType | undefined, runName, maxRestarts, restartWindowMs, cancelGraceMs };
}

function assertPositive(field: string, value: unknown): void {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new InvalidArgumentError(`${field} must be a positive finite number, got ${String(value)}`);
  }
}

/** Refuses a key `known` does not hold, naming the nearest known one when there is one near enough. */
export function assertKnownKeys(what: string, options: object, known: ReadonlySet<string>): void {
  for (const key of Object.keys(options)) {
    if (known.has(key)) continue;
    const closest = closestKey(key, known);
    throw new InvalidArgumentError(`${what} '${key}'${closest === undefined ? '' : `; did you mean '${closest}'?`} (known: ${[...known].join(', ')})`);
  }
}

/**
 * The known key nearest to a misspelt one, by edit distance, when it is near enough to be the one
 * meant. A plural also counts in the singular: `retry` is nearer `retries` than `retryOn`.
 */
function closestKey(key: string, known: ReadonlySet<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  const lower = key.toLowerCase();
  for (const candidate of known) {
    const name = candidate.toLowerCase();
    const edits = Math.min(distance(lower, name), distance(lower, name.replace(/ies$/, 'y').replace(/s$/, '')));
    if (edits < bestDistance) [best, bestDistance] = [candidate, edits];
  }
  return best;
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `${JSON.stringify(value)} (a string)` : String(value);
}
