/**
 * An abort controller made only when a body reads its signal: most bodies
 * never do, and an AbortController per attempt is a measurable cost at tens of
 * thousands of task runs per second. Aborting before the signal exists makes
 * it born aborted, with the same reason.
 */
import { runContextStorage, type InternalRunContext } from './context.js';

export class LazyAbort {
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;
  #context: InternalRunContext | undefined;

  /**
   * The run context the signal's listeners run in: the body's own, wherever the abort comes
   * from (a timer, a cancel from another process), so that a listener may call
   * `getRunLogger()` as the body can. Without it a listener would run in no run's context,
   * and what it throws there takes the process down (Node reports errors of event listeners
   * as uncaught).
   */
  within(context: InternalRunContext): this {
    this.#context = context;
    return this;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Why it was aborted; undefined until it is. */
  get reason(): unknown {
    return this.#reason;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    const controller = this.#controller;
    if (controller === undefined) return;
    if (this.#context === undefined) controller.abort(reason);
    else runContextStorage.run(this.#context, () => controller.abort(reason));
  }
}
