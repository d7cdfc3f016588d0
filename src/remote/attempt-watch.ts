/**
 * The owner's failure detector for the attempts it runs on workers: it says
 * when the heartbeats of a claimed attempt have stopped for `heartbeatTimeoutMs`
 * (the worker is gone), and when a dispatched attempt has waited
 * `claimWarningMs` for a worker (and again every `claimWarningMs` after).
 *
 * One sweep for every attempt rather than a timer each: an owner holds
 * thousands of attempts at once, and a timer per attempt cost more than the
 * rest of its bookkeeping. What a crash means stays the task-run machine's
 * decision; this only tells it, as an Erlang monitor sends `DOWN`.
 */
export interface AttemptWatchOptions {
  heartbeatTimeoutMs: number;
  claimWarningMs: number;
  now: () => number;
  /** The heartbeats of `attempt` stopped. */
  crashed(taskRunId: string, attempt: number): void;
  /** `attempt` has waited `claimWarningMs` more for a worker. */
  unclaimed(taskRunId: string, attempt: number): void;
}

interface Watched {
  readonly attempt: number;
  /** When it was dispatched, claimed or last heard of, in ms. */
  since: number;
}

/**
 * The sweep runs every twelfth of the heartbeat timeout, and at least this often, in ms:
 * a crash is found that much after its deadline at worst, half of it on average. The
 * sweep stops at the first attempt not yet due, so running it often costs little.
 */
const MAX_SWEEP_MS = 250;

export class AttemptWatch {
  readonly #options: AttemptWatchOptions;
  readonly #sweepMs: number;
  /** Dispatched attempts no worker claimed yet, the longest waiting first. */
  readonly #waiting = new Map<string, Watched>();
  /** Claimed attempts, the longest unheard first. */
  readonly #running = new Map<string, Watched>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: AttemptWatchOptions) {
    this.#options = options;
    this.#sweepMs = Math.max(10, Math.min(options.heartbeatTimeoutMs / 12, MAX_SWEEP_MS));
  }

  dispatched(taskRunId: string, attempt: number): void {
    this.#running.delete(taskRunId);
    this.#waiting.delete(taskRunId);
    this.#waiting.set(taskRunId, { attempt, since: this.#options.now() });
    this.#arm();
  }

  claimed(taskRunId: string, attempt: number): void {
    this.#waiting.delete(taskRunId);
    this.#running.delete(taskRunId);
    this.#running.set(taskRunId, { attempt, since: this.#options.now() });
    this.#arm();
  }

  /** A heartbeat of `attempt`; one of any other attempt says nothing. */
  heard(taskRunId: string, attempt: number): void {
    const watched = this.#running.get(taskRunId);
    if (watched === undefined || watched.attempt !== attempt) return;
    // Moved to the end: the map stays in the order of last hearing.
    this.#running.delete(taskRunId);
    watched.since = this.#options.now();
    this.#running.set(taskRunId, watched);
  }

  /** While this owner cannot hear its workers, it vouches for every attempt they hold. */
  vouchForAll(): void {
    const now = this.#options.now();
    for (const watched of this.#running.values()) watched.since = now;
  }

  /** The attempt is over (or given up); nothing more is said of it. */
  forget(taskRunId: string, attempt?: number): void {
    for (const watched of [this.#waiting, this.#running]) {
      if (attempt === undefined || watched.get(taskRunId)?.attempt === attempt) watched.delete(taskRunId);
    }
    if (this.#waiting.size === 0 && this.#running.size === 0) this.#disarm();
  }

  close(): void {
    this.#disarm();
    this.#waiting.clear();
    this.#running.clear();
  }

  /** Says what is overdue now; run by the timer, and by tests with a clock of their own. */
  sweep(): void {
    const { heartbeatTimeoutMs, claimWarningMs, now: clock } = this.#options;
    const now = clock();
    const lost: Array<[string, number]> = [];
    for (const [taskRunId, watched] of this.#running) {
      if (now - watched.since < heartbeatTimeoutMs) break;
      lost.push([taskRunId, watched.attempt]);
    }
    for (const [taskRunId] of lost) this.#running.delete(taskRunId);
    const late: Array<[string, Watched]> = [];
    for (const [taskRunId, watched] of this.#waiting) {
      if (now - watched.since < claimWarningMs) break;
      late.push([taskRunId, watched]);
    }
    // Warned again `claimWarningMs` from now, if nobody takes it meanwhile.
    for (const [taskRunId, watched] of late) {
      this.#waiting.delete(taskRunId);
      watched.since = now;
      this.#waiting.set(taskRunId, watched);
    }
    for (const [taskRunId, attempt] of lost) this.#options.crashed(taskRunId, attempt);
    for (const [taskRunId, watched] of late) this.#options.unclaimed(taskRunId, watched.attempt);
    if (this.#waiting.size === 0 && this.#running.size === 0) this.#disarm();
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.sweep(), this.#sweepMs);
    this.#timer.unref();
  }

  #disarm(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
