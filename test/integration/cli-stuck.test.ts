/**
 * Runs whose body, or hook, awaits what nothing will ever settle. Node exits a process with
 * nothing left to do even while a promise is pending (code 13, with no word of why); tenaz
 * must end such runs with a cause instead, or keep the process alive for what it promised.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, parseJsonRun, runTenaz } from '../fixtures/cli.js';

describe('a run that nothing left in the process can settle', { timeout: 30_000 }, () => {
  it.each(['task', 'flow'])('stuck in its %s body ends Crashed with its cause, and tenaz run exits 1 with one line', async (where) => {
    const cli = await runTenaz(['run', 'test/fixtures/stuck.ts', '--param', `where=${where}`]);
    expect(cli.code).toBe(1);
    const { logs, notes } = parseJsonRun(cli);
    expect(notes).toEqual([expect.stringMatching(/^tenaz: flow run '.+' finished in state Crashed\('the process had nothing left to do: its body awaits something/)]);
    expect(logs).toContainEqual(expect.objectContaining({ level: 50, msg: expect.stringMatching(/^Flow run '.+' can never finish: /) }));
  });
});

describe('a hook that never settles, in a process with nothing else to do', () => {
  it('holds the process until its time limit, then the caller gets on', async () => {
    // The time limit is an argument of runHooks; the CLI's is 30 s, too long for a test.
    const script = `
      import { runHooks } from './dist/src/runtime/run-common.js';
      import { pino } from 'pino';
      await runHooks([() => new Promise(() => {})], { kind: 'task', runId: 'r', runName: 'r', name: 't', state: { name: 'Completed' } }, pino({ level: 'silent' }), 200);
      process.stdout.write('after the hook');
    `;
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO_ROOT, timeout: 20_000 }, (error, out) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout: out }),
      );
    });
    expect({ code, stdout }).toEqual({ code: 0, stdout: 'after the hook' });
  });
});
