/**
 * `tenaz` commands run as each role of deploy/nats/auth.conf, on a server where flows have
 * run already (every stream and bucket exists, so nothing fails on creating one). A command
 * run as a role that may not do what it does stops before doing anything, with one
 * `tenaz: ...` line and exit code 2. Regressions:
 * - `tenaz worker` (serving flows) as the worker role logged refused subscriptions to
 *   `tenaz.owner.…` and kept running;
 * - `tenaz worker --no-flows` as the client role, and `tenaz worker` as the observer role,
 *   said "serving …", the client one stopping only at its first refused claim;
 * - `tenaz run` as the worker or observer role made a run whose every task run failed
 *   (exit 1, a stack and twenty log lines);
 * - `tenaz watch` as the worker role, which reads the history, warned of a refused
 *   subscription to live events it does not need.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { findRefused, flowOwnerPermissions, taskWorkerPermissions } from '../../src/cli/permissions.js';
import { createSubjects } from '../../src/subjects.js';
import { runTenaz, splitJsonLogs, stackLines, type CliResult } from '../fixtures/cli.js';
import { TenazProcesses } from '../fixtures/nats/tenaz-process.js';
import { useNatsServer } from '../support/use-nats-server.js';

type Role = 'client' | 'service' | 'worker' | 'observer';

// auth.conf as it is, but for its addresses and store, which the test server gets from its flags.
const dir = mkdtempSync(join(tmpdir(), 'tenaz-roles-'));
const config = join(dir, 'auth.conf');
writeFileSync(
  config,
  readFileSync(fileURLToPath(new URL('../../deploy/nats/auth.conf', import.meta.url)), 'utf8').replace(/^\s*(listen|http|store_dir):.*$/gm, ''),
);
const nats = useNatsServer({ args: ['-c', config] });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The server's URL with the role's user and password of auth.conf. */
function as(role: Role): string {
  return nats.server.url.replace('nats://', `nats://${role}:change-me-${role}@`);
}

/**
 * Bounds a refused command: it stops within a second or two. Without the fix, the worker
 * cases never stop by themselves, and the runner kills them (exit code null).
 */
const REFUSED_WITHIN_MS = 15_000;

/**
 * What a refused command must have written: exactly one `tenaz:` line (returned), no stack,
 * no warning or error logged (the refusals it provoked are not its output), and nothing else
 * but the connection's own info lines.
 */
function oneRefusalLine(result: CliResult): string {
  expect(result.code, result.stderr).toBe(2);
  const { logs, rest } = splitJsonLogs(result.stderr);
  expect(rest, result.stderr).toHaveLength(1);
  expect(rest[0]).toMatch(/^tenaz: /);
  expect(stackLines(result.stderr)).toEqual([]);
  expect(logs.filter((record) => (record.level as number) >= 40)).toEqual([]);
  expect(result.stderr).not.toMatch(/Permissions Violation|^tenaz: serving|Created flow run/m);
  expect(result.stdout).toBe('');
  return rest[0]!;
}

