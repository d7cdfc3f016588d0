/**
 * The embedded store: the `Store` contract in memory, with the same revision semantics.
 * It keeps each value encoded, as JetStream KV does, so that a value put and a value
 * got are copies, with the types the KV store gives back: a caller that changes an
 * object it read (a cached result) changes no one else's.
 */
import { decodeValue, encodeValue, findUnserializable, toWireValue } from '../codec.js';
import { ClosedError, InvalidArgumentError, RevisionMismatchError } from '../errors.js';
import type { PutOptions, Store, StoreEntry } from './store.js';

export interface MemoryStoreOptions {
  /** Clock for expiry, ms since the epoch. @default Date.now */
  now?: () => number;
}

export function createMemoryStore(options: MemoryStoreOptions = {}): Store {
  return new MemoryStore(options.now ?? Date.now);
}

/** A stored entry: its value as the KV store would hold it, msgpack bytes. */
interface Stored {
  bytes: Uint8Array;
  revision: number;
  expiresAt: number | undefined;
}

class MemoryStore implements Store {
  readonly #buckets = new Map<string, Map<string, Stored>>();
  readonly #now: () => number;
  #closed = false;

  constructor(now: () => number) {
    this.#now = now;
  }

  async get<V>(bucket: string, key: string): Promise<StoreEntry<V> | null> {
    this.#check();
    const stored = this.#live(bucket, key);
    return stored && toEntry<V>(key, stored);
  }

  async put<V>(bucket: string, key: string, value: V, options: PutOptions = {}): Promise<number> {
    this.#check();
    // The KV store's checks, so that code tried embedded does not fail only over NATS.
    const { expectedRevision, ttlMs } = options;
    if (expectedRevision !== undefined && !(Number.isSafeInteger(expectedRevision) && expectedRevision >= 0)) {
      throw new InvalidArgumentError(`expectedRevision must be an integer >= 0, got ${expectedRevision}`);
    }
    if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs >= 0)) throw new InvalidArgumentError(`ttlMs must be >= 0, got ${ttlMs}`);
    const unserializable = findUnserializable(value, 'value');
    if (unserializable !== null) throw new InvalidArgumentError(`${bucket}/${key}: cannot store ${unserializable}`);
    const current = this.#live(bucket, key);
    const currentRevision = current?.revision ?? 0;
    if (expectedRevision !== undefined && expectedRevision !== currentRevision) {
      throw new RevisionMismatchError(`${bucket}/${key}: expected revision ${expectedRevision}, found ${currentRevision}`);
    }
    let entries = this.#buckets.get(bucket);
    if (!entries) this.#buckets.set(bucket, (entries = new Map()));
    const revision = currentRevision + 1;
    const expiresAt = ttlMs === undefined ? undefined : this.#now() + ttlMs;
    entries.set(key, { bytes: encodeValue(toWireValue(value)), revision, expiresAt });
    return revision;
  }

  async delete(bucket: string, key: string): Promise<void> {
    this.#check();
    this.#buckets.get(bucket)?.delete(key);
  }

  async list<V>(bucket: string): Promise<StoreEntry<V>[]> {
    this.#check();
    const keys = [...(this.#buckets.get(bucket)?.keys() ?? [])];
    return keys.flatMap((key) => {
      const stored = this.#live(bucket, key);
      return stored ? [toEntry<V>(key, stored)] : [];
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#buckets.clear();
  }

  #live(bucket: string, key: string): Stored | null {
    const stored = this.#buckets.get(bucket)?.get(key);
    if (!stored) return null;
    if (stored.expiresAt !== undefined && stored.expiresAt <= this.#now()) {
      this.#buckets.get(bucket)?.delete(key);
      return null;
    }
    return stored;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('store is closed');
  }
}

/** A fresh copy of the value on every read, as a KV read decodes it afresh. */
function toEntry<V>(key: string, stored: Stored): StoreEntry<V> {
  return { key, value: decodeValue(stored.bytes) as V, revision: stored.revision, expiresAt: stored.expiresAt };
}
