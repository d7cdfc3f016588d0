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
 * (numbers, booleans, null, arrays, objects), else the text as given; an integer
 * too large for a number to hold exactly stays its digits, as a string.
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

/**
 * A `--param` value: JSON when it parses, else the string itself. An integer beyond
 * `Number.MAX_SAFE_INTEGER` (or a number beyond the largest double), alone or inside an
 * array or object, becomes its text rather than a rounded number: `id=12345678901234567890`
 * is the string '12345678901234567890', not 12345678901234567000. Such a value is nearly
 * always an id, which rounding would silently turn into another one; as text it is exact,
 * a zod `z.string()` or `z.coerce.bigint()` field takes it, and a `z.number()` field refuses
 * it before the run starts (see `toFlowArgs`).
 * @example parseParamValue('[1, 12345678901234567890]') // [1, '12345678901234567890']
 */
export function parseParamValue(text: string): unknown {
  try {
    return JSON.parse(quoteInexactNumbers(text));
  } catch {
    return text;
  }
}

/** A JSON number token where `lastIndex` says (sticky), with its fraction and its exponent as groups 1 and 2. */
const NUMBER_TOKEN = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/** `text` with every number token a double cannot hold quoted as a string; strings inside are skipped over. */
function quoteInexactNumbers(text: string): string {
  let out = '';
  let at = 0;
  while (at < text.length) {
    const char = text[at]!;
    if (char === '"') {
      let end = at + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      out += text.slice(at, end + 1);
      at = end + 1;
      continue;
    }
    NUMBER_TOKEN.lastIndex = at;
    const match = char === '-' || (char >= '0' && char <= '9') ? NUMBER_TOKEN.exec(text) : null;
    if (match === null) {
      out += char;
      at += 1;
      continue;
    }
    const token = match[0];
    out += isInexact(token, match[1] === undefined && match[2] === undefined) ? `"${token}"` : token;
    at += token.length;
  }
  return out;
}

/** An integer literal beyond 2^53 - 1, which a double rounds; any number beyond the largest double. */
function isInexact(token: string, isInteger: boolean): boolean {
  const value = Number(token);
  return !Number.isFinite(value) || (isInteger && !Number.isSafeInteger(value));
}

/** The keys whose value is JSON holding a number that `parseParamValue` kept as text. */
function inexactKeys(texts: ReadonlyMap<string, string>): string[] {
  return [...texts]
    .filter(([, text]) => {
      const quoted = quoteInexactNumbers(text);
      return quoted !== text && isJson(quoted);
    })
    .map(([key]) => key);
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
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
    if (!(error instanceof ParameterValidationError)) throw error;
    // A number the schema wanted, given too large to be one: say why it arrived as text.
    const inexact = inexactKeys(texts);
    const note = inexact.length === 0 ? '' : ` (${inexact.join(', ')}: too large for a number to hold exactly, so kept as text; declare z.string() or z.coerce.bigint() to take it)`;
    throw new CliError(`${error.message}${note}`, { cause: error });
  }
}

/** Each `--param` text read as its value: JSON when it parses, else the text itself. */
export function parseValues(texts: ReadonlyMap<string, string>): ParamValues {
  return new Map([...texts].map(([key, text]) => [key, parseParamValue(text)]));
}
