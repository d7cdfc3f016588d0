/**
 * `--param key=value` on the command line, turned into the arguments a flow
 * is called with: one object for a flow with a zod object schema, else its
 * positional parameters matched by name.
 */
import { ParameterValidationError } from '../errors.js';
import type { FlowDefinition } from '../runtime/definitions.js';
import { toFlowArgs as mapFlowArgs, type ParamValues } from '../runtime/flow-args.js';
import { CliError } from './errors.js';

export type { ParamValues } from '../runtime/flow-args.js';

/**
 * Parses repeated `key=value` pairs. The value is JSON when it parses as JSON
 * (numbers, booleans, null, arrays, objects), else the text as given.
 * @example parseParamArgs(['repo=PrefectHQ/prefect', 'limit=5']) // Map { repo => 'PrefectHQ/prefect', limit => 5 }
 */
export function parseParamArgs(pairs: readonly string[]): ParamValues {
  const values = new Map<string, unknown>();
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const key = at < 0 ? '' : pair.slice(0, at).trim();
    if (key === '') throw new CliError(`bad --param '${pair}': expected key=value`);
    if (values.has(key)) throw new CliError(`parameter '${key}' is given twice`);
    values.set(key, parseParamValue(pair.slice(at + 1)));
  }
  return values;
}

/** A `--param` value: JSON when it parses, else the string itself. */
export function parseParamValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The argument list for a flow run; a parameter the flow does not take or its
 * schema rejects is a `CliError`, raised before the run starts.
 */
export function toFlowArgs(definition: FlowDefinition, values: ParamValues): unknown[] {
  try {
    return mapFlowArgs(definition, values);
  } catch (error) {
    if (error instanceof ParameterValidationError) throw new CliError(error.message, { cause: error });
    throw error;
  }
}
