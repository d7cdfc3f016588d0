import { describe, expect, it } from 'vitest';
import { parseJsonRun, runTenaz, stackLines, startJsonServer } from '../fixtures/cli.js';

const SPAWN_TIMEOUT_MS = 30_000;
const REPO = { full_name: 'PrefectHQ/prefect', stargazers_count: 14277, forks_count: 1427 };

describe('examples/get-repo-info.ts', { timeout: SPAWN_TIMEOUT_MS }, () => {
  it('logs and returns the stars and forks the API served', async () => {
    await using api = await startJsonServer(() => ({ body: REPO }));
    const { code, stdout, stderr } = await runTenaz([
      'run',
      'examples/get-repo-info.ts',
      '--param',
      `apiBase=${api.url}`,
      '--param',
      'repo=PrefectHQ/prefect',
    ]);
    expect(code).toBe(0);
    expect(api.hits).toEqual(['/repos/PrefectHQ/prefect']);
    const { logs, notes, result } = parseJsonRun({ stdout, stderr });
    expect(notes).toEqual([]);
    expect(result).toEqual({ stars: 14277, forks: 1427 });
    expect(logs.map((record) => record.msg)).toEqual(
      expect.arrayContaining(['PrefectHQ/prefect repository statistics 🤓:', 'Stars 🌠 : 14277', 'Forks 🍴 : 1427']),
    );
  });

  it('prints Prefect-shaped lines under --log-format pretty', async () => {
    await using api = await startJsonServer(() => ({ body: REPO }));
    const { code, stdout, stderr } = await runTenaz([
      'run',
      'examples/get-repo-info.ts',
      '--param',
      `apiBase=${api.url}`,
      '--param',
      'repo=PrefectHQ/prefect',
      '--log-format',
      'pretty',
    ]);
    expect(code).toBe(0);
    expect(stderr).toMatch(/^\d\d:\d\d:\d\d\.\d{3} \| INFO    \| tenaz\.engine - Created flow run '[a-z]+-[a-z]+' for flow 'get-repo-info'$/m);
    expect(stderr).toMatch(/\| INFO    \| Flow run '[a-z-]+' - Stars 🌠 : 14277$/m);
    expect(stderr).toMatch(/\| INFO    \| Flow run '[a-z-]+' - Forks 🍴 : 1427$/m);
    expect(stderr).toMatch(/\| INFO    \| Flow run '[a-z-]+' - Finished in state Completed\(\)$/m);
    // Every stderr line is a log line; the result is stdout, alone.
    expect(stderr.trimEnd().split('\n').filter((line) => !/^\d\d:\d\d:\d\d\.\d{3} \| /.test(line))).toEqual([]);
    expect(stdout).toBe('{\n  "stars": 14277,\n  "forks": 1427\n}\n');
  });
});

describe('examples/call-api.ts', { timeout: SPAWN_TIMEOUT_MS }, () => {
  it('returns the JSON the URL served', async () => {
    const body = { message: 'hola', items: [1, 2, 3], nested: { ok: true } };
    await using api = await startJsonServer(() => ({ body }));
    const cli = await runTenaz(['run', 'examples/call-api.ts', '--param', `url=${api.url}/data`]);
    expect(cli.code).toBe(0);
    expect(api.hits).toEqual(['/data']);
    const { logs, notes, result } = parseJsonRun(cli);
    expect(notes).toEqual([]);
    expect(result).toEqual(body);
    expect(logs).toContainEqual(expect.objectContaining({ taskName: 'call-api', status: 200, response: body }));
  });

  it('fails with exit code 1 once its retries are spent against a server that answers 500', async () => {
    await using api = await startJsonServer(() => ({ status: 500, body: { error: 'down' } }));
    const { code, stdout, stderr } = await runTenaz(['run', 'examples/call-api.ts', '--param', `url=${api.url}/data`]);
    expect(code).toBe(1);
    // The first attempt and its two retries.
    expect(api.hits).toHaveLength(3);
    expect(stdout).toBe('');
    // The run's log records (its failure among them), then the one line that says how it ended.
    const { logs, notes } = parseJsonRun({ stdout, stderr });
    expect(notes).toEqual([expect.stringMatching(/^tenaz: flow run '[a-z]+-[a-z]+' finished in state Failed\('.*500.*'\)$/)]);
    expect(stderr.endsWith(`${notes[0]}\n`)).toBe(true);
    expect(stackLines(stderr)).toEqual([]);
    expect(logs).toContainEqual(expect.objectContaining({ flowName: 'call-api', msg: expect.stringMatching(/^Finished in state Failed\(/) }));
  });
});

describe('examples/showcase.ts', () => {
  it('survives flaky, slow and failing tasks and completes', { timeout: 60_000 }, async () => {
    const cli = await runTenaz(['run', 'examples/showcase.ts'], { timeoutMs: 55_000 });
    expect(cli.code).toBe(0);
    const { logs, notes, result } = parseJsonRun(cli);
    // Its failing tasks are logged as records, not printed as stray lines or stacks.
    expect(notes).toEqual([]);
    expect(stackLines(cli.stderr)).toEqual([]);
    expect(result).toEqual({
      flaky: 'succeeded on attempt 3',
      slow: 'finished on attempt 2',
      fanOut: { runs: 20, sumOfSquares: 2870 },
      handled: 'this task always fails',
    });
    const finished = logs.filter((record) => record.msg === 'Finished in state Completed()' && record.taskName === 'square');
    expect(finished).toHaveLength(20);
    expect(logs.at(-1)).toMatchObject({ flowName: 'showcase', msg: 'Finished in state Completed()' });
  });
});

describe('examples/batch.ts', () => {
  it('fetches, transforms and sums its items', async () => {
    const cli = await runTenaz(['run', 'examples/batch.ts', '--param', 'items=6', '--param', 'ms=5']);
    expect(cli.code).toBe(0);
    const { notes, result } = parseJsonRun(cli);
    expect(notes).toEqual([]);
    // Each item i becomes 3i + 1: 3 * (0 + ... + 5) + 6.
    expect(result).toMatchObject({ items: 6, total: 51, taskRunsByWorkerPid: expect.any(Object) });
  });
});
