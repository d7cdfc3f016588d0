/**
 * Regression: a closed stderr pipe killed `tenaz run`. `tenaz run flow.ts 2>&1 >out.json | head -1`,
 * or a parent that closes the child's stderr after the first line, made the next log write fail
 * with EPIPE, an unhandled 'error' on process.stderr: exit 1, and no result (or a truncated one)
 * on stdout. A closed stderr must cost the logs only.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../fixtures/cli.js';

const BIN = join(REPO_ROOT, 'bin/tenaz.js');
const TIMEOUT_MS = 30_000;
const ITEMS = 20_000;

// Logs for a while after the first line (which the test waits for before closing the pipe),
// then returns a result far larger than a pipe's buffer, or fails after leaving a marker file.
const CHATTY_FLOW = `
import { writeFileSync } from 'node:fs';
import { flow, getRunLogger } from 'tenaz';
export const chatty = flow({ name: 'chatty' }, async (fail: boolean = false, marker: string = '') => {
  const log = getRunLogger();
  for (let i = 0; i < 60; i++) {
    log.info({ i }, 'still talking');
    await new Promise((done) => setTimeout(done, 5));
  }
  if (marker !== '') writeFileSync(marker, 'the flow body got to its end');
  if (fail) throw new Error('the flow gave up');
  return Array.from({ length: ${ITEMS} }, (_, i) => 'item-' + i);
});
`;

interface Outcome {
  code: number | null;
  stdout: string;
  /** What stderr carried before the test closed it. */
  firstChunk: string;
}

/** Runs `tenaz run` and destroys the read end of its stderr pipe on the first chunk; kills it by PID if it hangs. */
function runClosingStderr(cwd: string, args: readonly string[]): Promise<Outcome> {
  const env = { ...process.env };
  delete env.TENAZ_LOG_FORMAT;
  delete env.TENAZ_LOG_LEVEL;
  delete env.TENAZ_NATS_URL;
  const child = spawn(process.execPath, [BIN, 'run', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let firstChunk = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.once('data', (chunk: Buffer) => {
    firstChunk = chunk.toString('utf8');
    child.stderr.destroy();
  });
  const timer = setTimeout(() => process.kill(child.pid!, 'SIGKILL'), TIMEOUT_MS - 5_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, firstChunk });
    });
  });
}

describe.concurrent('tenaz run with its stderr closed by the reader', { timeout: TIMEOUT_MS }, () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'tenaz-closed-stderr-'));
    await writeFile(join(scratch, 'package.json'), '{ "type": "module" }\n');
    await writeFile(join(scratch, 'chatty.ts'), CHATTY_FLOW);
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it.each(['json', 'pretty'])('goes on, prints the whole result and exits 0 (%s logs)', async (format) => {
    const { code, stdout, firstChunk } = await runClosingStderr(scratch, ['chatty.ts', '--log-format', format]);
    expect(firstChunk).toContain('chatty');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as string[];
    expect(result).toHaveLength(ITEMS);
    expect(result.at(-1)).toBe(`item-${ITEMS - 1}`);
  });

  it.each(['json', 'pretty'])('still exits 1 when the flow fails, with nothing on stdout (%s logs)', async (format) => {
    const marker = join(scratch, `reached-${format}`);
    const { code, stdout, firstChunk } = await runClosingStderr(scratch, ['chatty.ts', '--param', 'fail=true', '--param', `marker=${marker}`, '--log-format', format]);
    expect(firstChunk).toContain('chatty');
    // The flow ran to its end: the process did not die at the first log line that found no reader.
    expect(existsSync(marker)).toBe(true);
    expect(code).toBe(1);
    expect(stdout).toBe('');
  });
});
