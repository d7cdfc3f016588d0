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
  throw new ParameterValidationError(`invalid parameters for flow '${flowName}': ${details}`);
}
