/**
 * The NATS KV store against a real nats-server (Debian's 2.9.10): the Store contract,
 * then what only a server shows: bytes written by someone else, writers on separate
 * connections as separate processes would be, and a server restart.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import { InvalidArgumentError, PayloadTooLargeError, RevisionMismatchError } from '../../src/errors.js';
import { createKvStore, parseKvKey, toKvKey, type KvStore, type KvStoreOptions } from '../../src/store/kv.js';
import { memoryLogger } from '../support/bus-conformance.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { AWKWARD_KEYS, describeStoreContract, richValue } from '../support/store-conformance.js';

let server: NatsServer;
beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.dispose();
});

let namespaces = 0;

interface Opened {
  store: KvStore;
  connection: NatsConnection;
  records: Array<Record<string, unknown>>;
  advance(ms: number): void;
  cleanup(): Promise<void>;
}

/** A store on its own connection, as a process would have, in a fresh namespace unless given one. */
async function openStore(options: Partial<KvStoreOptions> = {}): Promise<Opened> {
  const connection = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
  const { logger, records } = memoryLogger();
  let now = 1_700_000_000_000;
  const store = createKvStore({ connection, logger, namespace: `t${(namespaces += 1)}`, now: () => now, ...options });
  return {
    store,
    connection,
    records,
    advance: (ms) => {
      now += ms;
    },
    cleanup: async () => {
      await store.close();
      await connection.close();
    },
  };
}

