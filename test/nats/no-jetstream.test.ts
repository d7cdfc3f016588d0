/**
 * A server without JetStream cannot hold tenaz's queues, records or history: every command
 * and connectOrchestrator() refuse it at once, in one line, instead of a flow waiting for
 * ever for workers its dispatches never reach.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionFailedError, connectOrchestrator } from '../../src/index.js';
import { runTenaz, stackLines } from '../fixtures/cli.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { createMemoryLogger } from '../unit/runtime/helpers.js';

let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
});

afterAll(async () => {
  await server?.stop();
});

describe('a NATS server without JetStream', { timeout: 30_000 }, () => {
  it('is refused by connectOrchestrator() with ConnectionFailedError saying how to fix it', async () => {
    const { logger } = createMemoryLogger('silent');
    const error = await connectOrchestrator({ nats: server.url, logger }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionFailedError);
    expect((error as Error).message).toMatch(/has no JetStream.*start nats-server with -js/);
  });

  it.each([['run', 'examples/batch.ts'], ['worker', 'examples/batch.ts'], ['watch'], ['runs', 'ls']])(
    'tenaz %s stops with one line and exit code 2',
    async (...command) => {
      const cli = await runTenaz([...command, '--nats', server.url], { timeoutMs: 20_000 });
      expect(cli.code).toBe(2);
      const notes = cli.stderr.split('\n').filter((line) => line.startsWith('tenaz:'));
      expect(notes).toEqual([expect.stringMatching(/^tenaz: the NATS server at .* has no JetStream/)]);
      expect(stackLines(cli.stderr)).toEqual([]);
    },
  );
});
