/**
 * Parameters by name (`--param key=value`, `tenaz start --param`, `runs.start(name,
 * { named })`), mapped onto a flow's parameters: one object for a flow with a zod
 * object schema, else its positional parameters matched by name.
 */
import type { ZodType } from 'zod';
import { ParameterValidationError } from '../errors.js';
import type { FlowDefinition } from './definitions.js';
import { parseParameters } from './signature.js';

/** Parameter values by name, in the order given. */
export type ParamValues = ReadonlyMap<string, unknown>;

/**
 * The argument list for a flow run. Unknown names, parameters that cannot be
 * named and values the flow's schema rejects are `ParameterValidationError`s, raised before
 * the run starts. `texts`, when the values were parsed from text (`--param`), holds that
 * text: a field the flow's zod schema declares a string gets it as it was written, so that
 * `label=123` is the string '123' rather than the number 123 the schema would refuse.
 */
export function toFlowArgs(definition: FlowDefinition, values: ParamValues, texts?: ReadonlyMap<string, string>): unknown[] {
  const flowName = definition.options.name;
  const schema = definition.options.params;
  const kind = schemaKind(schema);
  if (kind === 'object') {
    const shape = (schema as unknown as { shape: Record<string, unknown> }).shape;
    checkKnown(flowName, values, Object.keys(shape));
    const params = Object.fromEntries([...values].map(([name, value]) => [name, asDeclared(shape[name], value, texts?.get(name))]));
    validate(flowName, schema, params, [], texts);
    return [params];
  }
  const names = values.size === 0 ? [] : positionalNames(definition);
  checkKnown(flowName, values, names);
  const items = kind === 'tuple' ? defOf(schema)?.items : undefined;
  const args = names.map((name, i) => (values.has(name) ? asDeclared(items?.[i], values.get(name), texts?.get(name)) : undefined));
  // Trailing parameters left out stay out, as in a call written by hand.
  while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
  if (kind === 'tuple') validate(flowName, schema, args, names, texts);
  return args;
}

/**
 * The positional parameters of a flow that have no default and that `given` (values by name)
 * leaves out: a run passes them as `undefined`. Not an error: TypeScript's optional parameters
 * (`b?: number`) have no default either once compiled, so a caller can only be warned. Empty for
 * a flow with a zod schema, which reports a missing field itself, and it skips destructured and
 * rest parameters, which have no name to give.
 */
export function missingParameters(definition: FlowDefinition, given: ReadonlyMap<string, unknown>): string[] {
  if (definition.options.params !== undefined) return [];
  return parseParameters(definition.fn).flatMap((parameter) =>
    parameter.kind === 'identifier' && !parameter.hasDefault && !given.has(parameter.name) ? [parameter.name] : [],
  );
}

/** The parts of a zod 4 schema's `_zod.def` read here. */
interface SchemaDef {
  type?: string;
  innerType?: unknown;
  in?: unknown;
  items?: unknown[];
  options?: unknown[];
  entries?: Record<string, unknown>;
  values?: unknown[];
}

function defOf(schema: unknown): SchemaDef | undefined {
  return (schema as { _zod?: { def?: SchemaDef } } | undefined)?._zod?.def;
}

/** Wrappers that take whatever their inner schema takes (and perhaps null or undefined besides). */
const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'nonoptional', 'readonly', 'catch']);
const EMPTY = new Set(['null', 'undefined']);

/** The value parsed from `text`, or the text itself where the field's schema takes strings only; null stays null where it takes null. */
function asDeclared(field: unknown, value: unknown, text: string | undefined): unknown {
  if (text === undefined || typeof value === 'string' || !takesText(field)) return value;
  return value === null && accepts(field, null) ? null : text;
}

/** Whether a schema takes strings and nothing else but null or undefined. */
function takesText(schema: unknown, depth = 0): boolean {
  const def = defOf(schema);
  // The depth bound only guards against a schema that wraps itself.
  if (def === undefined || depth > 32) return false;
  const isString = (item: unknown) => typeof item === 'string';
  switch (def.type) {
    case 'string':
      return true;
    case 'enum':
      return Object.values(def.entries ?? {}).every(isString);
    case 'literal':
      return (def.values ?? []).every(isString);
    case 'pipe':
      return takesText(def.in, depth + 1);
    case 'union': {
      const options = (def.options ?? []).filter((option) => !EMPTY.has(defOf(option)?.type ?? ''));
      return options.length > 0 && options.every((option) => takesText(option, depth + 1));
    }
    default:
      return WRAPPERS.has(def.type ?? '') && takesText(def.innerType, depth + 1);
  }
}

function accepts(schema: unknown, value: unknown): boolean {
  try {
    return (schema as ZodType).safeParse(value).success;
  } catch {
    // An async refinement: let the run's own validation decide.
    return true;
  }
}

function positionalNames(definition: FlowDefinition): string[] {
  const flowName = definition.options.name;
  return parseParameters(definition.fn).map((parameter) => {
    if (parameter.kind === 'identifier') return parameter.name;
    throw new ParameterValidationError(
      `flow '${flowName}' has a ${parameter.kind} parameter (${parameter.text.slice(0, 40)}) that --param cannot name: ` +
        `declare a zod object schema, flow({ name: '${flowName}', params: z.object({ ... }) }, ...)`,
    );
  });
}

function checkKnown(flowName: string, values: ParamValues, known: readonly string[]): void {
  for (const key of values.keys()) {
    if (!known.includes(key)) {
      const list = known.length === 0 ? 'it takes none' : `known parameters: ${known.join(', ')}`;
      throw new ParameterValidationError(`unknown parameter '${key}' for flow '${flowName}'; ${list}`);
    }
  }
}

/** zod 4 names every schema's kind in `_zod.def.type`; reading it avoids depending on the user's copy of zod. */
function schemaKind(schema: ZodType | undefined): string | undefined {
  return defOf(schema)?.type;
}

/**
 * `positions` names the elements of a tuple schema, whose issues have indexes for paths. An
 * issue with a value that was read as JSON from `texts` says how to pass the text instead.
 */
function validate(flowName: string, schema: ZodType | undefined, input: unknown, positions: readonly string[] = [], texts?: ReadonlyMap<string, string>): void {
  let parsed: ReturnType<ZodType['safeParse']> | undefined;
  try {
    parsed = schema?.safeParse(input);
  } catch {
    // An async refinement cannot be checked here; the run validates it when it starts.
    return;
  }
  if (!parsed || parsed.success) return;
  const details = parsed.error.issues
    .map((issue) => {
      const [first, ...rest] = issue.path;
      const head = typeof first === 'number' ? (positions[first] ?? String(first)) : first;
      const text = typeof head === 'string' && rest.length === 0 ? texts?.get(head) : undefined;
      const wantedText = issue.code === 'invalid_type' && issue.expected === 'string';
      const where = head === undefined ? '(parameters)' : [head, ...rest].map(String).join('.');
      return `${where}: ${issue.message}${wantedText && text !== undefined ? quotingHint(where, text) : ''}`;
    })
    .join('; ');
  throw new ParameterValidationError(`invalid parameters for flow '${flowName}': ${details}`);
}

/** For a parameter the schema wanted a string for, given as text that was read as JSON: how to keep it text, quotes through the shell. */
function quotingHint(name: string, text: string): string {
  return ` (${name}=${text} was read as JSON; for the text, quote it: --param '${name}=${JSON.stringify(text)}')`;
}
