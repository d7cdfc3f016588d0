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

/**
 * Definitions by name, on globalThis: two copies of tenaz loaded in one process
 * must see the same ones. Several under one name when a name was reused.
 */
function globalRegistry<D extends TaskDefinition | FlowDefinition>(key: symbol): Map<string, D[]> {
  const globals = globalThis as { [key: symbol]: Map<string, D[]> | undefined };
  return (globals[key] ??= new Map<string, D[]>());
}

function register<D extends TaskDefinition | FlowDefinition>(registry: Map<string, D[]>, definition: D): void {
  const name = definition.options.name;
  const list = registry.get(name);
  if (list === undefined) registry.set(name, [definition]);
  else list.push(definition);
}

// Every task defined in this process, so that a worker can serve the tasks of a file
// without the file exporting each one.
const taskRegistry = globalRegistry<TaskDefinition>(Symbol.for('tenaz.taskRegistry'));
// Every flow defined in this process: what a process serves when told to serve "the
// flows of this file", and how a run queued by name finds its code.
const flowRegistry = globalRegistry<FlowDefinition>(Symbol.for('tenaz.flowRegistry'));

export function registerTask(definition: TaskDefinition): void {
  register(taskRegistry, definition);
}

export function registerFlow(definition: FlowDefinition): void {
  register(flowRegistry, definition);
}

/** The tasks defined so far in this process, by name; more than one definition when a name was reused. */
export function registeredTasks(): ReadonlyMap<string, readonly TaskDefinition[]> {
  return taskRegistry;
}

/** The flows defined so far in this process, by name; more than one definition when a name was reused. */
export function registeredFlows(): ReadonlyMap<string, readonly FlowDefinition[]> {
  return flowRegistry;
}
