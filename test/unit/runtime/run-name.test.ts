// Regression: a `runName` template read its placeholders from the first argument as an object
// only, so a flow with positional parameters, run as `nightly(5)` or with `--param limit=5`,
// was named `nightly-{limit}` literally.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { toFlowArgs } from '../../../src/cli/params.js';
import { flow } from '../../../src/index.js';
import { definitionOf, type FlowDefinition } from '../../../src/runtime/definitions.js';
import { createFixture, recordEvents, uniqueName, type Fixture } from './helpers.js';

let fx: Fixture;

beforeEach(() => {
  fx = createFixture();
});

afterEach(async () => {
  await fx.orchestrator.close();
});

describe('runName templates', () => {
  it('fill placeholders with positional arguments, by the flow function parameter names', async () => {
    const nightly = flow({ name: uniqueName('nightly'), runName: 'nightly-{limit}-{region}' }, async (limit = 10, region = 'eu') => `${limit}${region}`);
    const run = fx.orchestrator.start(nightly, 5, 'us');
    expect(run.name).toBe('nightly-5-us');
    await run.result();
  });

  it('fill placeholders from --param values mapped onto positional parameters', async () => {
    const nightly = flow({ name: uniqueName('nightly'), runName: 'nightly-{limit}' }, async (limit = 10, region = 'eu') => `${limit}${region}`);
    const args = toFlowArgs(definitionOf(nightly) as FlowDefinition, new Map([['limit', '5']]));
    const run = fx.orchestrator.start(nightly, ...(args as [number]));
    expect(run.name).toBe('nightly-5');
    await run.result();
  });

  it('name a subflow called with positional arguments from inside a flow', async () => {
    const nightly = flow({ name: uniqueName('nightly'), runName: 'nightly-{limit}' }, async (limit: number) => limit);
    const parent = flow({ name: uniqueName('parent') }, async () => nightly(7));
    const recorder = recordEvents(fx.orchestrator);
    const run = fx.orchestrator.start(parent);
    await run.result();
    const child = await recorder.until((event) => event.type === 'flow.state' && event.parentFlowRunId === run.id);
    recorder.close();
    expect(child.type === 'flow.state' && child.flowRunName).toBe('nightly-7');
  });

  it('leave placeholders that name no parameter as written', async () => {
    const nightly = flow({ name: uniqueName('nightly'), runName: '{limit}-{nope}-{1}' }, async (limit: number, { dryRun }: { dryRun: boolean }) => [limit, dryRun]);
    const run = fx.orchestrator.start(nightly, 3, { dryRun: true });
    expect(run.name).toBe('3-{nope}-{1}');
    await run.result();
  });

  it('fill placeholders from the fields of the argument an object schema validates', async () => {
    const params = z.object({ limit: z.number(), region: z.string() });
    const nightly = flow({ name: uniqueName('nightly'), runName: 'nightly-{limit}-{region}', params }, async (options: z.infer<typeof params>) => options.limit);
    const run = fx.orchestrator.start(nightly, { limit: 4, region: 'ap' });
    expect(run.name).toBe('nightly-4-ap');
    await run.result();
  });

  it('fill placeholders by position for a tuple schema', async () => {
    const params = z.tuple([z.number(), z.string()]);
    const nightly = flow({ name: uniqueName('nightly'), runName: 'nightly-{limit}-{region}', params }, async (limit: number, region: string) => `${limit}${region}`);
    const run = fx.orchestrator.start(nightly, 2, 'sa');
    expect(run.name).toBe('nightly-2-sa');
    await run.result();
  });
});

describe('runName functions that give no name', () => {
  for (const [what, runName] of [
    ['an empty string', () => ''],
    ['blanks', () => '  '],
    ['undefined', () => undefined],
    ['a number', () => 42],
    ['a bigint', () => 10n],
    ['NaN', () => Number.NaN],
    ['a cyclic object', () => {
      const cyclic: Record<string, unknown> = {};
      cyclic['self'] = cyclic;
      return cyclic;
    }],
    ['a throw', () => {
      throw new Error('no name today');
    }],
  ] as const) {
    it(`${what}: the run gets a generated adjective-animal name, and the log says why`, async () => {
      const named = flow({ name: uniqueName('named'), runName: runName as () => string }, async () => 1);
      const run = fx.orchestrator.start(named);
      expect(run.name).toMatch(/^[a-z]+-[a-z]+$/);
      await run.result();
      expect(fx.records.some((record) => record.level === 40 && record.msg.includes('runName') && record.msg.includes(run.name))).toBe(true);
    });
  }
});
