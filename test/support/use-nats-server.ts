/** A nats-server shared by the tests of one file (see nats-server.ts). */
import { afterAll, beforeAll } from 'vitest';
import { startNatsServer, type NatsServer, type NatsServerOptions } from './nats-server.js';

/**
 * A nats-server for every test of the calling file: started before them, disposed of after.
 * @example const nats = useNatsServer(); ... connect({ servers: nats.server.url })
 */
export function useNatsServer(options: NatsServerOptions = {}): { readonly server: NatsServer } {
  let server: NatsServer | undefined;
  beforeAll(async () => {
    server = await startNatsServer(options);
  });
  afterAll(async () => {
    await server?.dispose();
  });
  return {
    get server(): NatsServer {
      if (server === undefined) throw new Error('the nats-server starts before the tests of the file');
      return server;
    },
  };
}
