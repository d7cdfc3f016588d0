/**
 * The NATS bus against real nats-server processes: the shared Bus contract, untrusted bytes
 * on the wire, connection ownership, a server restart, and connectNats with authentication.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { connect, nkeys, type NatsConnection, type Status } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Delivery } from '../../src/bus/bus.js';
import { createNatsBus } from '../../src/bus/nats.js';
import { ClosedError, ConnectionFailedError, InvalidArgumentError, InvalidMessageError, PayloadTooLargeError } from '../../src/errors.js';
import { connectNats, resolveNatsOption, type NatsConnectOptions } from '../../src/nats/connection.js';
import { describeBusConformance, memoryLogger, msg, record } from '../support/bus-conformance.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';

const packr = new Packr({ useRecords: false });

let server: NatsServer;
/** Connections opened by a test, closed after it whatever happened. */
const connections: NatsConnection[] = [];

beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
});

afterEach(async () => {
  const open = connections.splice(0);
  await Promise.all(open.map((c) => c.close().catch(() => undefined)));
});

afterAll(async () => {
  await server?.dispose();
});

/** A raw connection to the shared server, for publishing bytes the bus would refuse to send. */
async function rawConnection(url = server.url): Promise<NatsConnection> {
  const connection = await connect({ servers: url });
  connections.push(connection);
  return connection;
}

async function connectTracked(option: string | NatsConnectOptions, logger = memoryLogger().logger) {
  const result = await connectNats(option, logger);
  connections.push(result.connection);
  return result;
}

/** Resolves on the next status of `type` (start it before causing the status). */
function nextStatus(connection: NatsConnection, type: Status['type']): Promise<void> {
  const statuses = connection.status();
  return (async () => {
    for await (const status of statuses) if (status.type === type) return;
    throw new Error(`connection closed before status '${type}'`);
  })();
}

