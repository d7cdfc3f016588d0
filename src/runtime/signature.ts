/**
 * Reads the parameter names of a flow function from its source text, so that
 * `--param repo=x` can reach `async (repo, apiBase = '...') => ...`. Only plain
 * identifiers can be named this way; destructured and rest parameters cannot.
 * The source is parsed with acorn: defaults may hold any expression (regular
 * expressions, templates, nested functions), which only a real parser reads right.
 */
import { parse, type Expression, type Function as FunctionNode, type Options, type Pattern } from 'acorn';

/**
 * One parameter of a function, as `parseParameters` sees it. `hasDefault` is whether the source
 * gives it a default value; TypeScript's optional parameters (`b?: number`) have none once compiled.
 */
export type ParameterInfo =
  | { kind: 'identifier'; name: string; hasDefault: boolean }
  | { kind: 'destructured' | 'rest'; text: string };

const PARSE_OPTIONS: Options = {
  ecmaVersion: 'latest',
  // Sloppy mode, as a function's own source may be; the wrappers below keep it an expression.
  sourceType: 'script',
  // The function compiled already: only its shape matters here, not checks that need its module
  // (`import.meta`) or its class (`this.#field`) around it.
  allowImportExportEverywhere: true,
  checkPrivateFields: false,
};

/**
 * `fn.toString()` is the function's own source text, which is not always an expression on its own:
 * each wrapper fits one form, tried in order, and names where the function is in what it parses to.
 */
interface Wrapper {
  readonly prefix: string;
  readonly suffix: string;
  functionIn(expression: Expression): FunctionNode | null;
}

const WRAPPERS: readonly Wrapper[] = [
  // Arrow functions, function expressions and declarations, async and generator ones.
  {
    prefix: '(',
    suffix: '\n)',
    functionIn: (expression) =>
      expression.type === 'ArrowFunctionExpression' || expression.type === 'FunctionExpression' ? expression : null,
  },
  // Method shorthand (`run(a) {}`, `async *items(a) {}`), in sloppy mode as an object literal's.
  {
    prefix: '({',
    suffix: '\n})',
    functionIn: (expression) => {
      if (expression.type !== 'ObjectExpression' || expression.properties.length !== 1) return null;
      const [property] = expression.properties;
      return property?.type === 'Property' && property.value.type === 'FunctionExpression' ? property.value : null;
    },
  },
  // Class methods an object literal cannot hold: `#private(a) {}`, a constructor calling `super()`.
  {
    prefix: '(class extends Object {',
    suffix: '\n})',
    functionIn: (expression) => {
      if (expression.type !== 'ClassExpression' || expression.body.body.length !== 1) return null;
      const [member] = expression.body.body;
      return member?.type === 'MethodDefinition' ? member.value : null;
    },
  },
];

/**
 * The parameters of a function, in order, from `fn.toString()`. Understands
 * arrow functions (with or without parentheses), `function` declarations and
 * expressions, async and generator functions, method shorthand and class methods;
 * default values may hold any expression. Native code (a bound or built-in
 * function) shows no parameters: the list is empty.
 * @example parseParameters(async (a, b = 1) => a) // [{ kind: 'identifier', name: 'a', hasDefault: false }, { kind: 'identifier', name: 'b', hasDefault: true }]
 */
export function parseParameters(fn: (...args: never[]) => unknown): ParameterInfo[] {
  const source = Function.prototype.toString.call(fn);
  for (const wrapper of WRAPPERS) {
    const text = wrapper.prefix + source + wrapper.suffix;
    const found = parseFunctionIn(text, wrapper);
    if (found) return found.params.map((param) => toParameterInfo(param, text));
  }
  // `function () { [native code] }` parses in no wrapper; nor would syntax newer than acorn.
  return [];
}

const namesByFunction = new WeakMap<object, ReadonlyArray<string | undefined>>();

/**
 * The names of a function's parameters by position, `undefined` for one that has
 * none (destructured, rest). Parsed once per function, then remembered.
 */
export function parameterNames(fn: (...args: never[]) => unknown): ReadonlyArray<string | undefined> {
  let names = namesByFunction.get(fn);
  if (names === undefined) {
    names = Object.freeze(parseParameters(fn).map((parameter) => (parameter.kind === 'identifier' ? parameter.name : undefined)));
    namesByFunction.set(fn, names);
  }
  return names;
}

function parseFunctionIn(text: string, wrapper: Wrapper): FunctionNode | null {
  let program;
  try {
    program = parse(text, PARSE_OPTIONS);
  } catch {
    return null;
  }
  const [statement] = program.body;
  if (program.body.length !== 1 || statement?.type !== 'ExpressionStatement') return null;
  return wrapper.functionIn(statement.expression);
}

function toParameterInfo(param: Pattern, text: string): ParameterInfo {
  const target = param.type === 'AssignmentPattern' ? param.left : param;
  if (target.type === 'Identifier') return { kind: 'identifier', name: target.name, hasDefault: param.type === 'AssignmentPattern' };
  return { kind: param.type === 'RestElement' ? 'rest' : 'destructured', text: text.slice(param.start, param.end) };
}
