/**
 * The record writer on the memory store: how many writes a run costs, what a
 * conflict does, and what is left when the store is away.
 */
import { describe, expect, it } from 'vitest';
import { RecordWriter } from '../../src/durable/record-writer.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { PutOptions, Store } from '../../src/store/store.js';
import { createMemoryLogger } from './runtime/helpers.js';

interface Counted {
  store: Store;
  puts: Array<{ value: unknown; expectedRevision: number | undefined }>;
  /** The next `n` puts fail with this error instead of writing. */
  failNext(n: number, error: Error): void;
}

function countedStore(): Counted {
  const inner = createMemoryStore();
  const puts: Counted['puts'] = [];
  let failures: { n: number; error: Error } = { n: 0, error: new Error() };
  const store: Store = {
    get: (bucket, key) => inner.get(bucket, key),
    list: (bucket) => inner.list(bucket),
    delete: (bucket, key) => inner.delete(bucket, key),
    close: () => inner.close(),
    put: async (bucket: string, key: string, value: unknown, options?: PutOptions) => {
      if (failures.n > 0) {
        failures.n -= 1;
        throw failures.error;
      }
      puts.push({ value, expectedRevision: options?.expectedRevision });
      return inner.put(bucket, key, value, options);
    },
  };
  return { store, puts, failNext: (n, error) => (failures = { n, error }) };
}

function writer(counted: Counted, options: { onConflict?: () => Promise<number | null>; windowMs?: number } = {}) {
  const fenced: string[] = [];
  const recordWriter = new RecordWriter<{ states: string[] }>({
    store: counted.store,
    bucket: 'runs',
    key: 'run-1',
    record: { states: [] },
    revision: 0,
    windowMs: options.windowMs ?? 20,
    snapshot: (record) => ({ states: [...record.states] }),
    onConflict: options.onConflict ?? (async () => null),
    onFenced: () => void fenced.push('fenced'),
    logger: createMemoryLogger().logger,
  });
  const add = (state: string, urgent = false) => recordWriter.update((record) => ({ states: [...record.states, state] }), urgent);
  return { recordWriter, fenced, add };
}

describe('RecordWriter', () => {
  it('writes a run that ends within its window once, with every transition', async () => {
    const counted = countedStore();
    const { recordWriter, add } = writer(counted);
    add('Pending');
    add('Running');
    add('Completed', true);
    await recordWriter.flushed();
    expect(counted.puts).toEqual([{ value: { states: ['Pending', 'Running', 'Completed'] }, expectedRevision: 0 }]);
  });

  it('lets changes made during a write wait for their window, and an end go at once', async () => {
    const counted = countedStore();
    const { recordWriter, add } = writer(counted, { windowMs: 10_000 });
    add('Pending', true);
    add('Running');
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Running waits for its window (long here): not written yet.
    expect(counted.puts).toHaveLength(1);
    add('Completed', true);
    await recordWriter.flushed();
    expect(counted.puts.map((put) => [put.value, put.expectedRevision])).toEqual([
      [{ states: ['Pending'] }, 0],
      [{ states: ['Pending', 'Running', 'Completed'] }, 1],
    ]);
  });

  it('writes nothing for a change that changes nothing', async () => {
    const counted = countedStore();
    const { recordWriter } = writer(counted);
    recordWriter.update((record) => record, true);
    await recordWriter.flushed();
    expect(counted.puts).toEqual([]);
  });

  it('is fenced by a conflict it has no right to write over, and writes nothing more', async () => {
    const counted = countedStore();
    await counted.store.put('runs', 'run-1', { states: ['someone else'] });
    const { recordWriter, fenced, add } = writer(counted);
    add('Running', true);
    await recordWriter.flushed();
    add('Completed', true);
    await recordWriter.flushed();
    expect(fenced).toEqual(['fenced']);
    expect((await counted.store.get('runs', 'run-1'))?.value).toEqual({ states: ['someone else'] });
  });

  it('writes over a conflict at the revision it is given when it has the right to', async () => {
    const counted = countedStore();
    await counted.store.put('runs', 'run-1', { states: ['from before'] });
    const { recordWriter, fenced, add } = writer(counted, { onConflict: async () => (await counted.store.get('runs', 'run-1'))!.revision });
    add('Completed', true);
    await recordWriter.flushed();
    expect(fenced).toEqual([]);
    expect((await counted.store.get('runs', 'run-1'))?.value).toEqual({ states: ['Completed'] });
  });

  it('keeps trying while the store fails, then writes what it has; a closed writer drops it', async () => {
    const counted = countedStore();
    counted.failNext(2, new Error('server away'));
    const { recordWriter, add } = writer(counted);
    add('Completed', true);
    await recordWriter.flushed();
    expect(counted.puts).toHaveLength(1);
    expect((await counted.store.get('runs', 'run-1'))?.value).toEqual({ states: ['Completed'] });

    const other = countedStore();
    other.failNext(1_000, new Error('away for good'));
    const stuck = writer(other);
    stuck.add('Completed', true);
    const flushed = stuck.recordWriter.flushed();
    stuck.recordWriter.close();
    await flushed;
    expect(other.puts).toEqual([]);
  });

  it('gives up at once when the server refuses this user the records: no retry changes a permission', async () => {
    const counted = countedStore();
    const refused = Object.assign(new Error('Permissions Violation for Publish to "$JS.API.STREAM.CREATE.KV_tenaz_runs"'), { name: 'PermissionViolationError' });
    counted.failNext(1_000, new Error('request failed', { cause: refused }));
    const { recordWriter, add } = writer(counted);
    add('Completed', true);
    // Before, it tried again every 2 s for ever, and the run it records never settled.
    await recordWriter.flushed();
    expect(counted.puts).toEqual([]);
  });
});
