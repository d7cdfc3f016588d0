/**
 * Finds the flow to run among a module's exports: the one `--flow` names
 * (by flow name or export name), else the only one, else the default export.
 */
import type { StartableFlow } from '../runtime/orchestrator.js';
import { definitionOf, type FlowDefinition } from '../runtime/definitions.js';
import { CliError } from './errors.js';

/** A flow exported by the user's file, under one or more export names. */
export interface ExportedFlow {
  readonly flow: StartableFlow<unknown[], unknown>;
  readonly definition: FlowDefinition;
  readonly exportNames: readonly string[];
}

/** Every distinct flow among `exports`; a flow exported twice (e.g. also as default) appears once. */
export function findFlows(exports: Record<string, unknown>): ExportedFlow[] {
  const byValue = new Map<unknown, { definition: FlowDefinition; exportNames: string[] }>();
  for (const [name, value] of Object.entries(exports)) {
    const definition = definitionOf(value);
    if (definition?.kind !== 'flow') continue;
    const entry = byValue.get(value);
    if (entry) entry.exportNames.push(name);
    else byValue.set(value, { definition, exportNames: [name] });
  }
  return [...byValue].map(([value, entry]) => ({ flow: value as StartableFlow<unknown[], unknown>, ...entry }));
}

/** The flow to run, or a `CliError` that lists the flows there are. */
export function selectFlow(exports: Record<string, unknown>, wanted: string | undefined, file: string): ExportedFlow {
  let flows = findFlows(exports);
  // A CommonJS module (a .ts file outside a "type": "module" package) arrives as `{ default: module.exports }`.
  const fallback = exports.default;
  if (flows.length === 0 && typeof fallback === 'object' && fallback !== null) flows = findFlows(fallback as Record<string, unknown>);
  if (flows.length === 0) throw new CliError(`no flow found in ${file}: export a flow made with flow()`);
  if (wanted !== undefined) {
    const matches = flows.filter((f) => f.definition.options.name === wanted || f.exportNames.includes(wanted));
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) throw new CliError(`no flow named '${wanted}' in ${file}; flows: ${describe(flows)}`);
    throw new CliError(`--flow '${wanted}' matches several flows in ${file} (${describe(matches)}); use an export name`);
  }
  if (flows.length === 1) return flows[0]!;
  const byDefault = flows.find((f) => f.exportNames.includes('default'));
  if (byDefault) return byDefault;
  throw new CliError(`${file} exports several flows (${describe(flows)}); choose one with --flow NAME`);
}

function describe(flows: readonly ExportedFlow[]): string {
  return flows
    .map((f) => `'${f.definition.options.name}' (export ${f.exportNames.join(', ')})`)
    .sort()
    .join(', ');
}
