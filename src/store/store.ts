/**
 * The store contract: key-value buckets with revisions, so that a write can be
 * made conditional on the revision the writer last saw (compare-and-set).
 * The embedded store keeps it in memory; the NATS store in JetStream KV.
 * Values are plain data (what the codec can carry).
 */

export interface StoreEntry<V = unknown> {
  key: string;
  value: V;
  /** Increases with every write to the key. */
  revision: number;
  /** When the entry stops being returned, ms since the epoch; none when undefined. */
  expiresAt: number | undefined;
}

export interface PutOptions {
  /** Only write when the current revision is this one (0: only when the key does not exist). */
  expectedRevision?: number;
  /** Time to live, in ms. */
  ttlMs?: number;
}

export interface Store {
  /** The entry, or `null` when missing or expired. */
  get<V = unknown>(bucket: string, key: string): Promise<StoreEntry<V> | null>;
  /**
   * Writes the value and resolves with the new revision. Rejects with a
   * `RevisionMismatchError` (code `REVISION_MISMATCH`) when `expectedRevision` does not hold.
   */
  put<V = unknown>(bucket: string, key: string, value: V, options?: PutOptions): Promise<number>;
  delete(bucket: string, key: string): Promise<void>;
  /**
   * Every live entry of the bucket, in no particular order; garbled and expired
   * entries are left out. It reads the whole bucket: for listings, not hot paths.
   */
  list<V = unknown>(bucket: string): Promise<StoreEntry<V>[]>;
  close(): Promise<void>;
}

export const CACHE_BUCKET = 'cache';
