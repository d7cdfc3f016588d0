/**
 * The `Store` contract as tests, registered once per implementation, so the memory
 * store and the NATS KV store are held to the same behaviour.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, InvalidArgumentError, RevisionMismatchError } from '../../src/errors.js';
import type { Store } from '../../src/store/store.js';

/** A fresh store, with a clock the test moves when the store takes one. */
export interface StoreFixture {
  store: Store;
  /** Moves the store's clock forward, in ms. */
  advance?(ms: number): void;
  /** Closes the store and whatever the factory opened for it. */
  cleanup(): Promise<void>;
}

/** Keys that naive encodings into KV keys or subjects would mix up. */
export const AWKWARD_KEYS: readonly string[] = [
  'plain',
  'a.b', 'a_b', 'a-b', 'a/b', 'a b', 'a..b', '.a', 'a.', '.',
  '*', '>', 'a.*', 'a.>', 'a*', 'a>',
  '=', '==', '=3D', '=41', 'A', '%41', 'a=2Eb', '.AB', 'ü1234', '字4E2D',
  '', ' ', '\t', '\n', '\u0000', '\u0000\u0000',
  'ünïcode 字 🎉', 'task-name:user key with spaces/ünïcode',
  '\uD800', '\uD801', '\uDC00\uD800',
  'x'.repeat(1000), `${'x'.repeat(999)}y`, `y${'x'.repeat(999)}`, 'é'.repeat(1000), `${'é'.repeat(999)}e`,
  '🎉'.repeat(300),
];

/** A value with every kind of plain data the codec carries. */
export function richValue(): Record<string, unknown> {
  return {
    text: 'ünïcode ✓ 字 🎉 \u0000 end',
    empty: '',
    int: 42,
    float: -1.5,
    large: 2 ** 40,
    big: 2n ** 70n,
    negativeBig: -(2n ** 65n),
    yes: true,
    nil: null,
    missing: undefined,
    date: new Date('2024-02-29T12:34:56.789Z'),
    bytes: new Uint8Array([0, 1, 127, 128, 255]),
    list: [1, 'two', [3, [4]], { five: 5 }, null, undefined],
    set: new Set<unknown>(['a', 1, 2n]),
    map: new Map<unknown, unknown>([
      ['a', 1],
      [2, { b: new Set([1, 2]) }],
      ['nested', new Map([['inner', [new Map([[true, 'yes']])]]])],
    ]),
    '\u0000': 'a key that looks like a tag',
    '\u0000x': { '\u0000': new Map([['k', 'v']]) },
    'dotted.key with spaces': { deep: { deeper: { deepest: [{}] } } },
  };
}

