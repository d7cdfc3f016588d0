/**
 * `tenaz start --wait` across a nats-server restart: the server is stopped by its PID while
 * the run goes on in a worker, and started again on the same port and store. The waiting
 * command rides it out and ends with how the run really ended.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenazProcesses } from '../fixtures/nats/tenaz-process.js';
import { useNatsServer } from '../support/use-nats-server.js';
import { HitServer } from '../support/processes.js';

const DURABLE = 'test/fixtures/nats/durable.ts';
const SERVING = /^tenaz: serving .* on nats:\/\/127\.0\.0\.1:\d+; concurrency \d+$/m;
const STARTED = /^tenaz: started flow run '[a-z]+-[a-z]+' \(([0-9a-f-]{36})\) of flow 'durable-steps'$/m;
const STEPS = 16;

const nats = useNatsServer();
const hits = new HitServer();
const processes = new TenazProcesses();

beforeAll(async () => {
  await hits.start();
});
afterAll(async () => {
  await processes.killAll();
  await hits.stop();
});

describe('tenaz start --wait across a server restart', { timeout: 28_000 }, () => {
  it('waits through the outage and exits 0 with the result once the run completes', async () => {
    await processes.spawn(['worker', DURABLE, '--nats', nats.server.url]).waitFor('stderr', SERVING);
    const args = ['--param', `hitUrl=${hits.url}`, '--param', `steps=${STEPS}`, '--param', 'stepMs=300'];
    const start = processes.spawn(['start', 'durable-steps', ...args, '--wait', '--nats', nats.server.url]);
    await start.waitFor('stderr', STARTED);
    await sleep(1_000);
    await nats.server.stop();
    await sleep(3_500);
    await nats.server.start();
    const exit = await Promise.race([start.exited, sleep(20_000).then(() => null)]);
    expect(exit, `tenaz start --wait still waits\n${start.stderr}`).not.toBeNull();
    expect(exit!.code, start.stderr).toBe(0);
    expect(start.stderr).not.toMatch(/internal error|closing without draining/);
    const total = Array.from({ length: STEPS }, (_, index) => index * 10).reduce((a, b) => a + b, 0);
    expect(JSON.parse(start.stdout)).toMatchObject({ total });
  });
});
