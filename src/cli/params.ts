/**
 * `--param key=value` on the command line, turned into the arguments a flow
 * is called with: one object for a flow with a zod object schema, else its
 * positional parameters matched by name.
 */
import type { ZodType } from 'zod';
import type { FlowDefinition } from '../runtime/definitions.js';
import { CliError } from './errors.js';
import { parseParameters } from './signature.js';

/** Parameter values by name, in the order given. */
export type ParamValues = ReadonlyMap<string, unknown>;

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
 * The argument list for a flow run. Unknown names, parameters that cannot be
 * named and values the flow's schema rejects are `CliError`s, raised before
 * the run starts.
 */
export function toFlowArgs(definition: FlowDefinition, values: ParamValues): unknown[] {
  const flowName = definition.options.name;
  const schema = definition.options.params;
  const kind = schemaKind(schema);
  if (kind === 'object') {
    const known = Object.keys((schema as unknown as { shape: Record<string, unknown> }).shape);
    checkKnown(flowName, values, known);
    const params = Object.fromEntries(values);
    validate(flowName, schema, params);
    return [params];
  }
  const names = values.size === 0 ? [] : positionalNames(definition);
  checkKnown(flowName, values, names);
  const args = names.map((name) => values.get(name));
  // Trailing parameters left out stay out, as in a call written by hand.
  while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
  if (kind === 'tuple') validate(flowName, schema, args, names);
  return args;
}

function positionalNames(definition: FlowDefinition): string[] {
  const flowName = definition.options.name;
  return parseParameters(definition.fn).map((parameter) => {
    if (parameter.kind === 'identifier') return parameter.name;
    throw new CliError(
      `flow '${flowName}' has a ${parameter.kind} parameter (${parameter.text.slice(0, 40)}) that --param cannot name: ` +
        `declare a zod object schema, flow({ name: '${flowName}', params: z.object({ ... }) }, ...)`,
    );
  });
}

function checkKnown(flowName: string, values: ParamValues, known: readonly string[]): void {
  for (const key of values.keys()) {
    if (!known.includes(key)) {
      const list = known.length === 0 ? 'it takes none' : `known parameters: ${known.join(', ')}`;
      throw new CliError(`unknown parameter '${key}' for flow '${flowName}'; ${list}`);
    }
  }
}

/** zod 4 names every schema's kind in `_zod.def.type`; reading it avoids depending on the user's copy of zod. */
function schemaKind(schema: ZodType | undefined): string | undefined {
  return (schema as { _zod?: { def?: { type?: string } } } | undefined)?._zod?.def?.type;
}

/** `positions` names the elements of a tuple schema, whose issues have indexes for paths. */
function validate(flowName: string, schema: ZodType | undefined, input: unknown, positions: readonly string[] = []): void {
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
      return `${head === undefined ? '(parameters)' : [head, ...rest].map(String).join('.')}: ${issue.message}`;
    })
    .join('; ');
  throw new CliError(`invalid parameters for flow '${flowName}': ${details}`);
}
