import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonRun, runTenaz, splitJsonLogs, stackLines } from '../fixtures/cli.js';
import { TenazProcesses } from '../fixtures/nats/tenaz-process.js';

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
    expect(code).toBe(0);
    const { logs, notes, result } = parseJsonRun({ stdout, stderr });
    expect(result).toEqual({ words: ['HI', 'HI', 'HI'], times: 3, kind: 'number' });
    // Nothing on stderr but the run's log records: no tenaz: line, no stack.
    expect(notes).toEqual([]);
    expect(logs.filter((record) => (record.level as number) >= 40)).toEqual([]);
  });

  it('leaves parameters that are not given to their defaults', async () => {
    const cli = await runTenaz(['run', 'test/fixtures/positional.ts', '--param', 'word=hey']);
    expect(cli.code).toBe(0);
    expect(parseJsonRun(cli).result).toEqual({ words: ['hey', 'hey'], times: 2, kind: 'number' });
  });

  it('picks a flow with --flow by flow name or by export name', async () => {
    const byName = await runTenaz(['run', 'test/fixtures/two-flows.ts', '--flow', 'say-goodbye', '--param', 'name=Ana']);
    expect(byName.code).toBe(0);
    expect(parseJsonRun(byName).result).toBe('goodbye, Ana');
    const byExport = await runTenaz(['run', 'test/fixtures/two-flows.ts', '--flow', 'hello']);
    expect(byExport.code).toBe(0);
    expect(parseJsonRun(byExport).result).toBe('hello, world');
  });

  it('makes its orchestrator the ambient one before the file is imported', async () => {
    const { code, stdout, stderr } = await runTenaz(['run', 'test/fixtures/ambient.ts', '--log-format', 'pretty']);
    expect(code).toBe(0);
    // A second orchestrator would log JSON to stdout (the library's default), not these pretty lines to stderr.
    expect(stderr).toMatch(/\| tenaz\.engine - Created flow run '[a-z]+-[a-z]+' for flow 'warmup'$/m);
    expect(stderr).toMatch(/\| tenaz\.engine - Created flow run '[a-z]+-[a-z]+' for flow 'ambient'$/m);
    expect(JSON.parse(stdout)).toEqual({ warm: 'warm', sameOrchestrator: true, taskSawFlow: 'ambient' });
  });

  it('writes one JSON object per log line to stderr under --log-format json', async () => {
    const { code, stderr } = await runTenaz(['run', 'test/fixtures/positional.ts', '--param', 'word=a', '--log-format', 'json']);
    expect(code).toBe(0);
    const lines = stderr.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records[0]).toMatchObject({ level: 30, component: 'tenaz.engine', msg: expect.stringMatching(/^Created flow run '/) });
    expect(records.at(-1)).toMatchObject({ level: 30, flowName: 'echo', msg: 'Finished in state Completed()' });
  });

  // Regression: the logs went to stdout with the result, so `tenaz run flow.ts | jq` choked on them.
  it('prints the result alone on stdout and the log lines on stderr', async () => {
    const { code, stdout, stderr } = await runTenaz(['run', 'test/fixtures/positional.ts', '--param', 'word=a', '--log-format', 'json']);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ words: ['a', 'a'], times: 2, kind: 'number' });
    expect(stdout).toBe(`${JSON.stringify({ words: ['a', 'a'], times: 2, kind: 'number' }, null, 2)}\n`);
    const { logs, rest } = splitJsonLogs(stderr);
    expect(rest).toEqual([]);
    const messages = logs.map((record) => record.msg);
    expect(messages).toContainEqual(expect.stringMatching(/^Created flow run '[a-z]+-[a-z]+' for flow 'echo'$/));
    expect(messages).toContain('Finished in state Completed()');
  });

  it('picks the log format by whether stderr, where the logs go, is a terminal, not stdout', async () => {
    const args = ['run', 'test/fixtures/positional.ts', '--param', 'word=a'];
    const onTerminal = await runTenaz(args, { terminals: ['stderr'] });
    expect(onTerminal.code).toBe(0);
    // Prefect-shaped lines, coloured as on a terminal.
    expect(onTerminal.stderr).toMatch(/^\d\d:\d\d:\d\d\.\d{3} \| \u001b\[36mINFO {3}\u001b\[0m \| tenaz\.engine - Created flow run '[a-z]+-[a-z]+' for flow 'echo'$/m);
    expect(JSON.parse(onTerminal.stdout)).toEqual({ words: ['a', 'a'], times: 2, kind: 'number' });

    const piped = await runTenaz(args, { terminals: ['stdout'] });
    expect(piped.code).toBe(0);
    const { logs, notes, result } = parseJsonRun(piped);
    expect(notes).toEqual([]);
    expect(logs.map((record) => record.msg)).toContain('Finished in state Completed()');
    expect(result).toEqual({ words: ['a', 'a'], times: 2, kind: 'number' });
  });

  // Regression: a bigint printed as `12345678901234567890n`, a Map as `{}`, undefined as nothing: not JSON for jq.
  it('prints every result a flow may return as one JSON document', async () => {
    const run = (kind: string) => runTenaz(['run', 'test/fixtures/results.ts', '--param', `kind=${kind}`, '--log-level', 'warn']);
    const bigint = await run('bigint');
    expect(bigint.code).toBe(0);
    expect(bigint.stdout).toBe('12345678901234567890\n');
    const nothing = await run('undefined');
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toBe('null\n');
    const map = await run('map');
    expect(map.stdout).toBe(`${JSON.stringify({ a: 1, b: 2 }, null, 2)}\n`);
    const nested = await run('nested');
    expect(nested.code).toBe(0);
    expect(JSON.parse(nested.stdout)).toEqual({
      big: -98765432109876540000,
      byName: { a: [1, 2], 3: 'three' },
      byObject: [[{ k: 1 }, 'object key'], [1, 'bigint key']],
      clash: [[1, 'number'], ['1', 'string']],
      date: '1970-01-01T00:00:00.000Z',
      bytes: [1, 2],
      text: '"12345678901234567890n"',
    });
    // Every digit, as a JSON number.
    expect(nested.stdout).toContain('"big": -98765432109876543210,');
  });

  // Regression: a reader that stopped early (`| head`) crashed the command with an EPIPE stack and exit 1.
  it('ends quietly, exit 0, when the reader of its output stops reading', async () => {
    const script = 'node bin/tenaz.js run test/fixtures/results.ts --param kind=large --log-level warn | head -c 10 > /dev/null; echo "exit ${PIPESTATUS[0]}"';
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
      execFile('bash', ['-c', script], { timeout: SPAWN_TIMEOUT_MS }, (error, out, err) => (error ? reject(error) : resolve({ stdout: out, stderr: err }))),
    );
    expect(stdout.trim()).toBe('exit 0');
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
  });

  // Regression: values were read as JSON before the schema was looked at, so label=123 was refused as a number.
  it('keeps a --param value as text where the zod schema declares a string', async () => {
    const cli = await runTenaz(['run', 'test/fixtures/labelled.ts', '--param', 'count=2', '--param', 'label=123']);
    expect(cli.code).toBe(0);
    expect(parseJsonRun(cli).result).toEqual({ count: 2, label: '123' });
  });

  // Regression: Ctrl-C cancelled the run cleanly but exited 1, as for a run that failed.
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('exits %s as 128 + its number once the run it cancelled has ended', async (signal, exitCode) => {
    const processes = new TenazProcesses();
    try {
      const cli = processes.spawn(['run', 'test/fixtures/waits.ts', '--log-format', 'json']);
      await cli.waitFor('stderr', /waiting to be cancelled/);
      cli.signal(signal);
      expect(await cli.exited).toEqual({ code: exitCode, signal: null });
      expect(cli.stderr).toMatch(new RegExp(`^tenaz: ${signal}: cancelling flow run '[a-z]+-[a-z]+'; send it again \\(Ctrl-C\\) to stop at once$`, 'm'));
      expect(cli.stderr).toMatch(/^tenaz: flow run '[a-z]+-[a-z]+' finished in state Cancelled/m);
      expect(cli.stdout).toBe('');
    } finally {
      await processes.killAll();
    }
  });

  it('exits 1 and names the final state on stderr when the run fails', async () => {
    const { code, stdout, stderr } = await runTenaz(['run', 'test/fixtures/failing.ts']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    // The run's log records, then the one line that says how it ended; no stack outside the records.
    const { logs, rest } = splitJsonLogs(stderr);
    expect(rest).toHaveLength(1);
    expect(rest[0]).toMatch(/^tenaz: flow run '[a-z]+-[a-z]+' finished in state Failed\('.*the flow body gave up.*'\)$/);
    expect(stderr.endsWith(`${rest[0]}\n`)).toBe(true);
    expect(stackLines(stderr)).toEqual([]);
    expect(logs.at(-1)).toMatchObject({ level: 50, msg: expect.stringMatching(/^Finished in state Failed\(/) });
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
    ['a schema field the value does not fit', () => ['run', 'test/fixtures/labelled.ts', '--param', 'count=0'], /invalid parameters for flow 'labelled': count: /],
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
