/**
 * What `task()` and `flow()` define, as the runtime sees it: the resolved
 * options and the user's function. The callables users hold wrap these.
 */
import type { ResolvedFlowOptions, ResolvedTaskOptions } from '../options.js';

export interface TaskDefinition {
  readonly kind: 'task';
  readonly options: ResolvedTaskOptions;
  readonly fn: (...args: unknown[]) => unknown;
}

export interface FlowDefinition {
  readonly kind: 'flow';
  readonly options: ResolvedFlowOptions;
  readonly fn: (...args: unknown[]) => unknown;
}

/** The user's callables carry their definition under this symbol. */
export const DEFINITION = Symbol.for('tenaz.definition');

export function definitionOf(value: unknown): TaskDefinition | FlowDefinition | undefined {
  if ((typeof value !== 'function' && typeof value !== 'object') || value === null) return undefined;
  return (value as { [DEFINITION]?: TaskDefinition | FlowDefinition })[DEFINITION];
}
