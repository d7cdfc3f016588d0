/**
 * What a task body running on a worker sees through `getRunContext()`: the
 * same shape as in the owner's process, built from the dispatch.
 */
import type { Logger } from 'pino';
import type { FlowRunInfo, InternalRunContext, TaskRunInfo } from '../runtime/context.js';
import type { Orchestrator } from '../runtime/orchestrator.js';
import type { LazyAbort } from '../runtime/lazy-abort.js';
import type { TaskDispatch } from './messages.js';

export class WorkerAttemptContext implements InternalRunContext {
  #logger: Logger | undefined;

  constructor(
    readonly orchestrator: Orchestrator,
    readonly dispatch: TaskDispatch,
    readonly controller: LazyAbort,
    readonly workerLogger: Logger,
  ) {}

  get flowRun(): FlowRunInfo | undefined {
    const { flowRunId, flowRunName, flowName } = this.dispatch;
    if (flowRunId === undefined) return undefined;
    // The flow's parameters stay with its owner; a task gets its own arguments.
    return { id: flowRunId, name: flowRunName ?? flowRunId, flowName: flowName ?? '', parameters: [] };
  }
  get taskRun(): TaskRunInfo {
    const { taskRunId, taskRunName, taskName } = this.dispatch;
    return { id: taskRunId, name: taskRunName, taskName };
  }
  get logger(): Logger {
    const { taskRunId, taskRunName, taskName, flowRunId, flowRunName, flowName, attempt } = this.dispatch;
    this.#logger ??= this.workerLogger.child({ flowRunId, flowRunName, flowName, taskRunId, taskRunName, taskName, attempt });
    return this.#logger;
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  get attempt(): number {
    return this.dispatch.attempt;
  }
  get idempotencyKey(): string {
    return this.dispatch.idempotencyKey;
  }
  /**
   * The task run's depth, from its owner: the body's calls nest below it here as they would
   * there. A dispatch from an owner that does not send it counts as a run called outside any run.
   */
  get depth(): number {
    return this.dispatch.depth ?? 1;
  }
  get flowRunRuntime(): undefined {
    return undefined;
  }
  get taskRunRuntime(): undefined {
    return undefined;
  }
  isAborted(): boolean {
    return this.controller.aborted;
  }
}
