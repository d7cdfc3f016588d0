import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { flow } from '../../src/api.js';
import { definitionOf, type FlowDefinition } from '../../src/runtime/definitions.js';
import { missingParameters } from '../../src/runtime/flow-args.js';
import { parseParameters } from '../../src/runtime/signature.js';
import { parseJsonRun, runTenaz } from '../fixtures/cli.js';

const SPAWN_TIMEOUT_MS = 30_000;

const definition = (value: unknown) => definitionOf(value) as FlowDefinition;

describe('parseParameters', () => {
  it('says which named parameters have a default', () => {
    expect(parseParameters(async (a: number, b = 2, c?: number) => [a, b, c])).toEqual([
      { kind: 'identifier', name: 'a', hasDefault: false },
      { kind: 'identifier', name: 'b', hasDefault: true },
      { kind: 'identifier', name: 'c', hasDefault: false },
    ]);
  });
});

describe('missingParameters', () => {
  it('names the positional parameters without a default that were not given, in order', () => {
    const add = flow({ name: 'add' }, async (a: number, b: number, c: number = 3, d?: number) => a + b + c + (d ?? 0));
    expect(missingParameters(definition(add), new Map([['a', 1]]))).toEqual(['b', 'd']);
    expect(missingParameters(definition(add), new Map())).toEqual(['a', 'b', 'd']);
    expect(missingParameters(definition(add), new Map([['a', 1], ['b', 2], ['d', 4]]))).toEqual([]);
  });

  it('names none for a flow with a zod schema, which reports missing fields itself', () => {
    const withObject = flow({ name: 'obj', params: z.object({ a: z.number() }) }, async ({ a }) => a);
    const withTuple = flow({ name: 'tup', params: z.tuple([z.number(), z.number()]) }, async (a, b) => a + b);
    expect(missingParameters(definition(withObject), new Map())).toEqual([]);
    expect(missingParameters(definition(withTuple), new Map())).toEqual([]);
  });

  it('skips destructured and rest parameters, which have no name to give', () => {
    const sum = flow({ name: 'sum' }, async ({ a, b }: { a: number; b: number }, ...more: number[]) => a + b + more.length);
    expect(missingParameters(definition(sum), new Map())).toEqual([]);
  });
});

// Regression (QA 7a, finding 9): `tenaz run` passed a parameter with no default that no --param
// gave as undefined without a word. It is not refused (a TypeScript `b?: number` looks the same
// once compiled), but one warning line before the run says so.
describe('tenaz run with a parameter left out', { timeout: SPAWN_TIMEOUT_MS }, () => {
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'tenaz-qa7-params-'));
    await writeFile(join(scratch, 'package.json'), '{ "type": "module" }\n');
    const files: Record<string, string> = {
      'add.ts': "import { flow } from 'tenaz';\nexport const add = flow({ name: 'add' }, async (a: number, b: number) => a + b);\n",
      'optional.ts': "import { flow } from 'tenaz';\nexport const pair = flow({ name: 'pair' }, async (a?: number, b?: number) => [a ?? null, b ?? null]);\n",
      'defaults.ts': "import { flow } from 'tenaz';\nexport const add = flow({ name: 'add' }, async (a: number, b: number = 2) => a + b);\n",
      'rest.ts': "import { flow } from 'tenaz';\nexport const count = flow({ name: 'count' }, async (...items: unknown[]) => items.length);\n",
    };
    for (const [file, text] of Object.entries(files)) await writeFile(join(scratch, file), text);
  });

  afterAll(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const warnings = (stderr: string) => parseJsonRun({ stdout: '', stderr }).logs.filter((record) => (record.level as number) >= 40);

  it('runs anyway, and logs one warning naming the parameter before the run starts', async () => {
    const cli = await runTenaz(['run', 'add.ts', '--param', 'a=1'], { cwd: scratch });
    expect(cli.code).toBe(0);
    const { logs, notes, result } = parseJsonRun(cli);
    expect(result).toBeNull();
    expect(notes).toEqual([]);
    expect(warnings(cli.stderr)).toEqual([
      {
        level: 40,
        time: expect.any(Number),
        component: 'tenaz.cli',
        flowName: 'add',
        parameters: ['b'],
        msg: "parameter 'b' of flow 'add' was not given and has no default; it is passed as undefined",
      },
    ]);
    const warnedAt = logs.findIndex((record) => record.level === 40);
    const createdAt = logs.findIndex((record) => typeof record.msg === 'string' && record.msg.startsWith('Created flow run'));
    expect(warnedAt).toBeGreaterThanOrEqual(0);
    expect(warnedAt).toBeLessThan(createdAt);
  });

  it('names every parameter left out in the one line, optional ones too', async () => {
    const cli = await runTenaz(['run', 'optional.ts'], { cwd: scratch });
    expect(cli.code).toBe(0);
    expect(parseJsonRun(cli).result).toEqual([null, null]);
    expect(warnings(cli.stderr)).toEqual([
      expect.objectContaining({
        parameters: ['a', 'b'],
        msg: "parameters 'a', 'b' of flow 'pair' were not given and have no default; they are passed as undefined",
      }),
    ]);
  });

  it('shows the warning as a WARN line in the pretty format', async () => {
    const cli = await runTenaz(['run', 'add.ts', '--param', 'a=1'], { cwd: scratch, terminals: ['stderr'] });
    expect(cli.code).toBe(0);
    const lines = cli.stderr.split('\n').filter((line) => line.includes("parameter 'b' of flow 'add'"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WARN/);
  });

  it('says nothing when every parameter without a default is given', async () => {
    const cli = await runTenaz(['run', 'defaults.ts', '--param', 'a=1'], { cwd: scratch });
    expect(cli.code).toBe(0);
    expect(parseJsonRun(cli).result).toBe(3);
    expect(warnings(cli.stderr)).toEqual([]);
  });

  it('says nothing for a rest parameter, a destructured one or a zod schema', async () => {
    const rest = await runTenaz(['run', 'rest.ts'], { cwd: scratch });
    expect(rest.code).toBe(0);
    expect(warnings(rest.stderr)).toEqual([]);
    const schema = await runTenaz(['run', 'test/fixtures/labelled.ts', '--param', 'count=2']);
    expect(schema.code).toBe(0);
    expect(warnings(schema.stderr)).toEqual([]);
    // The body fails on its undefined argument; what matters here is that tenaz did not warn.
    const destructured = await runTenaz(['run', 'test/fixtures/destructured.ts', '--log-level', 'warn']);
    expect(destructured.stderr).not.toContain('tenaz.cli');
    expect(destructured.stderr).not.toContain('was not given');
  });
});
