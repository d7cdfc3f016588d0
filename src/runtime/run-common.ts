/** What flow runs and task runs do alike when they change state and when they end. */
import type { Logger } from 'pino';
import { STATE_TYPE_BY_NAME, type RunState, type StateError, type StateName } from '../../actors/state.js';
import { CrashedError, toWireError } from '../errors.js';
import type { HookInfo, ResolvedPolicy, RunHook } from '../options.js';
import { MAX_TIMER_MS, computeRetryDelay } from '../retry.js';

/** States that carry the failure that led to them. */
const FAILURE_STATES: ReadonlySet<StateName> = new Set<StateName>(['AwaitingRetry', 'Failed', 'TimedOut', 'Crashed', 'Cancelled']);

/** The state a run publishes on entering `name`. */
export function makeRunState(name: StateName, timestamp: number, attempt: number, failure: StateError | undefined): RunState {
  const state: RunState = { type: STATE_TYPE_BY_NAME[name], name, timestamp, attempt };
  if (failure && FAILURE_STATES.has(name)) {
    state.message = failure.message;
    state.errorName = failure.name;
    state.errorCode = failure.code;
  }
  return state;
}

/** The hooks a terminal state calls: completion hooks, failure hooks, or none for a cancelled run. */
export function hooksFor(policy: ResolvedPolicy, state: RunState): RunHook[] {
  if (state.type === 'COMPLETED') return policy.onCompletion;
  return state.name === 'Cancelled' ? [] : policy.onFailure;
}

/**
 * How long a run waits for one of its hooks, in ms: a hook that never settles must not hold
 * its run's result (and whatever awaits it) for ever. It goes on in the background.
 */
export const HOOK_TIME_LIMIT_MS = 30_000;

/** Calls each hook in turn; a hook that throws is logged and changes nothing, one that hangs is left behind. */
export async function runHooks(hooks: RunHook[], info: HookInfo, logger: Logger, timeLimitMs = HOOK_TIME_LIMIT_MS): Promise<void> {
  for (const hook of hooks) {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      // Not unref'd: while a hook runs, the run's result waits for this timer, and a process with
      // nothing else left to do would otherwise exit before either the hook or the result came.
      timer = setTimeout(() => resolve('late'), timeLimitMs);
    });
    try {
      const outcome = await Promise.race([Promise.resolve().then(() => hook(info)), late]);
      if (outcome === 'late') {
        logger.warn(`A hook of ${info.kind} run '${info.runName}' did not settle within ${timeLimitMs} ms; the run goes on without waiting for it`);
      }
    } catch (err) {
      logger.error({ err }, `A hook of ${info.kind} run '${info.runName}' failed; the run's state is unchanged`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The delay before the retry after failed attempt `attempt`, by the run's policy; a delay
 * function that throws, or a delay past the longest timer, is told in the run's log.
 */
export function retryDelayOf(policy: ResolvedPolicy, attempt: number, random: () => number, logger: Logger): number {
  return computeRetryDelay(
    policy.retryDelayMs,
    attempt,
    policy.retryJitterFactor,
    random,
    (err) => logger.error({ err }, 'retryDelayMs threw; retrying without delay'),
    (requestedMs) => logger.warn({ requestedMs, delayMs: MAX_TIMER_MS }, 'the retry delay is over the timer limit; waiting the limit'),
  );
}

/**
 * Publishes the `Crashed` state of a run whose actor failed inside tenaz. What failed may be the
 * publishing itself: the caller, an observer of the actor's error, must not throw, or XState
 * throws it again where nothing catches it and the process dies. So a failure here is logged.
 */
export function publishCrash(publish: () => void, logger: Logger, what: string): void {
  try {
    publish();
  } catch (err) {
    logger.error({ err }, `Could not publish the Crashed state of ${what}`);
  }
}

/** The `Crashed` state of a run whose actor failed inside tenaz with `err`. */
export function makeCrashedState(err: unknown, timestamp: number, attempt: number): RunState {
  const message = err instanceof Error ? err.message : String(err);
  return makeRunState('Crashed', timestamp, attempt, toWireError(new CrashedError(message)));
}