async function eventually(check: () => void, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

describeBusConformance('NatsBus', async ({ logger }) => {
  const { connection, owned } = await connectTracked(server.url, logger);
  return createNatsBus({ connection, owned, logger });
});

describe('NatsBus untrusted input', () => {
  async function setup(now = () => 0) {
    const { logger, records } = memoryLogger();
    const { connection, owned } = await connectTracked(server.url, logger);
    const bus = createNatsBus({ connection, owned, logger, now });
    return { bus, records, raw: await rawConnection() };
  }

  it('drops and counts messages that do not decode, warns once per interval, and keeps delivering', async () => {
    const { bus, records, raw } = await setup();
    const seen = record(bus, 'in.>');
    const iterated = bus.subscribe('in.>');
    await bus.flush();
    const garbage: Uint8Array[] = [
      randomBytes(64),
      new Uint8Array(0),
      packr.pack([1, 'task.state']),
      packr.pack({ type: 'task.state' }),
      packr.pack({ v: '1', type: 'task.state' }),
      packr.pack('just a string'),
      randomBytes(900 * 1024),
    ];
    for (const bytes of garbage) raw.publish('in.bad', bytes);
    raw.publish('in.good', packr.pack(msg(1)));
    await raw.flush();
    await eventually(() => expect(seen).toHaveLength(1));
    expect(seen[0]).toEqual({ subject: 'in.good', message: msg(1) });
    const first = await iterated[Symbol.asyncIterator]().next();
    expect(first.value).toEqual(seen[0]);
    // Two subscriptions saw every message.
    expect(bus.stats).toEqual({ received: 16, dropped: 14, unsent: 0 });
    const warnings = records.filter((r) => r['msg'] === 'dropped a message that is not a valid tenaz message');
    expect(warnings).toEqual([
      {
        level: 40,
        time: expect.any(Number),
        pid: expect.any(Number),
        hostname: expect.any(String),
        component: 'nats-bus',
        subject: 'in.bad',
        bytes: 64,
        dropped: 1,
        suppressed: 0,
        msg: 'dropped a message that is not a valid tenaz message',
      },
    ]);
  });

  it('survives a flood of garbage, logging one warning per second with the count it left out', async () => {
    let clock = 0;
    const { bus, records, raw } = await setup(() => clock);
    const seen = record(bus, 'flood');
    await bus.flush();
    for (let i = 0; i < 5000; i++) raw.publish('flood', randomBytes(1 + (i % 50)));
    raw.publish('flood', packr.pack(msg(2)));
    await raw.flush();
    await eventually(() => expect(seen).toHaveLength(1));
    clock = 1500;
    raw.publish('flood', randomBytes(8));
    await raw.flush();
    await eventually(() => expect(bus.stats.dropped).toBe(5001));
    const warnings = records.filter((r) => r['msg'] === 'dropped a message that is not a valid tenaz message');
    expect(warnings.map((w) => [w['dropped'], w['suppressed']])).toEqual([
      [1, 0],
      [5001, 4999],
    ]);
  });

  it('rejects a request whose reply is not a valid message with InvalidMessageError', async () => {
    const { bus, raw } = await setup();
    raw.subscribe('svc.garbage', { callback: (_err, m) => void m.respond(randomBytes(32)) });
    await raw.flush();
    const pending = bus.request('svc.garbage', msg());
    await expect(pending).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(pending).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(bus.stats.dropped).toBe(1);
    // The bus still answers afterwards.
    raw.subscribe('svc.ok', { callback: (_err, m) => void m.respond(packr.pack(msg(3))) });
    await raw.flush();
    await expect(bus.request('svc.ok', msg())).resolves.toMatchObject({ message: msg(3) });
  });

  it('refuses a message over the server max_payload synchronously with PayloadTooLargeError, and sends nothing', async () => {
    const { bus } = await setup();
    const seen = record(bus, 'big');
    const huge = { v: 1, type: 'test.big', blob: new Uint8Array(bus.connection.info!.max_payload + 1) };
    expect(() => bus.publish('big', huge)).toThrow(PayloadTooLargeError);
    await expect(bus.request('big', huge)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    const nearLimit = { v: 1, type: 'test.big', blob: new Uint8Array(900 * 1024) };
    bus.publish('big', nearLimit);
    await bus.flush();
    expect(seen).toHaveLength(1);
    expect(bus.connection.isClosed()).toBe(false);
  });
});

describe('NatsBus connection ownership', () => {
  it('leaves a connection it does not own open on close, taking back only its own subscriptions', async () => {
    const connection = await rawConnection();
    const { connection: adopted, owned } = await connectNats(connection, memoryLogger().logger);
    expect(adopted).toBe(connection);
    expect(owned).toBe(false);
    const bus = createNatsBus({ connection, owned, logger: memoryLogger().logger });
    const sub = bus.subscribe('svc.bus', { callback: (d) => bus.publish(d.reply!, msg()) });
    const own: string[] = [];
    connection.subscribe('svc.raw', { callback: (_err, m) => void own.push(m.subject) });
    await bus.close();
    await expect(sub.closed()).resolves.toBeUndefined();
    expect(connection.isClosed()).toBe(false);
    connection.publish('svc.raw');
    await connection.flush();
    expect(own).toEqual(['svc.raw']);
    await expect(connection.request('svc.bus', undefined, { timeout: 1000 })).rejects.toThrow(/no responders/);
  });

  it('drains without closing a connection it does not own', async () => {
    const connection = await rawConnection();
    const bus = createNatsBus({ connection, logger: memoryLogger().logger });
    const seen = record(bus, 'a');
    bus.publish('a', msg());
    await bus.drain();
    expect(seen).toHaveLength(1);
    expect(bus.isClosed).toBe(true);
    expect(connection.isClosed()).toBe(false);
  });

  it('closes a connection it owns', async () => {
    const { connection, owned } = await connectTracked(server.url);
    const bus = createNatsBus({ connection, owned, logger: memoryLogger().logger });
    await bus.close();
    expect(connection.isClosed()).toBe(true);
  });

  it('closes itself, ending subscriptions and requests, when the connection is closed under it', async () => {
    const { logger, records } = memoryLogger();
    const connection = await rawConnection();
    const bus = createNatsBus({ connection, logger });
    const sub = bus.subscribe('svc.slow');
    const pending = bus.request('svc.slow', msg(), { timeoutMs: 10_000 });
    await connection.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(sub.closed()).resolves.toBeUndefined();
    await expect(bus.closed()).resolves.toBeUndefined();
    expect(bus.isClosed).toBe(true);
    expect(records.map((r) => r['msg'])).toContain('NATS connection closed under the bus');
  });

  it('refuses a closed connection', async () => {
    const connection = await rawConnection();
    await connection.close();
    expect(() => createNatsBus({ connection, logger: memoryLogger().logger })).toThrow(ClosedError);
  });
});

describe('NatsBus across a server restart', () => {
  let restartable: NatsServer;

  beforeAll(async () => {
    restartable = await startNatsServer({ jetstream: false });
  });

  afterAll(async () => {
    await restartable?.dispose();
  });

  it('holds publishes made while disconnected, sends them in order after reconnect, and its subscriptions work again', async () => {
    const { logger, records } = memoryLogger('info');
    const options = { servers: restartable.url, reconnectTimeWaitMs: 50 };
    const { connection, owned } = await connectTracked(options, logger);
    const bus = createNatsBus({ connection, owned, logger });
    const other = createNatsBus({ ...(await connectTracked(options)), logger });
    const tight = createNatsBus({ connection, logger, reconnectBufferBytes: 0 });
    const seen = record(bus, 'r.*');
    const seenByOther = record(other, 'r.*');
    bus.publish('r.before', msg(0));
    await bus.flush();
    expect(seen.map((d) => d.message['n'])).toEqual([0]);

    const disconnected = nextStatus(connection, 'disconnect');
    await restartable.stop();
    await disconnected;
    // Let the buses see the status too (their listeners run beside ours).
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 1; i <= 5; i++) bus.publish('r.during', msg(i));
    tight.publish('r.during', msg(99));
    expect(tight.stats.unsent).toBe(1);
    const flushed = bus.flush();
    const reconnected = nextStatus(connection, 'reconnect');
    await restartable.start();
    await reconnected;
    await flushed;
    bus.publish('r.after', msg(6));
    await bus.flush();
    expect(seen.map((d) => d.message['n'])).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(bus.stats.unsent).toBe(0);

    // A second connection resubscribes on its own schedule; once it has, it receives again.
    await eventually(() => {
      bus.publish('r.probe', msg(7));
      expect(seenByOther.some((d) => d.message['n'] === 7)).toBe(true);
    });
    const logged = records.map((r) => [r['level'], r['msg']]);
    expect(logged).toContainEqual([40, 'disconnected from NATS']);
    expect(logged).toContainEqual([30, 'reconnected to NATS']);
    expect(logged).toContainEqual([30, 'sent publishes held during the disconnection']);
    await Promise.all([bus.close(), other.close(), tight.close()]);
  });

  it('discards what it holds, counted as unsent, when closed while disconnected', async () => {
    const { connection, owned } = await connectTracked({ servers: restartable.url, reconnectTimeWaitMs: 50 });
    const bus = createNatsBus({ connection, owned, logger: memoryLogger().logger });
    const disconnected = nextStatus(connection, 'disconnect');
    await restartable.stop();
    await disconnected;
    await new Promise((resolve) => setImmediate(resolve));
    bus.publish('x', msg());
    bus.publish('x', msg());
    await bus.drain();
    expect(bus.stats.unsent).toBe(2);
    expect(connection.isClosed()).toBe(true);
    await restartable.start();
  });

  it('closes, failing a waiting flush with ClosedError, when its connection gives up reconnecting', async () => {
    const { logger, records } = memoryLogger();
    const { connection, owned } = await connectTracked({ servers: restartable.url, maxReconnectAttempts: 1, reconnectTimeWaitMs: 20 }, logger);
    const bus = createNatsBus({ connection, owned, logger });
    const disconnected = nextStatus(connection, 'disconnect');
    await restartable.stop();
    await disconnected;
    await new Promise((resolve) => setImmediate(resolve));
    await expect(bus.flush()).rejects.toBeInstanceOf(ClosedError);
    await expect(bus.closed()).resolves.toBeUndefined();
    expect(records.map((r) => r['msg'])).toContain('NATS connection closed under the bus');
    await restartable.start();
  });
});

describe('connectNats', () => {
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'tenaz-nats-auth-'));
  });

  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('connects with a comma-separated URL list and owns the connection', async () => {
    const { connection, owned } = await connectTracked(`nats://127.0.0.1:1, ${server.url}`);
    expect(owned).toBe(true);
    expect(connection.isClosed()).toBe(false);
  });

  it('takes the URL from TENAZ_NATS_URL when none is given', async () => {
    const explicit = 'nats://example:4222';
    expect(resolveNatsOption(explicit, { TENAZ_NATS_URL: server.url })).toBe(explicit);
    expect(resolveNatsOption(undefined, {})).toBeUndefined();
    expect(resolveNatsOption(undefined, { TENAZ_NATS_URL: '  ' })).toBeUndefined();
    vi.stubEnv('TENAZ_NATS_URL', server.url);
    try {
      const option = resolveNatsOption();
      expect(option).toBe(server.url);
      const { connection } = await connectTracked(option as string);
      expect(connection.getServer()).toBe(`127.0.0.1:${server.port}`);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('rejects an unreachable server with a retryable ConnectionFailedError that names it without its password', async () => {
    const failure = connectNats('nats://alice:s3cret@127.0.0.1:1', memoryLogger().logger);
    await expect(failure).rejects.toBeInstanceOf(ConnectionFailedError);
    await expect(failure).rejects.toMatchObject({ code: 'CONNECTION_FAILED', retryable: true, cause: expect.any(Error) });
    const error = (await failure.catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('127.0.0.1:1');
    expect(error.message).not.toContain('s3cret');
  });

  it('refuses contradictory options and unreadable key files with InvalidArgumentError', async () => {
    const logger = memoryLogger().logger;
    await expect(connectNats({ servers: server.url, user: 'u', token: 't' }, logger)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(connectNats({ servers: server.url, pass: 'p' }, logger)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(connectNats({ servers: ' , ' }, logger)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(connectNats({ servers: server.url, maxReconnectAttempts: -2 }, logger)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(connectNats({ servers: server.url, credsFile: join(tmp, 'missing.creds') }, logger)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  describe('with authentication', () => {
    let userPass: NatsServer;
    let token: NatsServer;
    let nkey: NatsServer;
    const seed = nkeys.createUser();

    beforeAll(async () => {
      const config = join(tmp, 'nkey.conf');
      await writeFile(config, `authorization { users = [ { nkey: "${seed.getPublicKey()}" } ] }\n`);
      await writeFile(join(tmp, 'user.nk'), `${new TextDecoder().decode(seed.getSeed())}\n`);
      [userPass, token, nkey] = await Promise.all([
        startNatsServer({ jetstream: false, args: ['--user', 'u', '--pass', 'p'] }),
        startNatsServer({ jetstream: false, args: ['--auth', 'T0KEN'] }),
        startNatsServer({ jetstream: false, args: ['-c', config] }),
      ]);
    });

    afterAll(async () => {
      await Promise.all([userPass?.dispose(), token?.dispose(), nkey?.dispose()]);
    });

    /** Proves the connection is usable, not merely open. */
    async function roundTrip(connection: NatsConnection): Promise<void> {
      const bus = createNatsBus({ connection, logger: memoryLogger().logger });
      const seen: Delivery[] = record(bus, 'ping');
      bus.publish('ping', msg());
      await bus.flush();
      expect(seen).toHaveLength(1);
      await bus.close();
    }

    it('connects with user and password', async () => {
      const { connection } = await connectTracked({ servers: userPass.url, user: 'u', pass: 'p' });
      await roundTrip(connection);
    });

    it('connects with user and password given in the URL, as --nats nats://user:pass@host does', async () => {
      const url = userPass.url.replace('nats://', 'nats://u:p@');
      const { connection } = await connectTracked(url);
      await roundTrip(connection);
      const failure = connectNats(userPass.url.replace('nats://', 'nats://u:wr%40ng@'), memoryLogger().logger);
      await expect(failure).rejects.toMatchObject({ code: 'CONNECTION_FAILED', retryable: false });
      expect(((await failure.catch((e: unknown) => e)) as Error).message).not.toContain('wr');
    });

    it('connects with a token given in the URL', async () => {
      const { connection } = await connectTracked(token.url.replace('nats://', 'nats://T0KEN@'));
      await roundTrip(connection);
    });

    it('rejects a bad password with a ConnectionFailedError that is not retryable', async () => {
      const failure = connectNats({ servers: userPass.url, user: 'u', pass: 'wrong' }, memoryLogger().logger);
      await expect(failure).rejects.toBeInstanceOf(ConnectionFailedError);
      await expect(failure).rejects.toMatchObject({ code: 'CONNECTION_FAILED', retryable: false });
      const error = (await failure.catch((e: unknown) => e)) as Error;
      expect(error.message).toContain(userPass.url);
      expect(error.message).not.toContain('wrong');
    });

    it('connects with a token, and rejects a wrong one', async () => {
      const { connection } = await connectTracked({ servers: token.url, token: 'T0KEN' });
      await roundTrip(connection);
      await expect(connectNats({ servers: token.url, token: 'nope' }, memoryLogger().logger)).rejects.toMatchObject({ retryable: false });
    });

    it('connects with an nkey seed file', async () => {
      const { connection } = await connectTracked({ servers: nkey.url, nkeySeedFile: join(tmp, 'user.nk') });
      await roundTrip(connection);
      await expect(connectNats(nkey.url, memoryLogger().logger)).rejects.toBeInstanceOf(ConnectionFailedError);
    });
  });
});
