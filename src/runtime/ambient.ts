/**
 * The ambient default orchestrator: what `await myFlow()` runs on when no
 * orchestrator is given, created on first use with an in-memory bus and store.
 */
import { Orchestrator, type OrchestratorOptions } from './orchestrator.js';

// Kept on globalThis so that two copies of tenaz loaded in one process share it.
const AMBIENT_KEY = Symbol.for('tenaz.ambientOrchestrator');
const globals = globalThis as { [AMBIENT_KEY]?: Orchestrator };

/** The ambient orchestrator, created on first use. */
export function getDefaultOrchestrator(options?: OrchestratorOptions): Orchestrator {
  return (globals[AMBIENT_KEY] ??= new Orchestrator(options));
}

/** Makes `orchestrator` the ambient one (the CLI and tests do this); returns the previous one. */
export function setDefaultOrchestrator(orchestrator: Orchestrator | undefined): Orchestrator | undefined {
  const previous = globals[AMBIENT_KEY];
  globals[AMBIENT_KEY] = orchestrator;
  return previous;
}
