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

// Every task defined in this process, by name, so that a worker can serve the tasks
// of a file without the file exporting each one. On globalThis, as two copies of
// tenaz loaded in one process must see the same tasks.
const REGISTRY_KEY = Symbol.for('tenaz.taskRegistry');
const globals = globalThis as { [REGISTRY_KEY]?: Map<string, TaskDefinition[]> };
const registry = (globals[REGISTRY_KEY] ??= new Map<string, TaskDefinition[]>());

export function registerTask(definition: TaskDefinition): void {
  const name = definition.options.name;
  const list = registry.get(name);
  if (list === undefined) registry.set(name, [definition]);
  else list.push(definition);
}

/** The tasks defined so far in this process, by name; more than one definition when a name was reused. */
export function registeredTasks(): ReadonlyMap<string, readonly TaskDefinition[]> {
  return registry;
}

// Every flow defined in this process, by name: what a process serves when told to
// serve "the flows of this file", and how a run queued by name finds its code.
const FLOW_REGISTRY_KEY = Symbol.for('tenaz.flowRegistry');
const flowGlobals = globalThis as { [FLOW_REGISTRY_KEY]?: Map<string, FlowDefinition[]> };
const flowRegistry = (flowGlobals[FLOW_REGISTRY_KEY] ??= new Map<string, FlowDefinition[]>());

export function registerFlow(definition: FlowDefinition): void {
  const name = definition.options.name;
  const list = flowRegistry.get(name);
  if (list === undefined) flowRegistry.set(name, [definition]);
  else list.push(definition);
}

/** The flows defined so far in this process, by name; more than one definition when a name was reused. */
export function registeredFlows(): ReadonlyMap<string, readonly FlowDefinition[]> {
  return flowRegistry;
}
