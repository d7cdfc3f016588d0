import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { flow } from '../api.js';
import { definitionOf, type FlowDefinition } from '../runtime/definitions.js';
import { CliError } from './errors.js';
import { parseParamArgs, parseParamTexts, parseParamValue, toFlowArgs } from './params.js';

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

  // Regression: `--param id=12345678901234567890` gave the flow 12345678901234567000, another id.
  describe('integers too large for a number to hold exactly', () => {
    it('keep their digits as text, alone or inside JSON', () => {
      expect(parseParamValue('12345678901234567890')).toBe('12345678901234567890');
      expect(parseParamValue('-9007199254740993')).toBe('-9007199254740993');
      expect(parseParamValue('[1, 12345678901234567890]')).toEqual([1, '12345678901234567890']);
      expect(parseParamValue('{"id": 12345678901234567890, "n": 2, "s": "12345678901234567890 \\" 99999999999999999999"}')).toEqual({
        id: '12345678901234567890',
        n: 2,
        s: '12345678901234567890 " 99999999999999999999',
      });
      // Beyond the largest double: Infinity is no more what was written.
      expect(parseParamValue('1e400')).toBe('1e400');
    });

    it('leave every number a double holds exactly, and decimals, as numbers', () => {
      expect(parseParamValue('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
      expect(parseParamValue('-9007199254740991')).toBe(Number.MIN_SAFE_INTEGER);
      expect(parseParamValue('[0, -1, 2.5, 1e3, 1e20]')).toEqual([0, -1, 2.5, 1000, 1e20]);
      expect(parseParamValue('0.1')).toBe(0.1);
    });

    it('leave text that is not JSON as it was written', () => {
      expect(parseParamValue('abc12345678901234567890')).toBe('abc12345678901234567890');
      expect(parseParamValue('0012345678901234567890')).toBe('0012345678901234567890');
      expect(parseParamValue('[12345678901234567890')).toBe('[12345678901234567890');
    });
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
    expect(toFlowArgs(definition(positional), new Map([['c', 'z'], ['a', 'x']]))).toEqual(['x', undefined, 'z']);
    expect(toFlowArgs(definition(positional), new Map())).toEqual([]);
  });

  it('passes one object to a flow with a zod object schema', () => {
    expect(toFlowArgs(definition(schema), new Map([['url', 'http://a/b']]))).toEqual([{ url: 'http://a/b' }]);
  });

  it('names the unknown parameter and the known ones', () => {
    expect(() => toFlowArgs(definition(positional), new Map([['d', '1']]))).toThrow(/unknown parameter 'd' .*known parameters: a, b, c/);
    expect(() => toFlowArgs(definition(schema), new Map([['u', '1']]))).toThrow(/unknown parameter 'u' .*known parameters: url, n/);
  });

  it('parses JSON values for positional parameters, as before', () => {
    expect(toFlowArgs(definition(positional), new Map([['a', '123'], ['b', '2']]))).toEqual([123, 2]);
  });

  // Regression: `--param label=123` failed with "label: expected string, received number", as
  // every value was read as JSON first.
  describe('fields a zod schema declares as strings', () => {
    const labelled = flow(
      {
        name: 'labelled',
        params: z.object({
          count: z.number(),
          label: z.string().default('x'),
          note: z.string().nullable().optional(),
          code: z.enum(['1', '2']).optional(),
          email: z.email().optional(),
          either: z.union([z.literal('a'), z.string().transform((text) => text.length)]).optional(),
          tags: z.array(z.string()).optional(),
        }),
      },
      async (params) => params,
    );
    const args = (pairs: string[]) => toFlowArgs(definition(labelled), parseParamTexts(pairs));

    it('keep the text as written, while other fields are read as JSON', () => {
      expect(args(['count=3', 'label=123', 'code=1', 'either=true'])).toEqual([{ count: 3, label: '123', code: '1', either: 'true' }]);
      expect(args(['count=3', 'label="quoted"', 'note=007'])).toEqual([{ count: 3, label: 'quoted', note: '007' }]);
      expect(args(['count=3', 'label=true', 'tags=["a","b"]'])).toEqual([{ count: 3, label: 'true', tags: ['a', 'b'] }]);
    });

    it('keep null for a field that takes null, and the text "null" for one that does not', () => {
      expect(args(['count=3', 'note=null', 'label=null'])).toEqual([{ count: 3, note: null, label: 'null' }]);
    });

    it('in a tuple schema, by position', () => {
      expect(toFlowArgs(definition(tuple), parseParamTexts(['x=123', 'y=4']))).toEqual(['123', 4]);
    });

    it('hint at quoting when a value read as JSON is refused where a string is wanted', () => {
      const lazy = flow({ name: 'lazy', params: z.object({ label: z.lazy(() => z.string()) }) }, async ({ label }) => label);
      expect(() => toFlowArgs(definition(lazy), parseParamTexts(['label=123']))).toThrow(/label: .*\(label=123 was read as JSON; for the text, quote it: --param 'label="123"'\)/);
      // No hint where quoting would not help.
      expect(() => args(['count=0', 'code=3'])).toThrow(CliError);
      expect(() => args(['count=3', 'code=3'])).not.toThrow(/read as JSON/);
      expect(() => args(['count=3', 'code=1', 'tags=[1]'])).not.toThrow(/read as JSON/);
    });
  });

  describe('an integer too large for a number to hold exactly', () => {
    const ids = flow(
      { name: 'ids', params: z.object({ id: z.number().optional(), big: z.coerce.bigint().optional(), text: z.string().optional() }) },
      async (params) => params,
    );
    const args = (pairs: string[]) => toFlowArgs(definition(ids), parseParamTexts(pairs));

    it('reaches a string or coerced bigint field exact', () => {
      expect(args(['big=12345678901234567890', 'text=12345678901234567890'])).toEqual([{ big: '12345678901234567890', text: '12345678901234567890' }]);
    });

    it('is refused for a number field, saying why, before the run starts', () => {
      expect(() => args(['id=12345678901234567890'])).toThrow(CliError);
      expect(() => args(['id=12345678901234567890'])).toThrow(/invalid parameters for flow 'ids': id: .*\(id: too large for a number to hold exactly, so kept as text; declare z\.string\(\) or z\.coerce\.bigint\(\) to take it\)$/);
      expect(() => args(['id=x'])).not.toThrow(/too large/);
    });

    it('reaches a positional parameter as its text', () => {
      expect(toFlowArgs(definition(positional), parseParamTexts(['a=x', 'b=12345678901234567890']))).toEqual(['x', '12345678901234567890']);
    });
  });

  it('names the field a schema rejects', () => {
    expect(() => toFlowArgs(definition(schema), new Map([['url', 'nope']]))).toThrow(/invalid parameters for flow 's': url: /);
    expect(() => toFlowArgs(definition(tuple), new Map([['x', 'a'], ['y', 'b']]))).toThrow(/invalid parameters for flow 't': y: /);
  });
});
