import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonRun, runTenaz, stackLines } from '../fixtures/cli.js';

const SPAWN_TIMEOUT_MS = 30_000;

describe('tenaz command line', { timeout: SPAWN_TIMEOUT_MS }, () => {
  it('prints help and the package version', async () => {
    const help = await runTenaz(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('run [options] <file>');
    const version = await runTenaz(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('maps --param values to positional parameters by name, parsing JSON values', async () => {
    const { code, stdout, stderr } = await runTenaz([
      'run',
      'test/fixtures/positional.ts',
      '--param',
      'word=hi',
      '--param',
      'times=3',
      '--param',
      'options={"upper":true}',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(parseJsonRun(stdout).result).toEqual({ words: ['HI', 'HI', 'HI'], times: 3, kind: 'number' });
  });

  it('leaves parameters that are not given to their defaults', async () => {
    const { code, stdout } = await runTenaz(['run', 'test/fixtures/positional.ts', '--param', 'word=hey']);
    expect(code).toBe(0);
    expect(parseJsonRun(stdout).result).toEqual({ words: ['hey', 'hey'], times: 2, kind: 'number' });
  });

  it('picks a flow with --flow by flow name or by export name', async () => {
    const byName = await runTenaz(['run', 'test/fixtures/two-flows.ts', '--flow', 'say-goodbye', '--param', 'name=Ana']);
    expect(byName.code).toBe(0);
    expect(parseJsonRun(byName.stdout).result).toBe('goodbye, Ana');
    const byExport = await runTenaz(['run', 'test/fixtures/two-flows.ts', '--flow', 'hello']);
    expect(byExport.code).toBe(0);
    expect(parseJsonRun(byExport.stdout).result).toBe('hello, world');
  });

  it('makes its orchestrator the ambient one before the file is imported', async () => {
    const { code, stdout } = await runTenaz(['run', 'test/fixtures/ambient.ts', '--log-format', 'pretty']);
    expect(code).toBe(0);
    // A second orchestrator would log JSON (stdout is not a terminal), not these pretty lines.
    expect(stdout).toMatch(/\| tenaz\.engine - Created flow run '[a-z]+-[a-z]+' for flow 'warmup'$/m);
    expect(stdout).toMatch(/\| tenaz\.engine - Created flow run '[a-z]+-[a-z]+' for flow 'ambient'$/m);
    const result = JSON.parse(stdout.slice(stdout.indexOf('\n{') + 1)) as unknown;
    expect(result).toEqual({ warm: 'warm', sameOrchestrator: true, taskSawFlow: 'ambient' });
  });

  it('writes one JSON object per log line under --log-format json', async () => {
    const { code, stdout } = await runTenaz(['run', 'test/fixtures/positional.ts', '--param', 'word=a', '--log-format', 'json']);
    expect(code).toBe(0);
    const lines = stdout.split('\n').filter((line) => line.startsWith('{"'));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records[0]).toMatchObject({ level: 30, component: 'tenaz.engine', msg: expect.stringMatching(/^Created flow run '/) });
    expect(records.at(-1)).toMatchObject({ level: 30, flowName: 'echo', msg: 'Finished in state Completed()' });
  });

  it('exits 1 and names the final state on stderr when the run fails', async () => {
    const { code, stderr } = await runTenaz(['run', 'test/fixtures/failing.ts']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^tenaz: flow run '[a-z]+-[a-z]+' finished in state Failed\('.*the flow body gave up.*'\)\n$/);
  });
});

// Each case is its own process and shares nothing, so they run side by side.
describe.concurrent('tenaz command line user errors', { timeout: SPAWN_TIMEOUT_MS }, () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'tenaz-cli-'));
    await writeFile(join(scratch, 'package.json'), '{ "type": "module" }\n');
    await writeFile(join(scratch, 'broken.ts'), "import { flow } from 'tenaz';\nexport const f = flow({ name: 'f' }, async () => {;\n");
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  const cases: Array<[what: string, args: () => string[], message: RegExp]> = [
    ['a file that does not exist', () => ['run', 'test/fixtures/nope.ts'], /no such file: test\/fixtures\/nope\.ts/],
    ['a file with a syntax error', () => ['run', join(scratch, 'broken.ts')], /cannot load .*broken\.ts: .*broken\.ts:\d+:\d+: ERROR: /],
    ['a file with no flow', () => ['run', 'test/fixtures/no-flow.ts'], /no flow found in test\/fixtures\/no-flow\.ts/],
    ['several flows and no --flow', () => ['run', 'test/fixtures/two-flows.ts'], /several flows .*'hello'.*'say-goodbye'.*--flow/],
    ['an unknown --flow', () => ['run', 'test/fixtures/two-flows.ts', '--flow', 'nah'], /no flow named 'nah'/],
    ['a --param without =', () => ['run', 'test/fixtures/positional.ts', '--param', 'word'], /bad --param 'word': expected key=value/],
    [
      'an unknown parameter name',
      () => ['run', 'test/fixtures/positional.ts', '--param', 'wrod=x'],
      /unknown parameter 'wrod' for flow 'echo'; known parameters: word, times, options/,
    ],
    ['a destructured parameter', () => ['run', 'test/fixtures/destructured.ts', '--param', 'a=1'], /destructured parameter .*zod/],
    ['parameters the zod schema rejects', () => ['run', 'examples/call-api.ts', '--param', 'url=not-a-url'], /invalid parameters for flow 'call-api': url: /],
    ['an unknown option', () => ['run', 'test/fixtures/positional.ts', '--bogus'], /unknown option '--bogus'/],
  ];

  it.each(cases)('rejects %s with one tenaz: line and exit code 2', async (_what, args, message) => {
    const { code, stdout, stderr } = await runTenaz(args());
    expect(code).toBe(2);
    expect(stderr.endsWith('\n')).toBe(true);
    const lines = stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tenaz: /);
    expect(lines[0]).toMatch(message);
    expect(stackLines(stderr + stdout)).toEqual([]);
    expect(stdout).toBe('');
  });
});
