import { describe, expect, it } from 'vitest';
import { parameterNames, parseParameters } from './signature.js';

const names = (fn: (...args: never[]) => unknown) => parseParameters(fn).map((p) => (p.kind === 'identifier' ? p.name : p.kind));

describe('parseParameters', () => {
  it('reads arrow functions with and without parentheses', () => {
    expect(names(async (a: number, b = 1) => a + b)).toEqual(['a', 'b']);
    expect(names(async (a: number) => a)).toEqual(['a']);
    expect(names(new Function('return async a => a')() as () => unknown)).toEqual(['a']);
    expect(names(new Function('return async(a,b=1)=>a+b')() as () => unknown)).toEqual(['a', 'b']);
    expect(names(async () => 1)).toEqual([]);
  });

  it('reads function declarations, expressions and method shorthand', () => {
    async function named(repo: string, apiBase = 'https://api.github.com') {
      return repo + apiBase;
    }
    expect(names(named)).toEqual(['repo', 'apiBase']);
    expect(names(async function (x: number) { return x; })).toEqual(['x']);
    const holder = { async run(first: string, second?: string) { return first + second; } };
    expect(names(holder.run)).toEqual(['first', 'second']);
  });

  it('skips defaults that hold commas, brackets, strings, templates and comments', () => {
    const fn = new Function(
      'return async (a = [1, 2], b = { c: ")" }, /* note, here */ d = `x${"}, e"}`, e = (1, 2), f = "//", g) => 0',
    )() as () => unknown;
    expect(names(fn)).toEqual(['a', 'b', 'd', 'e', 'f', 'g']);
  });

  it('marks destructured and rest parameters, which cannot be named', () => {
    expect(names(async ({ a }: { a: number }, [b = 0]: number[]) => a + b)).toEqual(['destructured', 'destructured']);
    expect(names(async (first: string, ...rest: string[]) => first + rest.join())).toEqual(['first', 'rest']);
  });
});

// Regression: the hand-written parser this replaced split `(re = /a,b/, z = 1)` into re, b, z
// and lost its place on `/[)]/` and `/[(]/`.
describe('parseParameters, reading the source with a real parser', () => {
  const fromSource = (source: string) => names(new Function(`return ${source}`)() as () => unknown);

  it('reads regular expression defaults holding commas and parentheses', () => {
    expect(fromSource('async (re = /a,b/, z = 1) => z')).toEqual(['re', 'z']);
    expect(fromSource('async (re = /[)]/, z = 1) => z')).toEqual(['re', 'z']);
    expect(fromSource('async (re = /[(]/, z = 1) => z')).toEqual(['re', 'z']);
    expect(fromSource('function (a = /\\/\\(,/g, b = 2 / 1, c = /}/) { return a; }')).toEqual(['a', 'b', 'c']);
    expect(names(async (re = /a,b/, z = 1) => re.test(String(z)))).toEqual(['re', 'z']);
  });

  it('reads template literal defaults whose ${} hold parentheses and commas', () => {
    expect(fromSource('async (a = `${Math.max(1, 2)}, (`, b = `${`${")"}`}`, c) => a')).toEqual(['a', 'b', 'c']);
  });

  it('reads defaults that are arrow functions', () => {
    expect(fromSource('async (cb = (x, y) => x + y, wrap = x => ({ x }), n = 1) => n')).toEqual(['cb', 'wrap', 'n']);
    expect(names(async (map = (x: number, i: number) => x + i, limit = 10) => map(limit, 0))).toEqual(['map', 'limit']);
  });

  it('skips comments in the parameter list', () => {
    expect(fromSource('async (a /* , fake) */, // b, (\n c = 1 /* ) */) => a')).toEqual(['a', 'c']);
  });

  it('reads method shorthand, async generators and class methods', () => {
    const holder = {
      plain(a: number, b: number) {
        return a + b;
      },
      async *pages(cursor: string, size = 10) {
        yield cursor + size;
      },
    };
    expect(names(holder.plain)).toEqual(['a', 'b']);
    expect(names(holder.pages)).toEqual(['cursor', 'size']);
    expect(names(async function* (x: number, y = 2) { yield x + y; })).toEqual(['x', 'y']);
    expect(fromSource('{ async [Symbol.iterator](z, w) { return z; } }[Symbol.iterator]')).toEqual(['z', 'w']);
    const Jobs = new Function(`
      return class Jobs extends Object {
        #secret = 1;
        constructor(first) { super(); this.first = first; }
        static nightly(limit, dryRun = false) { return limit; }
        run(day) { return this.#helper(day) + this.#secret; }
        #helper(day) { return day; }
      };
    `)() as { nightly: () => unknown; prototype: { run: () => unknown } };
    expect(names(Jobs.nightly)).toEqual(['limit', 'dryRun']);
    expect(names(Jobs.prototype.run)).toEqual(['day']);
  });

  it('returns no parameters for native code rather than throwing', () => {
    const bound = (async (a: number, b: number) => a + b).bind(null);
    expect(Function.prototype.toString.call(bound)).toContain('[native code]');
    expect(parseParameters(bound)).toEqual([]);
    expect(parseParameters(Math.max as () => number)).toEqual([]);
  });

  it('gives destructured and rest parameters their source text', () => {
    const fn = new Function('return async ({ a, b: [c] } = { a: 1 }, [d] = [/,/], ...rest) => a')() as () => unknown;
    expect(parseParameters(fn)).toEqual([
      { kind: 'destructured', text: '{ a, b: [c] } = { a: 1 }' },
      { kind: 'destructured', text: '[d] = [/,/]' },
      { kind: 'rest', text: '...rest' },
    ]);
  });
});

describe('parameterNames', () => {
  it('names parameters by position, undefined where a parameter has no name, parsed once per function', () => {
    const fn = async (limit: number, { dryRun }: { dryRun: boolean }, ...more: string[]) => [limit, dryRun, more];
    const first = parameterNames(fn);
    expect(first).toEqual(['limit', undefined, undefined]);
    expect(parameterNames(fn)).toBe(first);
  });
});
