/**
 * The `Bus` contract as tests, registered once per implementation, so the memory
 * bus and the NATS bus are held to the same behaviour. Each test publishes and
 * subscribes on one bus, where `flush()` guarantees the bus's own subscribers
 * have been handed everything published before it (for NATS: the server routes
 * the messages back before it answers the round trip).
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Bus, BusMessage, Delivery } from '../../src/bus/bus.js';
import { ClosedError, IllegalStateError, InvalidArgumentError, NoRespondersError, TimeoutError } from '../../src/errors.js';

/** Builds a fresh bus; the suite closes it after each test. */
export type BusFactory = (options: { logger: Logger }) => Promise<Bus>;

export const msg = (n = 0): BusMessage => ({ v: 1, type: 'test.msg', n });

/** A pino logger writing parsed records into an array. */
export function memoryLogger(level: pino.LevelWithSilent = 'warn'): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      records.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, stream), records };
}

/** Subscribes with a callback that records deliveries. */
export function record(bus: Bus, subject: string, queue?: string): Delivery[] {
  const seen: Delivery[] = [];
  bus.subscribe(subject, { queue, callback: (d) => seen.push(d) });
  return seen;
}

/** Registers the contract tests for one implementation. */
export function describeBusConformance(name: string, factory: BusFactory): void {
  const created: Bus[] = [];
  const create = async (logger: Logger = memoryLogger().logger): Promise<Bus> => {
    const bus = await factory({ logger });
    created.push(bus);
    return bus;
  };

  afterEach(async () => {
    const buses = created.splice(0);
    await Promise.all(buses.map((bus) => bus.close()));
  });

  describe(`${name} (Bus contract) subjects`, () => {
    const table: Array<[pattern: string, subject: string, matches: boolean]> = [
      ['a.b', 'a.b', true],
      ['a.b', 'a.c', false],
      ['a.b', 'a.b.c', false],
      ['a.*', 'a.b', true],
      ['a.*', 'a.b.c', false],
      ['*.b', 'a.b', true],
      ['a.*.c', 'a.x.c', true],
      ['a.>', 'a.b.c.d', true],
      ['a.>', 'a', false],
      ['>', 'a.b.c', true],
      ['a.*.>', 'a.b', false],
      ['a.b', 'a.bb', false],
    ];

    it('matches wildcards as NATS does', async () => {
      const bus = await create();
      const seen = table.map(([pattern]) => record(bus, pattern));
      for (const [, subject] of table) bus.publish(subject, msg());
      await bus.flush();
      table.forEach(([pattern, subject, matches], i) => {
        expect(seen[i]!.some((d) => d.subject === subject), `${pattern} against ${subject}`).toBe(matches);
      });
    });

    it('rejects invalid subjects with InvalidArgumentError', async () => {
      const bus = await create();
      for (const bad of ['', 'a..b', '.a', 'a.', 'a.>.b', 'a b', 'a.\tb']) {
        expect(() => bus.subscribe(bad)).toThrow(InvalidArgumentError);
      }
      bus.subscribe('x.>');
      for (const bad of ['', 'a..b', 'a.*', 'a.>', '*', 'x. y']) {
        expect(() => bus.publish(bad, msg())).toThrow(InvalidArgumentError);
      }
    });

    it('rejects invalid subscribe options with InvalidArgumentError', async () => {
      const bus = await create();
      expect(() => bus.subscribe('a', { max: 0 })).toThrow(InvalidArgumentError);
      expect(() => bus.subscribe('a', { max: 1.5 })).toThrow(InvalidArgumentError);
      expect(() => bus.subscribe('a', { queue: '' })).toThrow(InvalidArgumentError);
      expect(() => bus.subscribe('a', { queue: 'a b' })).toThrow(InvalidArgumentError);
    });
  });

  describe(`${name} (Bus contract) delivery`, () => {
    it('never calls a subscriber synchronously inside publish', async () => {
      const bus = await create();
      const seen = record(bus, 'a');
      bus.publish('a', msg());
      expect(seen).toHaveLength(0);
      await bus.flush();
      expect(seen).toHaveLength(1);
    });

    it('preserves publish order per subscriber, including messages published by callbacks', async () => {
      const bus = await create();
      const order: number[] = [];
      bus.subscribe('n.*', { callback: (d) => order.push(d.message['n'] as number) });
      bus.subscribe('n.0', { callback: () => bus.publish('n.x', msg(1000)) });
      for (let i = 0; i < 500; i++) bus.publish(`n.${i}`, msg(i));
      await bus.flush();
      // The message published by the callback went out after the flush's round trip began.
      await bus.flush();
      const expected = Array.from({ length: 500 }, (_, i) => i);
      expect(order.slice(0, 500)).toEqual(expected);
      expect(order).toHaveLength(501);
      expect(order[500]).toBe(1000);
    });

    it('hands the same delivery fields to every subscriber, reply included', async () => {
      const bus = await create();
      const a = record(bus, 'a');
      const b = record(bus, '>');
      bus.publish('a', msg(7), { reply: 'r.1' });
      await bus.flush();
      expect(a[0]).toEqual({ subject: 'a', message: msg(7), reply: 'r.1' });
      expect(b[0]).toEqual(a[0]);
    });

    it('delivers each message to one member of each queue group and to every plain subscriber', async () => {
      const bus = await create();
      const workers = [record(bus, 'job.*', 'workers'), record(bus, 'job.>', 'workers'), record(bus, 'job.run', 'workers')];
      const auditors = [record(bus, 'job.run', 'audit'), record(bus, 'job.*', 'audit')];
      const plain = [record(bus, 'job.run'), record(bus, '>')];
      for (let i = 0; i < 60; i++) bus.publish('job.run', msg(i));
      await bus.flush();

      const ns = (group: Delivery[][]) => group.flatMap((seen) => seen.map((d) => d.message['n'])).sort((x, y) => Number(x) - Number(y));
      const all = Array.from({ length: 60 }, (_, i) => i);
      expect(ns(workers)).toEqual(all);
      expect(ns(auditors)).toEqual(all);
      // Every member gets a share (NATS picks members at random; 60 messages make an empty share unlikely enough).
      for (const seen of [...workers, ...auditors]) expect(seen.length).toBeGreaterThan(0);
      for (const seen of plain) expect(seen.map((d) => d.message['n'])).toEqual(all);
    });

    it('keeps delivering to the other subscribers when a callback throws, and logs the error at warn', async () => {
      const { logger, records } = memoryLogger();
      const bus = await create(logger);
      bus.subscribe('a', {
        callback: () => {
          throw new Error('boom');
        },
      });
      const seen = record(bus, 'a');
      bus.publish('a', msg(1));
      bus.publish('a', msg(2));
      await bus.flush();
      expect(seen).toHaveLength(2);
      const thrown = records.filter((r) => r['msg'] === 'subscription callback threw');
      expect(thrown).toHaveLength(2);
      expect(thrown[0]).toMatchObject({ level: 40, subject: 'a', err: expect.objectContaining({ type: 'Error', message: 'boom' }) });
    });

    it('unsubscribes after max deliveries and resolves closed()', async () => {
      const bus = await create();
      const seen: Delivery[] = [];
      const sub = bus.subscribe('a', { max: 2, callback: (d) => seen.push(d) });
      for (let i = 0; i < 5; i++) bus.publish('a', msg(i));
      await bus.flush();
      expect(seen.map((d) => d.message['n'])).toEqual([0, 1]);
      await expect(sub.closed()).resolves.toBeUndefined();
    });

    it('yields deliveries to a for-await loop, with max ending the loop', async () => {
      const bus = await create();
      const sub = bus.subscribe('a', { max: 3 });
      for (let i = 0; i < 5; i++) bus.publish('a', msg(i));
      const seen: unknown[] = [];
      for await (const d of sub) seen.push(d.message['n']);
      expect(seen).toEqual([0, 1, 2]);
    });

    it('unsubscribes when a for-await loop is left with break', async () => {
      const bus = await create();
      const sub = bus.subscribe('a');
      bus.publish('a', msg(0));
      bus.publish('a', msg(1));
      for await (const d of sub) {
        expect(d.message['n']).toBe(0);
        break;
      }
      await expect(sub.closed()).resolves.toBeUndefined();
      await bus.flush();
      await expect(bus.request('a', msg())).rejects.toBeInstanceOf(NoRespondersError);
    });

    it('refuses to iterate a callback subscription or to iterate twice', async () => {
      const bus = await create();
      const withCallback = bus.subscribe('a', { callback: () => {} });
      expect(() => withCallback[Symbol.asyncIterator]()).toThrow(IllegalStateError);
      const sub = bus.subscribe('a');
      sub[Symbol.asyncIterator]();
      expect(() => sub[Symbol.asyncIterator]()).toThrow(IllegalStateError);
    });
  });

  describe(`${name} (Bus contract) request`, () => {
    it('resolves with the first reply', async () => {
      const bus = await create();
      bus.subscribe('svc.echo', {
        callback: (d) => bus.publish(d.reply!, { v: 1, type: 'test.reply', echo: d.message['n'] }),
      });
      const reply = await bus.request('svc.echo', msg(42));
      expect(reply.message).toEqual({ v: 1, type: 'test.reply', echo: 42 });
      expect(reply.subject).toMatch(/^_INBOX\./);
    });

    it('works with an iterating responder and concurrent requests', async () => {
      const bus = await create();
      const sub = bus.subscribe('svc.*');
      void (async () => {
        for await (const d of sub) bus.publish(d.reply!, { v: 1, type: 'test.reply', n: d.message['n'] });
      })();
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => bus.request('svc.a', msg(i))));
      expect(replies.map((r) => r.message['n'])).toEqual(Array.from({ length: 20 }, (_, i) => i));
    });

    it('rejects with NoRespondersError when nobody subscribes', async () => {
      const bus = await create();
      record(bus, 'other');
      const pending = bus.request('svc.none', msg());
      await expect(pending).rejects.toBeInstanceOf(NoRespondersError);
      await expect(pending).rejects.toMatchObject({ code: 'NO_RESPONDERS' });
    });

    it('rejects with TimeoutError when no reply comes in time, each request with its own inbox', async () => {
      const bus = await create();
      const inboxes: string[] = [];
      bus.subscribe('svc.slow', { callback: (d) => inboxes.push(d.reply!) });
      await expect(bus.request('svc.slow', msg(), { timeoutMs: 50 })).rejects.toMatchObject({ code: 'TIMEOUT' });
      await expect(bus.request('svc.slow', msg(), { timeoutMs: 50 })).rejects.toBeInstanceOf(TimeoutError);
      expect(inboxes).toHaveLength(2);
      expect(inboxes[0]).not.toBe(inboxes[1]);
      // A late reply is ignored.
      bus.publish(inboxes[0]!, msg());
      await bus.flush();
    });

    it('rejects with the abort reason when the signal aborts', async () => {
      const bus = await create();
      record(bus, 'svc.slow');
      const controller = new AbortController();
      const reason = new Error('stop');
      const pending = bus.request('svc.slow', msg(), { signal: controller.signal, timeoutMs: 10_000 });
      controller.abort(reason);
      await expect(pending).rejects.toBe(reason);
      await expect(bus.request('svc.slow', msg(), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    });

    it('rejects with ClosedError when the bus closes before a reply', async () => {
      const bus = await create();
      record(bus, 'svc.slow');
      const pending = bus.request('svc.slow', msg(), { timeoutMs: 10_000 });
      await bus.close();
      await expect(pending).rejects.toBeInstanceOf(ClosedError);
    });

    it('rejects invalid arguments with InvalidArgumentError', async () => {
      const bus = await create();
      record(bus, '>');
      await expect(bus.request('a.*', msg())).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(bus.request('a', msg(), { timeoutMs: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    });
  });

  describe(`${name} (Bus contract) lifecycle`, () => {
    it('ends iterators and subscriptions on close, and refuses further use with ClosedError', async () => {
      const bus = await create();
      const sub = bus.subscribe('a');
      const loop = (async () => {
        const seen: Delivery[] = [];
        for await (const d of sub) seen.push(d);
        return seen;
      })();
      await bus.close();
      await expect(loop).resolves.toEqual([]);
      await expect(sub.closed()).resolves.toBeUndefined();
      expect(bus.isClosed).toBe(true);
      expect(() => bus.publish('a', msg())).toThrow(ClosedError);
      expect(() => bus.subscribe('a')).toThrow(ClosedError);
      await expect(bus.request('a', msg())).rejects.toBeInstanceOf(ClosedError);
      await expect(bus.flush()).rejects.toBeInstanceOf(ClosedError);
      await expect(bus.close()).resolves.toBeUndefined();
    });

    it('flush resolves once every message published before it was handed over', async () => {
      const bus = await create();
      const seen = record(bus, 'a');
      await bus.flush();
      for (let i = 0; i < 100; i++) bus.publish('a', msg(i));
      await bus.flush();
      expect(seen).toHaveLength(100);
    });

    it('drain delivers what was published, including to iterators, then closes', async () => {
      const bus = await create();
      const seen = record(bus, 'a');
      const sub = bus.subscribe('a');
      for (let i = 0; i < 3; i++) bus.publish('a', msg(i));
      await bus.drain();
      expect(bus.isClosed).toBe(true);
      expect(seen).toHaveLength(3);
      const iterated: unknown[] = [];
      for await (const d of sub) iterated.push(d.message['n']);
      expect(iterated).toEqual([0, 1, 2]);
      await expect(bus.drain()).resolves.toBeUndefined();
    });

    it('closes through Symbol.asyncDispose', async () => {
      const bus = await create();
      await (bus as Bus & AsyncDisposable)[Symbol.asyncDispose]();
      expect(bus.isClosed).toBe(true);
    });
  });
}