/** Registers the contract tests for one implementation. */
export function describeStoreContract(name: string, makeStore: () => Promise<StoreFixture>): void {
  const fixtures: StoreFixture[] = [];
  const create = async (): Promise<StoreFixture> => {
    const fixture = await makeStore();
    fixtures.push(fixture);
    return fixture;
  };

  afterEach(async () => {
    await Promise.all(fixtures.splice(0).map((fixture) => fixture.cleanup()));
  });

  describe(`${name} (Store contract)`, () => {
    it('reads a missing key as null', async () => {
      const { store } = await create();
      expect(await store.get('b', 'nothing')).toBeNull();
    });

    it('gives back rich plain values as they were put', async () => {
      const { store } = await create();
      const revision = await store.put('b', 'rich', richValue());
      expect(await store.get('b', 'rich')).toStrictEqual({ key: 'rich', value: richValue(), revision, expiresAt: undefined });
      for (const [i, value] of [
        'a string', 0, -0.25, null, undefined, true, [], {}, new Map(), new Set(), 10n, new Date(0), new Uint8Array(), [new Map([[{}, []]])],
      ].entries()) {
        await store.put('b', `top-${i}`, value);
        expect((await store.get('b', `top-${i}`))?.value, `value ${i}`).toStrictEqual(value);
      }
    });

    // Regression: the memory store kept and returned the object itself, so a caller that changed a
    // cached result it got changed what the next cache hit returned (KV values are copies).
    it('keeps a copy of a value put, and gives a fresh copy on every read', async () => {
      const { store } = await create();
      const value = { n: 1, list: [1], map: new Map([['k', { deep: 1 }]]) };
      await store.put('b', 'k', value);
      value.n = 2;
      value.list.push(2);
      value.map.get('k')!.deep = 2;
      const first = (await store.get<typeof value>('b', 'k'))!.value;
      expect(first).toStrictEqual({ n: 1, list: [1], map: new Map([['k', { deep: 1 }]]) });
      first.n = 3;
      first.list.push(3);
      first.map.get('k')!.deep = 3;
      const second = (await store.get<typeof value>('b', 'k'))!.value;
      expect(second).not.toBe(first);
      expect(second).toStrictEqual({ n: 1, list: [1], map: new Map([['k', { deep: 1 }]]) });
      const [listed] = await store.list<typeof value>('b');
      expect(listed!.value).not.toBe(second);
      expect(listed!.value).toStrictEqual(second);
    });

    it('refuses a value that cannot be serialised with InvalidArgumentError', async () => {
      const { store } = await create();
      for (const value of [{ fn: () => 1 }, new (class Point {})(), { s: Symbol('x') }]) {
        const error = await store.put('b', 'k', value).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidArgumentError);
        expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
      expect(await store.get('b', 'k')).toBeNull();
    });

    it('increases the revision with every write to a key', async () => {
      const { store } = await create();
      const revisions = [];
      for (let i = 0; i < 5; i += 1) revisions.push(await store.put('b', 'k', i));
      for (let i = 1; i < revisions.length; i += 1) expect(revisions[i]).toBeGreaterThan(revisions[i - 1]!);
      expect(await store.get('b', 'k')).toMatchObject({ value: 4, revision: revisions.at(-1) });
    });

    it('creates a key only when it is absent under expectedRevision 0', async () => {
      const { store } = await create();
      const revision = await store.put('b', 'k', 'first', { expectedRevision: 0 });
      const error = await store.put('b', 'k', 'second', { expectedRevision: 0 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RevisionMismatchError);
      expect(error).toMatchObject({ code: 'REVISION_MISMATCH', retryable: false });
      expect(await store.get('b', 'k')).toMatchObject({ value: 'first', revision });
    });

    it('updates only at the expected revision', async () => {
      const { store } = await create();
      const first = await store.put('b', 'k', 1);
      const second = await store.put('b', 'k', 2, { expectedRevision: first });
      expect(second).toBeGreaterThan(first);
      for (const stale of [first, second + 1000]) {
        await expect(store.put('b', 'k', 3, { expectedRevision: stale })).rejects.toMatchObject({ code: 'REVISION_MISMATCH' });
      }
      await expect(store.put('b', 'absent', 1, { expectedRevision: first })).rejects.toBeInstanceOf(RevisionMismatchError);
      expect(await store.get('b', 'k')).toMatchObject({ value: 2, revision: second });
      expect(await store.get('b', 'absent')).toBeNull();
    });

    it('lets exactly one of concurrent writers with the same expected revision win', async () => {
      const { store } = await create();
      const creates = await Promise.allSettled([1, 2, 3, 4].map((n) => store.put('b', 'k', n, { expectedRevision: 0 })));
      expect(creates.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const base = (await store.get('b', 'k'))!.revision;
      const updates = await Promise.allSettled(['a', 'b', 'c', 'd'].map((v) => store.put('b', 'k', v, { expectedRevision: base })));
      const won = updates.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of updates) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'REVISION_MISMATCH' });
      expect((await store.get('b', 'k'))?.value).toBe(['a', 'b', 'c', 'd'][won[0]!]);
    });

    it('stops returning an entry once its ttl has passed, for compare-and-set too', async (context) => {
      const { store, advance } = await create();
      if (!advance) return context.skip();
      const revision = await store.put('b', 'k', 'short', { ttlMs: 1_000 });
      await store.put('b', 'forever', 'long');
      const entry = await store.get('b', 'k');
      expect(entry?.value).toBe('short');
      expect(entry?.expiresAt).toBeTypeOf('number');
      advance(999);
      expect((await store.get('b', 'k'))?.value).toBe('short');
      advance(1);
      expect(await store.get('b', 'k')).toBeNull();
      expect((await store.get('b', 'forever'))?.value).toBe('long');
      await expect(store.put('b', 'k', 'stale', { expectedRevision: revision })).rejects.toMatchObject({ code: 'REVISION_MISMATCH' });

      const again = await store.put('b', 'k', 'again', { expectedRevision: 0, ttlMs: 500 });
      expect(await store.get('b', 'k')).toMatchObject({ value: 'again', revision: again });
      advance(500);
      // Not read since it expired: compare-and-set alone must see it as absent.
      await expect(store.put('b', 'k', 'stale', { expectedRevision: again })).rejects.toMatchObject({ code: 'REVISION_MISMATCH' });
      await store.put('b', 'k', 'third', { expectedRevision: 0 });
      expect(await store.get('b', 'k')).toMatchObject({ value: 'third', expiresAt: undefined });
    });

    it('deletes a key, and may create it again', async () => {
      const { store } = await create();
      await store.put('b', 'k', 1);
      await store.delete('b', 'k');
      await store.delete('b', 'never-written');
      expect(await store.get('b', 'k')).toBeNull();
      await expect(store.put('b', 'k', 2, { expectedRevision: 1_000_000 })).rejects.toMatchObject({ code: 'REVISION_MISMATCH' });
      const revision = await store.put('b', 'k', 2, { expectedRevision: 0 });
      expect(await store.get('b', 'k')).toMatchObject({ value: 2, revision });
    });

    it('keeps awkward keys apart and returns them as given', async () => {
      const { store } = await create();
      expect(new Set(AWKWARD_KEYS).size).toBe(AWKWARD_KEYS.length);
      for (const [i, key] of AWKWARD_KEYS.entries()) await store.put('b', key, i);
      for (const [i, key] of AWKWARD_KEYS.entries()) {
        expect(await store.get('b', key), JSON.stringify(key.slice(0, 20))).toMatchObject({ key, value: i });
      }
      const revision = await store.put('b', AWKWARD_KEYS.at(-1)!, 'cas', { expectedRevision: (await store.get('b', AWKWARD_KEYS.at(-1)!))!.revision });
      expect(await store.get('b', AWKWARD_KEYS.at(-1)!)).toMatchObject({ value: 'cas', revision });
    });

    it('lists the live entries of a bucket, awkward keys as given, without deleted or expired ones', async () => {
      const { store, advance } = await create();
      expect(await store.list('empty')).toEqual([]);
      for (const [i, key] of AWKWARD_KEYS.entries()) await store.put('b', key, { i });
      await store.put('b', 'deleted', 1);
      await store.delete('b', 'deleted');
      await store.put('other', 'k', 'elsewhere');
      if (advance) await store.put('b', 'expiring', 1, { ttlMs: 1_000 });
      const byKey = <E extends { key: string }>(entries: E[]): E[] => [...entries].sort((a, b) => (a.key < b.key ? -1 : 1));
      let listed = await store.list<{ i: number }>('b');
      expect(listed.map((entry) => entry.key).sort()).toEqual([...AWKWARD_KEYS, ...(advance ? ['expiring'] : [])].sort());
      for (const entry of byKey(listed)) {
        if (entry.key === 'expiring') continue;
        expect(entry.value.i).toBe(AWKWARD_KEYS.indexOf(entry.key));
        expect(entry.revision).toBe((await store.get('b', entry.key))!.revision);
      }
      if (!advance) return;
      advance(1_001);
      listed = await store.list('b');
      expect(listed.map((entry) => entry.key)).not.toContain('expiring');
    });

    it('keeps buckets separate', async () => {
      const { store } = await create();
      await store.put('one', 'k', 'in one');
      await store.put('two', 'k', 'in two');
      expect((await store.get('one', 'k'))?.value).toBe('in one');
      expect((await store.get('two', 'k'))?.value).toBe('in two');
      await store.delete('one', 'k');
      expect(await store.get('one', 'k')).toBeNull();
      expect((await store.get('two', 'k'))?.value).toBe('in two');
      expect(await store.get('three', 'k')).toBeNull();
    });

    it('rejects every operation with ClosedError once closed', async () => {
      const { store } = await create();
      await store.put('b', 'k', 1);
      await store.close();
      await store.close();
      for (const operation of [() => store.get('b', 'k'), () => store.put('b', 'k', 2), () => store.delete('b', 'k'), () => store.list('b')]) {
        const error = await operation().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ClosedError);
        expect(error).toMatchObject({ code: 'CLOSED' });
      }
    });
  });
}
