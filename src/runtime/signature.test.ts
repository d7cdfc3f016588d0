import { describe, expect, it } from 'vitest';
import { parseParameters } from './signature.js';

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
