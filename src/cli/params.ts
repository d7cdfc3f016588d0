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
  return parseValues(parseParamTexts(pairs));
}

/**
 * Splits repeated `key=value` pairs into each value's text, by key.
 * @example parseParamTexts(['label=123']) // Map { label => '123' }
 */
export function parseParamTexts(pairs: readonly string[]): Map<string, string> {
  const texts = new Map<string, string>();
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const key = at < 0 ? '' : pair.slice(0, at).trim();
    if (key === '') throw new CliError(`bad --param '${pair}': expected key=value`);
    if (texts.has(key)) throw new CliError(`parameter '${key}' is given twice`);
    texts.set(key, pair.slice(at + 1));
  }
  return texts;
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
 * The argument list for a flow run from `--param` texts by key: each value parsed as
 * `parseParamValue` does, except where the flow's zod schema declares a string, which gets
 * the text as written. A parameter the flow does not take or its schema rejects is a
 * `CliError`, raised before the run starts.
 */
export function toFlowArgs(definition: FlowDefinition, texts: ReadonlyMap<string, string>): unknown[] {
  try {
    return mapFlowArgs(definition, parseValues(texts), texts);
  } catch (error) {
    if (error instanceof ParameterValidationError) throw new CliError(error.message, { cause: error });
    throw error;
  }
}

/** Each `--param` text read as its value: JSON when it parses, else the text itself. */
export function parseValues(texts: ReadonlyMap<string, string>): ParamValues {
  return new Map([...texts].map(([key, text]) => [key, parseParamValue(text)]));
}
