import { describe, it, expect } from 'vitest';
import type { BusMessage, Delivery } from '../../src/bus/bus.js';
import { createMemoryBus } from '../../src/bus/memory.js';
import { NoRespondersError, TimeoutError } from '../../src/errors.js';
import { describeBusConformance } from '../support/bus-conformance.js';

const msg = (n = 0): BusMessage => ({ v: 1, type: 'test.msg', n });

/** Subscribes with a callback that records deliveries. */
function record(bus: ReturnType<typeof createMemoryBus>, subject: string, queue?: string): Delivery[] {
  const seen: Delivery[] = [];
  bus.subscribe(subject, { queue, callback: (d) => seen.push(d) });
  return seen;
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

  it('keeps order through a large iterator backlog', async () => {
    const bus = createMemoryBus();
    const sub = bus.subscribe('a', { max: 5000 });
    for (let i = 0; i < 5000; i++) bus.publish('a', msg(i));
    await bus.flush();
    const seen: unknown[] = [];
    for await (const d of sub) seen.push(d.message['n']);
    expect(seen).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

});

describe('MemoryBus request', () => {
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

});

describe('MemoryBus lifecycle', () => {
  it('drops undelivered messages on close', async () => {
    const bus = createMemoryBus();
    const seen = record(bus, 'a');
    bus.publish('a', msg());
    await bus.close();
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toHaveLength(0);
  });

});

// The same contract tests the NATS bus runs (test/nats/nats-bus.test.ts).
describeBusConformance('MemoryBus', async ({ logger }) => createMemoryBus({ logger }));
