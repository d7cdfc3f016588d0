import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, it, expect } from 'vitest';
import type { BusMessage, Delivery } from '../../src/bus/bus.js';
import { createMemoryBus } from '../../src/bus/memory.js';
import { ClosedError, IllegalStateError, InvalidArgumentError, NoRespondersError, TimeoutError } from '../../src/errors.js';
import { describeBusConformance } from '../support/bus-conformance.js';

const msg = (n = 0): BusMessage => ({ v: 1, type: 'test.msg', n });

/** Subscribes with a callback that records deliveries. */
function record(bus: ReturnType<typeof createMemoryBus>, subject: string, queue?: string): Delivery[] {
  const seen: Delivery[] = [];
  bus.subscribe(subject, { queue, callback: (d) => seen.push(d) });
  return seen;
}

function memoryLogger() {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      records.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, stream), records };
}

describe('MemoryBus subject matching', () => {
  const table: Array<[pattern: string, subject: string, matches: boolean]> = [
    ['a.b', 'a.b', true],
    ['a.b', 'a.c', false],
    ['a.b', 'a.b.c', false],
    ['a.b.c', 'a.b', false],
    ['a.*', 'a.b', true],
    ['a.*', 'a.b.c', false],
    ['a.*', 'a', false],
    ['*.b', 'a.b', true],
    ['a.*.c', 'a.x.c', true],
    ['a.*.c', 'a.x.d', false],
    ['a.>', 'a.b', true],
    ['a.>', 'a.b.c.d', true],
    ['a.>', 'a', false],
    ['>', 'a', true],
    ['>', 'a.b.c', true],
    ['*', 'a', true],
    ['*', 'a.b', false],
    ['a.*.>', 'a.b.c', true],
    ['a.*.>', 'a.b', false],
    ['a.b', 'a.bb', false],
    ['a*.b', 'a*.b', true],
  ];

  it.each(table)('pattern %s against %s matches: %s', async (pattern, subject, matches) => {
    const bus = createMemoryBus();
    const seen = record(bus, pattern);
    bus.publish(subject, msg());
    await bus.flush();
    expect(seen.length).toBe(matches ? 1 : 0);
    await bus.close();
  });

  it('agrees with a reference matcher while subscriptions come and go', async () => {
    // Exercises trie insertion and pruning: removing one pattern must not disturb its neighbours.
    const reference = (pattern: string, subject: string): boolean => {
      const p = pattern.split('.');
      const s = subject.split('.');
      for (let i = 0; i < p.length; i++) {
        if (p[i] === '>') return s.length > i;
        if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
      }
      return p.length === s.length;
    };
    let seed = 42;
    // mulberry32: a seeded generator, so a failure reproduces.
    const random = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const token = (wild: boolean) => (wild ? ['a', 'b', '*', '*'] : ['a', 'b', 'c'])[random(wild ? 4 : 3)]!;
    const makeSubject = (wild: boolean) => {
      const tokens = Array.from({ length: 1 + random(3) }, () => token(wild));
      if (wild && random(4) === 0) tokens.push('>');
      return tokens.join('.');
    };
    const bus = createMemoryBus();
    const live = new Map<string, { pattern: string; seen: string[]; unsubscribe(): void }>();
    for (let round = 0; round < 200; round++) {
      const pattern = makeSubject(true);
      const seen: string[] = [];
      const sub = bus.subscribe(pattern, { callback: (d) => seen.push(d.subject) });
      live.set(`${round}`, { pattern, seen, unsubscribe: () => sub.unsubscribe() });
      if (random(2) === 0) {
        const key = [...live.keys()][random(live.size)]!;
        live.get(key)!.unsubscribe();
        live.delete(key);
      }
      const subject = makeSubject(false);
      for (const entry of live.values()) entry.seen.length = 0;
      bus.publish(subject, msg());
      await bus.flush();
      for (const entry of live.values()) expect(entry.seen.length, `${entry.pattern} vs ${subject}`).toBe(reference(entry.pattern, subject) ? 1 : 0);
    }
  });

  it('rejects invalid subjects with InvalidArgumentError', () => {
    const bus = createMemoryBus();
    for (const bad of ['', 'a..b', '.a', 'a.', 'a.>.b', 'a b', 'a.\tb']) {
      expect(() => bus.subscribe(bad)).toThrow(InvalidArgumentError);
    }
    bus.subscribe('x.>');
    // Publishing validates once somebody listens; wildcards are refused in published subjects.
    for (const bad of ['', 'a..b', 'a.*', 'a.>', '*', 'x. y']) {
      expect(() => bus.publish(bad, msg())).toThrow(InvalidArgumentError);
    }
  });

  it('rejects invalid subscribe options with InvalidArgumentError', () => {
    const bus = createMemoryBus();
    expect(() => bus.subscribe('a', { max: 0 })).toThrow(InvalidArgumentError);
    expect(() => bus.subscribe('a', { max: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => bus.subscribe('a', { queue: '' })).toThrow(InvalidArgumentError);
    expect(() => bus.subscribe('a', { queue: 'a b' })).toThrow(InvalidArgumentError);
  });

  it('stops matching once a subscription is removed, and keeps sibling subscriptions', async () => {
    const bus = createMemoryBus();
    const kept = record(bus, 'a.*.c');
    const removed: Delivery[] = [];
    const sub = bus.subscribe('a.b.c', { callback: (d) => removed.push(d) });
    sub.unsubscribe();
    bus.publish('a.b.c', msg());
    await bus.flush();
    expect(kept).toHaveLength(1);
    expect(removed).toHaveLength(0);
  });
});

describe('MemoryBus delivery', () => {
  it('never calls a subscriber synchronously inside publish', async () => {
    const bus = createMemoryBus();
    const seen = record(bus, 'a');
    bus.publish('a', msg());
    expect(seen).toHaveLength(0);
    await bus.flush();
    expect(seen).toHaveLength(1);
  });

  it('preserves publish order per subscriber, including messages published by callbacks', async () => {
    const bus = createMemoryBus();
    const order: number[] = [];
    bus.subscribe('n.*', { callback: (d) => order.push(d.message['n'] as number) });
    bus.subscribe('n.0', { callback: () => bus.publish('n.x', msg(1000)) });
    for (let i = 0; i < 25_000; i++) bus.publish(`n.${i}`, msg(i));
    await bus.flush();
    const expected = Array.from({ length: 25_000 }, (_, i) => i);
    expected.push(1000);
    expect(order).toEqual(expected);
  });

  it('hands the same delivery fields to every subscriber, reply included', async () => {
    const bus = createMemoryBus();
    const a = record(bus, 'a');
    const b = record(bus, '>');
    bus.publish('a', msg(7), { reply: 'r.1' });
    await bus.flush();
    expect(a[0]).toEqual({ subject: 'a', message: msg(7), reply: 'r.1' });
    expect(b[0]).toEqual(a[0]);
  });

  it('delivers each message to one member of each queue group and to every plain subscriber', async () => {
    const bus = createMemoryBus();
    const workers = [record(bus, 'job.*', 'workers'), record(bus, 'job.>', 'workers'), record(bus, 'job.run', 'workers')];
    const auditors = [record(bus, 'job.run', 'audit'), record(bus, 'job.*', 'audit')];
    const plain = [record(bus, 'job.run'), record(bus, '>')];
    for (let i = 0; i < 30; i++) bus.publish('job.run', msg(i));
    await bus.flush();

    const ns = (group: Delivery[][]) => group.flatMap((seen) => seen.map((d) => d.message['n'])).sort((x, y) => Number(x) - Number(y));
    const all = Array.from({ length: 30 }, (_, i) => i);
    expect(ns(workers)).toEqual(all);
    expect(ns(auditors)).toEqual(all);
    // Round robin spreads the load evenly.
    expect(workers.map((seen) => seen.length)).toEqual([10, 10, 10]);
    expect(auditors.map((seen) => seen.length)).toEqual([15, 15]);
    for (const seen of plain) expect(seen.map((d) => d.message['n'])).toEqual(all);
  });

  it('keeps delivering to the other subscribers when a callback throws, and logs the error at warn', async () => {
    const { logger, records } = memoryLogger();
    const bus = createMemoryBus({ logger });
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
    expect(records).toHaveLength(2);
    expect(records[0]).toEqual({
      level: 40,
      time: expect.any(Number),
      pid: expect.any(Number),
      hostname: expect.any(String),
      component: 'memory-bus',
      subject: 'a',
      err: expect.objectContaining({ type: 'Error', message: 'boom' }),
      msg: 'subscription callback threw',
    });
  });

  it('unsubscribes after max deliveries and resolves closed()', async () => {
    const bus = createMemoryBus();
    const seen: Delivery[] = [];
    const sub = bus.subscribe('a', { max: 2, callback: (d) => seen.push(d) });
    for (let i = 0; i < 5; i++) bus.publish('a', msg(i));
    await bus.flush();
    expect(seen.map((d) => d.message['n'])).toEqual([0, 1]);
    await expect(sub.closed()).resolves.toBeUndefined();
  });

  it('routes past a queue member that reached max to the rest of its group', async () => {
    const bus = createMemoryBus();
    const once: Delivery[] = [];
    bus.subscribe('a', { queue: 'q', max: 1, callback: (d) => once.push(d) });
    const rest = record(bus, 'a', 'q');
    for (let i = 0; i < 4; i++) bus.publish('a', msg(i));
    await bus.flush();
    expect(once).toHaveLength(1);
    expect(once.length + rest.length).toBe(4);
  });

  it('yields deliveries to a for-await loop, with max ending the loop', async () => {
    const bus = createMemoryBus();
    const sub = bus.subscribe('a', { max: 3 });
    for (let i = 0; i < 5; i++) bus.publish('a', msg(i));
    const seen: unknown[] = [];
    for await (const d of sub) seen.push(d.message['n']);
    expect(seen).toEqual([0, 1, 2]);
  });

  it('keeps order through a large iterator backlog', async () => {
    const bus = createMemoryBus();
    const sub = bus.subscribe('a', { max: 5000 });
    for (let i = 0; i < 5000; i++) bus.publish('a', msg(i));
    await bus.flush();
    const seen: unknown[] = [];
    for await (const d of sub) seen.push(d.message['n']);
    expect(seen).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it('unsubscribes when a for-await loop is left with break', async () => {
    const bus = createMemoryBus();
    const sub = bus.subscribe('a');
    bus.publish('a', msg(0));
    bus.publish('a', msg(1));
    for await (const d of sub) {
      expect(d.message['n']).toBe(0);
      break;
    }
    await expect(sub.closed()).resolves.toBeUndefined();
    // Nobody listens any more, so a request finds no responders.
    await expect(bus.request('a', msg())).rejects.toBeInstanceOf(NoRespondersError);
  });

  it('refuses to iterate a callback subscription or to iterate twice', () => {
    const bus = createMemoryBus();
    const withCallback = bus.subscribe('a', { callback: () => {} });
    expect(() => withCallback[Symbol.asyncIterator]()).toThrow(IllegalStateError);
    const sub = bus.subscribe('a');
    sub[Symbol.asyncIterator]();
    expect(() => sub[Symbol.asyncIterator]()).toThrow(IllegalStateError);
  });
});

describe('MemoryBus request', () => {
  it('resolves with the first reply', async () => {
    const bus = createMemoryBus();
    bus.subscribe('svc.echo', {
      callback: (d) => bus.publish(d.reply!, { v: 1, type: 'test.reply', echo: d.message['n'] }),
    });
    const reply = await bus.request('svc.echo', msg(42));
    expect(reply.message).toEqual({ v: 1, type: 'test.reply', echo: 42 });
    expect(reply.subject).toMatch(/^_INBOX\./);
  });

  it('works with an iterating responder', async () => {
    const bus = createMemoryBus();
    const sub = bus.subscribe('svc.*');
    void (async () => {
      for await (const d of sub) bus.publish(d.reply!, { v: 1, type: 'test.reply' });
    })();
    await expect(bus.request('svc.a', msg())).resolves.toMatchObject({ message: { type: 'test.reply' } });
    await bus.close();
  });

  it('rejects with NoRespondersError, asynchronously, when nobody subscribes', async () => {
    const bus = createMemoryBus();
    record(bus, 'other');
    const pending = bus.request('svc.none', msg());
    await expect(pending).rejects.toBeInstanceOf(NoRespondersError);
    await expect(pending).rejects.toMatchObject({ code: 'NO_RESPONDERS' });
  });

  it('rejects with TimeoutError when no reply comes in time, and cleans up its inbox', async () => {
    const bus = createMemoryBus();
    const inboxes: string[] = [];
    bus.subscribe('svc.slow', { callback: (d) => inboxes.push(d.reply!) });
    await expect(bus.request('svc.slow', msg(), { timeoutMs: 50 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    await expect(bus.request('svc.slow', msg(), { timeoutMs: 50 })).rejects.toBeInstanceOf(TimeoutError);
    expect(inboxes[0]).not.toBe(inboxes[1]);
    // The inbox was unsubscribed: nobody listens on it any more.
    await expect(bus.request(inboxes[0]!, msg())).rejects.toBeInstanceOf(NoRespondersError);
  });

  it('rejects with the abort reason when the signal aborts', async () => {
    const bus = createMemoryBus();
    record(bus, 'svc.slow');
    const controller = new AbortController();
    const reason = new Error('stop');
    const pending = bus.request('svc.slow', msg(), { signal: controller.signal, timeoutMs: 10_000 });
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await expect(bus.request('svc.slow', msg(), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  it('rejects with ClosedError when the bus closes before a reply', async () => {
    const bus = createMemoryBus();
    record(bus, 'svc.slow');
    const pending = bus.request('svc.slow', msg(), { timeoutMs: 10_000 });
    await bus.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
  });

  it('rejects invalid arguments with InvalidArgumentError', async () => {
    const bus = createMemoryBus();
    record(bus, '>');
    await expect(bus.request('a.*', msg())).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(bus.request('a', msg(), { timeoutMs: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('MemoryBus lifecycle', () => {
  it('ends iterators and subscriptions on close, and refuses further use with ClosedError', async () => {
    const bus = createMemoryBus();
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
    await expect(bus.closed()).resolves.toBeUndefined();
  });

  it('flush resolves once every message published before it was handed over', async () => {
    const bus = createMemoryBus();
    const seen = record(bus, 'a');
    await bus.flush();
    for (let i = 0; i < 100; i++) bus.publish('a', msg(i));
    await bus.flush();
    expect(seen).toHaveLength(100);
  });

  it('drain delivers what was published, including to iterators, then closes', async () => {
    const bus = createMemoryBus();
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

  it('drops undelivered messages on close', async () => {
    const bus = createMemoryBus();
    const seen = record(bus, 'a');
    bus.publish('a', msg());
    await bus.close();
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toHaveLength(0);
  });

  it('closes through Symbol.asyncDispose', async () => {
    let closedBus: ReturnType<typeof createMemoryBus> | undefined;
    {
      await using bus = createMemoryBus();
      closedBus = bus;
    }
    expect(closedBus.isClosed).toBe(true);
  });
});

// The same contract tests the NATS bus runs (test/nats/nats-bus.test.ts).
describeBusConformance('MemoryBus', async ({ logger }) => createMemoryBus({ logger }));
