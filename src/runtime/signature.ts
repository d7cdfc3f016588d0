/**
 * Reads the parameter names of a flow function from its source text, so that
 * `--param repo=x` can reach `async (repo, apiBase = '...') => ...`. Only plain
 * identifiers can be named this way; destructured and rest parameters cannot.
 */

/** One parameter of a function, as `parseParameters` sees it. */
export type ParameterInfo =
  | { kind: 'identifier'; name: string }
  | { kind: 'destructured' | 'rest'; text: string };

const IDENTIFIER = /^[\p{L}\p{Nl}$_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}$\u200c\u200d]*/u;

/**
 * The parameters of a function, in order, from `fn.toString()`. Understands
 * arrow functions (with or without parentheses), `function` declarations and
 * expressions, and method shorthand; default values may hold any expression.
 * @example parseParameters(async (a, b = 1) => a) // [{ kind: 'identifier', name: 'a' }, { kind: 'identifier', name: 'b' }]
 */
export function parseParameters(fn: (...args: never[]) => unknown): ParameterInfo[] {
  const source = Function.prototype.toString.call(fn).trim();
  const head = source.replace(/^async(?=[\s(])\s*/, '');
  // `async a => ...` and `a => ...`: a single identifier with no parentheses.
  const bare = /^([\p{L}\p{Nl}$_][^\s=()]*)\s*=>/u.exec(head);
  if (bare?.[1] !== undefined) return [{ kind: 'identifier', name: bare[1] }];
  const open = head.indexOf('(');
  if (open < 0) return [];
  return splitParameterList(head, open).map(toParameterInfo);
}

function toParameterInfo(text: string): ParameterInfo {
  if (text.startsWith('...')) return { kind: 'rest', text };
  if (text.startsWith('{') || text.startsWith('[')) return { kind: 'destructured', text };
  const name = IDENTIFIER.exec(text)?.[0];
  // Anything else would be a syntax error in a function that already compiled.
  return name === undefined ? { kind: 'destructured', text } : { kind: 'identifier', name };
}

/**
 * Splits the text between the parenthesis at `open` and its partner on
 * top-level commas, skipping strings, template literals and comments so that
 * a default like `(a = ')', b = [1, 2])` is read right.
 */
function splitParameterList(source: string, open: number): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < source.length; i++) {
    const c = source[i];
    if (c === '"' || c === "'" || c === '`') {
      i = skipString(source, i);
    } else if (c === '/' && source[i + 1] === '/') {
      i = source.indexOf('\n', i);
      if (i < 0) break;
    } else if (c === '/' && source[i + 1] === '*') {
      i = source.indexOf('*/', i + 2) + 1;
      if (i <= 0) break;
    } else if (c === '(' || c === '[' || c === '{') {
      depth++;
    } else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) {
        parts.push(source.slice(start, i));
        break;
      }
    } else if (c === ',' && depth === 1) {
      parts.push(source.slice(start, i));
      start = i + 1;
    }
  }
  return parts.map(stripLeadingComments).filter((part) => part !== '');
}

/** The index of the quote that closes the string opening at `at`. */
function skipString(source: string, at: number): number {
  const quote = source[at];
  for (let i = at + 1; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === quote) return i;
    else if (quote === '`' && c === '$' && source[i + 1] === '{') i = skipTemplateExpression(source, i + 2);
  }
  return source.length;
}

function skipTemplateExpression(source: string, from: number): number {
  let depth = 1;
  for (let i = from; i < source.length; i++) {
    const c = source[i];
    if (c === '"' || c === "'" || c === '`') i = skipString(source, i);
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return source.length;
}

/** Drops comments before a parameter: only its start matters, and its default may hold `//` in a string. */
function stripLeadingComments(text: string): string {
  let rest = text.trim();
  for (;;) {
    if (rest.startsWith('/*')) rest = rest.slice(rest.indexOf('*/') + 2).trim();
    else if (rest.startsWith('//')) rest = rest.includes('\n') ? rest.slice(rest.indexOf('\n') + 1).trim() : '';
    else return rest;
  }
}
