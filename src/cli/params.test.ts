import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { flow } from '../api.js';
import { definitionOf, type FlowDefinition } from '../runtime/definitions.js';
import { CliError } from './errors.js';
import { parseParamArgs, parseParamValue, toFlowArgs } from './params.js';

const definition = (value: unknown) => definitionOf(value) as FlowDefinition;

describe('parseParamArgs', () => {
  it('parses JSON values and keeps anything else as text', () => {
    expect(parseParamArgs(['n=3', 'ok=true', 'repo=PrefectHQ/prefect', 'o={"a":1}', 'url=http://x/y', 'empty='])).toEqual(
      new Map<string, unknown>([
        ['n', 3],
        ['ok', true],
        ['repo', 'PrefectHQ/prefect'],
        ['o', { a: 1 }],
        ['url', 'http://x/y'],
        ['empty', ''],
      ]),
    );
    expect(parseParamValue('"1.0"')).toBe('1.0');
    expect(parseParamValue('a=b')).toBe('a=b');
  });

  it('rejects a pair without a key or =, and a key given twice', () => {
    expect(() => parseParamArgs(['novalue'])).toThrow(CliError);
    expect(() => parseParamArgs(['=1'])).toThrow(CliError);
    expect(() => parseParamArgs(['a=1', 'a=2'])).toThrow(/given twice/);
  });
});

describe('toFlowArgs', () => {
  const positional = flow({ name: 'p' }, async (a: string, b: number = 1, c?: string) => `${a}${b}${c}`);
  const schema = flow({ name: 's', params: z.object({ url: z.url(), n: z.number().default(1) }) }, async ({ url }) => url);
  const tuple = flow({ name: 't', params: z.tuple([z.string(), z.number()]) }, async (x, y) => x + y);

  it('maps names to positions, leaving out trailing parameters not given', () => {
    expect(toFlowArgs(definition(positional), new Map([['a', 'x']]))).toEqual(['x']);
    expect(toFlowArgs(definition(positional), new Map<string, unknown>([['c', 'z'], ['a', 'x']]))).toEqual(['x', undefined, 'z']);
    expect(toFlowArgs(definition(positional), new Map())).toEqual([]);
  });

  it('passes one object to a flow with a zod object schema', () => {
    expect(toFlowArgs(definition(schema), new Map([['url', 'http://a/b']]))).toEqual([{ url: 'http://a/b' }]);
  });

  it('names the unknown parameter and the known ones', () => {
    expect(() => toFlowArgs(definition(positional), new Map([['d', 1]]))).toThrow(/unknown parameter 'd' .*known parameters: a, b, c/);
    expect(() => toFlowArgs(definition(schema), new Map([['u', 1]]))).toThrow(/unknown parameter 'u' .*known parameters: url, n/);
  });

  it('names the field a schema rejects', () => {
    expect(() => toFlowArgs(definition(schema), new Map([['url', 'nope']]))).toThrow(/invalid parameters for flow 's': url: /);
    expect(() => toFlowArgs(definition(tuple), new Map<string, unknown>([['x', 'a'], ['y', 'b']]))).toThrow(/invalid parameters for flow 't': y: /);
  });
});