describe('tenaz commands under the roles of deploy/nats/auth.conf', () => {
  // A deployment in use: a flow run end to end, the service role serving it, the client role running it.
  beforeAll(async () => {
    const processes = new TenazProcesses();
    try {
      const service = processes.spawn(['worker', 'test/fixtures/nats/chain.ts', '--nats', as('service')]);
      await service.waitFor('stderr', /^tenaz: serving flow\(s\) /m);
      const run = await runTenaz(['run', 'test/fixtures/nats/chain.ts', '--flow', 'chain', '--param', 'n=2', '--nats', as('client')]);
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ total: 3 });
      service.signal('SIGINT');
      expect((await service.exited).code, service.stderr).toBe(0);
    } finally {
      await processes.killAll();
    }
  }, 40_000);

  it('refuses tenaz worker serving flows as the worker role, in one line naming what it may not do and the fixes', async () => {
    const result = await runTenaz(['worker', 'examples/batch.ts', '--nats', as('worker')], { timeoutMs: REFUSED_WITHIN_MS });
    const line = oneRefusalLine(result);
    expect(line).toMatch(/^tenaz: the NATS user may not subscribe to 'tenaz\.owner\.\*', which serving flows needs to .*: give --no-flows to serve the tasks only, or run it as the service role; see deploy\/nats\/auth\.conf/);
  }, 20_000);

  it('refuses tenaz worker --no-flows as the client role at start, rather than at its first claim', async () => {
    const result = await runTenaz(['worker', 'test/fixtures/nats/chain.ts', '--no-flows', '--nats', as('client')], { timeoutMs: REFUSED_WITHIN_MS });
    expect(oneRefusalLine(result)).toMatch(/^tenaz: the NATS user may not subscribe to 'tenaz\.worker\.\*', which a worker needs to .*: run it as the worker or service role; /);
  }, 20_000);

  it('refuses tenaz worker as the observer role at start, with or without --no-flows', async () => {
    const [flows, tasks] = await Promise.all([
      runTenaz(['worker', 'test/fixtures/nats/chain.ts', '--nats', as('observer')], { timeoutMs: REFUSED_WITHIN_MS }),
      runTenaz(['worker', 'test/fixtures/nats/chain.ts', '--no-flows', '--nats', as('observer')], { timeoutMs: REFUSED_WITHIN_MS }),
    ]);
    // Serving flows and tasks takes the service role: the worker role alone would not do.
    expect(oneRefusalLine(flows)).toMatch(/^tenaz: the NATS user may not subscribe to 'tenaz\.worker\.\*', .*: run it as the service role, which serves flows and tasks; /);
    expect(oneRefusalLine(tasks)).toMatch(/^tenaz: the NATS user may not subscribe to 'tenaz\.worker\.\*', .*: run it as the worker or service role; /);
  }, 20_000);

  it('refuses tenaz run as the worker and observer roles with one line and no other output, before any run is made', async () => {
    const results = await Promise.all(
      (['worker', 'observer'] as const).map((role) =>
        runTenaz(['run', 'test/fixtures/nats/chain.ts', '--flow', 'chain', '--param', 'n=2', '--nats', as(role)], { timeoutMs: REFUSED_WITHIN_MS }),
      ),
    );
    for (const result of results) {
      expect(oneRefusalLine(result)).toMatch(/^tenaz: the NATS user may not subscribe to 'tenaz\.owner\.\*', which tenaz run needs to .*: run it as the client or service role; /);
      // Not even the connection's info lines: the check comes before the command connects.
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 20_000);

  // Regression (QA round 8): these printed the connection's JSON warning, then a line naming an internal subject.
  it('refuses tenaz runs and tenaz start as the worker and observer roles with one line naming the role to use', async () => {
    const commands = [['runs', 'ls'], ['runs', 'show', 'x'], ['runs', 'cancel', 'x'], ['start', 'chain']];
    const results = await Promise.all(
      (['worker', 'observer'] as const).flatMap((role) => commands.map((command) => runTenaz([...command, '--nats', as(role)], { timeoutMs: REFUSED_WITHIN_MS }))),
    );
    for (const result of results) {
      expect(oneRefusalLine(result)).toMatch(/^tenaz: the NATS user may not publish to '\$KV\.tenaz_runs\.\*', which tenaz (runs ls|runs show|runs cancel|start) needs to read and write the run records: run it as the client or service role; /);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 30_000);

  it('runs a flow as the client role on a worker of the worker role, watched by the observer role and, through the history, the worker role, with no refusal', async (context) => {
    const processes = new TenazProcesses();
    context.onTestFinished(() => processes.killAll());
    const worker = processes.spawn(['worker', 'test/fixtures/nats/chain.ts', '--no-flows', '--nats', as('worker')]);
    const observer = processes.spawn(['watch', '--json', '--flow', 'chain', '--nats', as('observer')]);
    const workerWatch = processes.spawn(['watch', '--json', '--flow', 'chain', '--nats', as('worker')]);
    await worker.waitFor('stderr', /^tenaz: serving /m);
    await observer.waitFor('stderr', /^tenaz: watching tenaz\.evt\.chain\.> on \S+$/m);
    // One line says how it watches; the subscription it may not make is not tried.
    await workerWatch.waitFor('stderr', /^tenaz: watching tenaz\.evt\.chain\.> on \S+ through the event history \(this user may not subscribe to live events\)$/m);
    const run = await runTenaz(['run', 'test/fixtures/nats/chain.ts', '--flow', 'chain', '--param', 'n=3', '--nats', as('client')]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ total: 7 });
    const completed = /^(?=.*"type":"flow\.state")(?=.*"name":"Completed").*$/m;
    await observer.waitFor('stdout', completed);
    await workerWatch.waitFor('stdout', completed);
    for (const p of [worker, observer, workerWatch]) p.signal('SIGINT');
    for (const p of [worker, observer, workerWatch]) expect((await p.exited).code, p.stderr).toBe(0);
    for (const output of [worker, observer, workerWatch, run]) {
      expect(output.stdout + output.stderr).not.toMatch(/Permissions Violation|refused/);
      expect(splitJsonLogs(output.stderr).logs.filter((record) => (record.level as number) >= 40)).toEqual([]);
    }
  }, 40_000);

  it('probes subscriptions and publishes: it finds each one refused, and its publishes store nothing', async (context) => {
    const open = async (role: Role) => {
      const connection = await connect({ servers: nats.server.url, user: role, pass: `change-me-${role}` });
      context.onTestFinished(() => connection.close());
      return connection;
    };
    const subjects = createSubjects();
    const client = await open('client');
    const jsm = await jetstreamManager(client);
    const stored = async () => [(await jsm.streams.info('KV_tenaz_runs')).state.messages, (await jsm.streams.info('tenaz_tasks')).state.messages];
    const before = await stored();
    const worker = taskWorkerPermissions(subjects, 'fix');
    const owner = flowOwnerPermissions(subjects, 'tenaz run', 'fix');
    // The client may own runs, not run task runs: it may neither hear cancels nor claim.
    expect(await findRefused(client, [...worker, ...owner])).toEqual(worker);
    // The worker role the other way round, but for the control subject it listens on too.
    expect(await findRefused(await open('worker'), [...worker, ...owner])).toEqual([owner[0], owner[2]]);
    expect(await findRefused(await open('service'), [...worker, ...owner])).toEqual([]);
    expect(await stored()).toEqual(before);
  });
});
