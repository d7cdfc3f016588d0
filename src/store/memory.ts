/** The embedded store: the `Store` contract in memory, with the same revision semantics. */
import { ClosedError, RevisionMismatchError } from '../errors.js';
import type { PutOptions, Store, StoreEntry } from './store.js';

export interface MemoryStoreOptions {
  /** Clock for expiry, ms since the epoch. @default Date.now */
  now?: () => number;
}

export function createMemoryStore(options: MemoryStoreOptions = {}): Store {
  return new MemoryStore(options.now ?? Date.now);
}

class MemoryStore implements Store {
  readonly #buckets = new Map<string, Map<string, StoreEntry>>();
  readonly #now: () => number;
  #closed = false;

  constructor(now: () => number) {
    this.#now = now;
  }

  async get<V>(bucket: string, key: string): Promise<StoreEntry<V> | null> {
    this.#check();
    return this.#live(bucket, key) as StoreEntry<V> | null;
  }

  async put<V>(bucket: string, key: string, value: V, options: PutOptions = {}): Promise<number> {
    this.#check();
    const current = this.#live(bucket, key);
    const currentRevision = current?.revision ?? 0;
    if (options.expectedRevision !== undefined && options.expectedRevision !== currentRevision) {
      throw new RevisionMismatchError(`${bucket}/${key}: expected revision ${options.expectedRevision}, found ${currentRevision}`);
    }
    let entries = this.#buckets.get(bucket);
    if (!entries) this.#buckets.set(bucket, (entries = new Map()));
    const revision = currentRevision + 1;
    const expiresAt = options.ttlMs === undefined ? undefined : this.#now() + options.ttlMs;
    entries.set(key, { key, value, revision, expiresAt });
    return revision;
  }

  async delete(bucket: string, key: string): Promise<void> {
    this.#check();
    this.#buckets.get(bucket)?.delete(key);
  }

  async list<V>(bucket: string): Promise<StoreEntry<V>[]> {
    this.#check();
    const keys = [...(this.#buckets.get(bucket)?.keys() ?? [])];
    return keys.flatMap((key) => this.#live(bucket, key) ?? []) as StoreEntry<V>[];
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#buckets.clear();
  }

  #live(bucket: string, key: string): StoreEntry | null {
    const entry = this.#buckets.get(bucket)?.get(key);
    if (!entry) return null;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.#now()) {
      this.#buckets.get(bucket)?.delete(key);
      return null;
    }
    return entry;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('store is closed');
  }
}