async function eventually<T>(attempt: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function nextStatus(connection: NatsConnection, type: string): Promise<void> {
  for await (const status of connection.status()) if (status.type === type) return;
}

describeStoreContract('kv store', () => openStore());

describe('toKvKey', () => {
  it('escapes every key into a distinct valid KV key that parseKvKey reverses', () => {
    const kvKeys = AWKWARD_KEYS.map(toKvKey);
    expect(new Set(kvKeys).size).toBe(AWKWARD_KEYS.length);
    for (const [i, kvKey] of kvKeys.entries()) {
      expect(kvKey).toMatch(/^[-/=\w]+$/);
      expect(kvKey.length).toBeLessThanOrEqual(256);
      const parsed = parseKvKey(kvKey);
      if (kvKey.includes('==')) expect(parsed).toBeNull();
      else expect(parsed).toBe(AWKWARD_KEYS[i]);
    }
    expect(['a.b', '', '=', 'ü字', '.AB', 'run-1/a_b'].map(toKvKey)).toEqual(['a=2Eb', '=', '=3D', '=FC=u5B57', '=2EAB', 'run-1/a_b']);
    expect([parseKvKey('=41'), parseKvKey('a.b'), parseKvKey('=4'), parseKvKey('=u00FC')]).toEqual([null, null, null, null]);
  });
});

describe('kv store', () => {
  it('rejects names KV cannot hold and values the codec cannot carry', async () => {
    const { store, connection, cleanup } = await openStore();
    try {
      for (const bucket of ['', 'a.b', 'a b', 'ü', 'a>']) {
        await expect(store.get(bucket, 'k')).rejects.toBeInstanceOf(InvalidArgumentError);
        await expect(store.put(bucket, 'k', 1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
      expect(() => createKvStore({ connection, logger: memoryLogger().logger, namespace: 'a.b' })).toThrow(InvalidArgumentError);
      for (const value of [{ f: () => 1 }, new (class Point {})(), { s: Symbol('s') }]) {
        await expect(store.put('b', 'k', value)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
      await expect(store.put('b', 'k', 1, { expectedRevision: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(store.put('b', 'k', new Uint8Array(2 * 1024 * 1024))).rejects.toBeInstanceOf(PayloadTooLargeError);
      expect(await store.get('b', 'k')).toBeNull();
    } finally {
      await cleanup();
    }
  });

  it('lists a bucket larger than one read of the stream, each key once at its latest revision', async () => {
    const { store, cleanup } = await openStore();
    try {
      const keys = Array.from({ length: 2_500 }, (_, i) => `run-${i}`);
      for (let start = 0; start < keys.length; start += 250) await Promise.all(keys.slice(start, start + 250).map((key, i) => store.put('many', key, start + i)));
      const rewritten = await store.put('many', 'run-7', 'again');
      const listed = await store.list<number | string>('many');
      expect(listed).toHaveLength(2_500);
      expect(new Set(listed.map((entry) => entry.key)).size).toBe(2_500);
      expect(listed.find((entry) => entry.key === 'run-7')).toMatchObject({ value: 'again', revision: rewritten });
    } finally {
      await cleanup();
    }
  });

  it('reads garbage put into its bucket by someone else as absent, with a rate-limited warning', async () => {
    const { store, connection, records, advance, cleanup } = await openStore();
    try {
      await store.put('cache', 'healthy', richValue());
      const raw = await new Kvm(connection).open(store.kvBucketName('cache'));
      const packr = new Packr({ useRecords: false, moreTypes: true });
      const longKey = 'k'.repeat(600);
      const garbage: Array<[string, Uint8Array]> = [
        ['empty', new Uint8Array()],
        ['random', randomBytes(64)],
        ['text', new TextEncoder().encode('{"v":1,"value":"json"}')],
        ['array', packr.pack([1, 2, 3])],
        ['version', packr.pack({ v: 2, value: 1 })],
        ['no-value', packr.pack({ v: 1 })],
        ['expiry', packr.pack({ v: 1, value: 1, expiresAt: 'soon' })],
        // {v: 1, value: <a Map extension whose payload is the string 'x', not a list of entries>}
        ['tag', new Uint8Array([0x82, 0xa1, 0x76, 0x01, 0xa5, 0x76, 0x61, 0x6c, 0x75, 0x65, 0xd5, 0x4d, 0xa1, 0x78])],
        [longKey, packr.pack({ v: 1, value: 'for another key', key: 'other' })],
      ];
      for (const [key, bytes] of garbage) await raw.put(toKvKey(key), bytes);

      for (const [key] of garbage) expect(await store.get('cache', key)).toBeNull();
      const warnings = records.filter((r) => r.level === 40);
      expect(warnings).toEqual([
        expect.objectContaining({
          component: 'kv-store',
          msg: 'garbled store entry read as absent',
          bucket: 'cache',
          key: 'empty',
          revision: expect.any(Number),
          reason: 'not a store envelope',
          droppedSinceLastWarning: 1,
          droppedTotal: 1,
        }),
      ]);
      advance(5_000);
      expect(await store.get('cache', longKey)).toBeNull();
      expect(records.filter((r) => r.level === 40).at(-1)).toMatchObject({ key: longKey, reason: 'stored for another key', droppedSinceLastWarning: garbage.length, droppedTotal: garbage.length + 1 });

      // The store goes on working, and a garbled entry counts as absent for create-if-absent.
      expect((await store.get('cache', 'healthy'))?.value).toStrictEqual(richValue());
      const revision = await store.put('cache', 'random', 'repaired', { expectedRevision: 0 });
      expect(await store.get('cache', 'random')).toMatchObject({ value: 'repaired', revision });
      await expect(store.put('cache', 'text', 'x', { expectedRevision: 1 })).rejects.toBeInstanceOf(RevisionMismatchError);
    } finally {
      await cleanup();
    }
  });

  it('refuses an update expecting a revision this process wrote once another process wrote the key since', async () => {
    const namespace = `since${(namespaces += 1)}`;
    const [a, b] = (await Promise.all([1, 2].map(() => openStore({ namespace })))) as [Opened, Opened];
    try {
      // A remembers the revisions it wrote without a time to live and updates them without a read first.
      const mine = await a.store.put('runs', 'r', 'a1', { expectedRevision: 0 });
      const next = await a.store.put('runs', 'r', 'a2', { expectedRevision: mine });
      await b.store.put('runs', 'r', 'b', { expectedRevision: next, ttlMs: 60_000 });
      await expect(a.store.put('runs', 'r', 'a3', { expectedRevision: next })).rejects.toBeInstanceOf(RevisionMismatchError);
      expect((await a.store.get('runs', 'r'))?.value).toBe('b');
      // After a delete, the key is absent whatever this process wrote before.
      const again = await a.store.put('runs', 'gone', 1, { expectedRevision: 0 });
      await b.store.delete('runs', 'gone');
      await expect(a.store.put('runs', 'gone', 2, { expectedRevision: again })).rejects.toBeInstanceOf(RevisionMismatchError);
    } finally {
      await Promise.all([a, b].map((opened) => opened.cleanup()));
    }
  });

  it('lets exactly one of two processes win each compare-and-set, and loses no increment', async () => {
    const namespace = `race${(namespaces += 1)}`;
    const processes = await Promise.all([1, 2, 3, 4].map(() => openStore({ namespace })));
    try {
      const [a, b] = processes as [Opened, Opened];
      // All create the bucket at the same moment.
      await Promise.all(processes.map(({ store }, i) => store.put('runs', `hello-${i}`, i)));
      await a.store.put('runs', 'r', 0, { expectedRevision: 0 });
      for (let round = 0; round < 20; round += 1) {
        const { revision } = (await a.store.get('runs', 'r'))!;
        const outcomes = await Promise.allSettled([a.store.put('runs', 'r', `a${round}`, { expectedRevision: revision }), b.store.put('runs', 'r', `b${round}`, { expectedRevision: revision })]);
        expect(outcomes.filter((o) => o.status === 'fulfilled'), `round ${round}`).toHaveLength(1);
        const loser = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
        expect(loser.reason).toBeInstanceOf(RevisionMismatchError);
      }

      const increment = async (store: KvStore): Promise<void> => {
        for (;;) {
          const current = await store.get<number>('runs', 'counter');
          try {
            await store.put('runs', 'counter', (current?.value ?? 0) + 1, { expectedRevision: current?.revision ?? 0 });
            return;
          } catch (error) {
            if (!(error instanceof RevisionMismatchError)) throw error;
          }
        }
      };
      await Promise.all(processes.map(async ({ store }) => {
        for (let i = 0; i < 10; i += 1) await increment(store);
      }));
      expect((await a.store.get('runs', 'counter'))?.value).toBe(40);
    } finally {
      await Promise.all(processes.map((p) => p.cleanup()));
    }
  });

  // Regression: 2.9.10 lists a stream another process is still adding. Adding it too could fail
  // with "subjects overlap" (10065); a first write could meet no responders; a first read went
  // unanswered for 5 s (direct get), or crashed the server (msg get).
  it('creates one bucket from many processes at once, whatever limits each asks for', async () => {
    const namespace = `many${(namespaces += 1)}`;
    const processes = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => openStore({ namespace, bucketMaxAgeMs: i % 2 === 0 ? 0 : 60_000 })));
    try {
      for (let round = 0; round < 30; round += 1) {
        const bucket = `b${round}`;
        const written = await Promise.all(processes.map(async ({ store }, i) => {
          if (i % 3 === 0) expect(await store.get(bucket, 'nothing')).toBeNull();
          return store.put(bucket, `k${i}`, i, { expectedRevision: 0 });
        }));
        expect(new Set(written).size).toBe(processes.length);
      }
      expect(server.output).not.toContain('panic');
    } finally {
      await Promise.all(processes.map((p) => p.cleanup()));
    }
  });

  it('creates buckets with the configured limits, and opens buckets created with others', async () => {
    const namespace = `limits${(namespaces += 1)}`;
    const first = await openStore({ namespace, bucketMaxAgeMs: 60_000 });
    const second = await openStore({ namespace });
    try {
      await first.store.put('results', 'k', 1);
      await second.store.put('results', 'k', 2);
      expect((await first.store.get('results', 'k'))?.value).toBe(2);
      const info = await (await jetstreamManager(first.connection)).streams.info(`KV_${first.store.kvBucketName('results')}`);
      expect(info.config).toMatchObject({ max_age: nanos(60_000), max_msgs_per_subject: 1, num_replicas: 1 });
    } finally {
      await Promise.all([first.cleanup(), second.cleanup()]);
    }
  });

  // Last in the file: it restarts the server.
  it('keeps its data across a server restart', async () => {
    const opened = await openStore();
    const { store, cleanup } = opened;
    try {
      const revisions = new Map<string, number>();
      for (const key of AWKWARD_KEYS.slice(0, 10)) revisions.set(key, await store.put('runs', key, { key, rich: richValue() }));
      await store.put('cache', 'ttl', 'kept', { ttlMs: 60_000 });

      // nats.js drops requests made while it is disconnected: wait for the reconnect.
      const reconnected = nextStatus(opened.connection, 'reconnect');
      await server.stop();
      await server.start();
      await reconnected;

      const entry = await eventually(() => store.get('runs', AWKWARD_KEYS[0]!));
      expect(entry?.revision).toBe(revisions.get(AWKWARD_KEYS[0]!));
      for (const [key, revision] of revisions) {
        expect(await store.get('runs', key)).toStrictEqual({ key, value: { key, rich: richValue() }, revision, expiresAt: undefined });
      }
      expect((await store.get('cache', 'ttl'))?.value).toBe('kept');
      const next = await store.put('runs', AWKWARD_KEYS[0]!, 'moved on', { expectedRevision: entry!.revision });
      expect(next).toBeGreaterThan(entry!.revision);

      // A process started after the restart sees the same.
      const later = await openStore({ namespace: store.namespace });
      try {
        expect(await later.store.get('runs', AWKWARD_KEYS[0]!)).toMatchObject({ value: 'moved on', revision: next });
      } finally {
        await later.cleanup();
      }
    } finally {
      await cleanup();
    }
  });
});
