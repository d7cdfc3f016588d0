/**
 * What callers hold: a handle on a flow run and a future of a task run. Both
 * settle without unhandled rejections: an unobserved failure stays quiet.
 */
import type { RunState } from '../../actors/state.js';
import type { FlowRunRuntime } from './flow-run.js';
import type { TaskRunRuntime } from './task-run.js';

/** A started flow run. */
export class FlowRun<R = unknown> {
  readonly #run: FlowRunRuntime;

  constructor(run: FlowRunRuntime) {
    this.#run = run;
  }

  /** The flow run id (a UUID). */
  get id(): string {
    return this.#run.id;
  }
  /** The run name, e.g. 'light-potoo'. */
  get name(): string {
    return this.#run.name;
  }
  get flowName(): string {
    return this.#run.flowName;
  }
  /** The latest state; undefined only before the run has published its first. */
  get state(): RunState | undefined {
    return this.#run.state;
  }
  /** The flow's return value; rejects with the error the run ended with. */
  result(): Promise<R> {
    return this.#run.result() as Promise<R>;
  }
  /** Resolves with the terminal state. Never rejects. */
  wait(): Promise<RunState> {
    return this.#run.settled;
  }
  /** Cancels the run: every running task body's signal is aborted; the run ends `Cancelled`. */
  cancel(reason?: string): void {
    this.#run.cancel(reason);
  }
}

/** A submitted task run. Await it (it is a thenable) or call `result()`. */
export class TaskFuture<R = unknown> implements PromiseLike<R> {
  readonly #run: TaskRunRuntime;

  constructor(run: TaskRunRuntime) {
    this.#run = run;
  }

  /** The task run id (a UUID). */
  get id(): string {
    return this.#run.id;
  }
  /** The task run name, e.g. 'call-api-0'. */
  get name(): string {
    return this.#run.name;
  }
  get taskName(): string {
    return this.#run.definition.options.name;
  }
  get state(): RunState | undefined {
    return this.#run.state;
  }
  result(): Promise<R> {
    return this.#run.result() as Promise<R>;
  }
  /** Resolves with the terminal state. Never rejects. */
  wait(): Promise<RunState> {
    return this.#run.settled;
  }
  cancel(reason?: string): void {
    this.#run.cancel(reason);
  }
  then<T1 = R, T2 = never>(
    onFulfilled?: ((value: R) => T1 | PromiseLike<T1>) | null,
    onRejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null,
  ): Promise<T1 | T2> {
    return this.result().then(onFulfilled, onRejected);
  }
}
