/**
 * The NATS store: the `Store` contract over JetStream KV, one KV bucket per store bucket
 * (`<namespace>_<bucket>`), created on first use. Revisions are KV revisions; compare-and-set
 * is the server's expected-last-sequence check, so it holds across processes. nats-server
 * 2.9 has no per-key TTL (2.11), so values sit in an envelope `{ v: 1, value, expiresAt? }`
 * and an expired entry reads as absent, for compare-and-set too. Bytes in a bucket are
 * untrusted: an entry that does not decode is logged (rate-limited) and reads as absent.
 */
import { createHash } from 'node:crypto';
import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { RequestError, headers, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { decodeValue, encodeValue, findUnserializable, toWireValue } from '../codec.js';
import { DropCounter } from '../drop-counter.js';
import { ClosedError, InvalidArgumentError, NoRespondersError, PayloadTooLargeError, RevisionMismatchError } from '../errors.js';
import { StreamPublisher } from '../nats/stream-publisher.js';
import { DEFAULT_NAMESPACE } from '../subjects.js';
import type { PutOptions, Store, StoreEntry } from './store.js';

/** Options of the NATS store. */
export interface KvStoreOptions {
  /** The connection; the store never closes it. */
  connection: NatsConnection;
  /** Prefix of the KV bucket names, `[A-Za-z0-9_-]+`. @default 'tenaz' */
  namespace?: string;
  /** Receives warnings (garbled entries), under `component: 'kv-store'`. */
  logger: Logger;
  /** Replicas of each KV bucket this store creates (clustered servers). @default 1 */
  replicas?: number;
  /** Server-side age limit of every entry of the buckets this store creates, in ms; 0 for none. @default 0 */
  bucketMaxAgeMs?: number;
  /** Clock for `ttlMs`, ms since the epoch. @default Date.now */
  now?: () => number;
}

/** A store over JetStream KV. */
export interface KvStore extends Store {
  readonly namespace: string;
  /** The name of the KV bucket (stream `KV_<name>`) holding a store bucket. */
  kvBucketName(bucket: string): string;
  [Symbol.asyncDispose](): Promise<void>;
}

type ResolvedKvStoreOptions = Required<KvStoreOptions>;

/** What a KV entry's bytes decode to: `key` is kept when the KV key is a hash of it. */
interface Envelope { v: 1; value: unknown; expiresAt?: number; key?: string }

/** One key's state: the KV revision of its last message (0: none), and the live entry, if any. */
interface Current { revision: number; entry: StoreEntry | null; expired?: true }

const NAME = /^[A-Za-z0-9_-]+$/;
const SAFE_KEY = /^[A-Za-z0-9_/-]*$/;
const UNSAFE_UNIT = /[^A-Za-z0-9_/-]/g;
const KV_KEY = /^(?:[A-Za-z0-9_/-]|=[0-9A-F]{2}|=u[0-9A-F]{4})+$/;
/** Longer escaped keys are replaced by a readable prefix and a hash, to keep subjects short. */
const MAX_KV_KEY_LENGTH = 256;
const HASHED_PREFIX_LENGTH = 160;
/** Tries of create-if-absent against entries that are expired or garbled, each replaced by another writer meanwhile. */
const CREATE_ATTEMPTS = 5;
/** Tries of an operation no server answered: a bucket another process is still creating, JetStream still starting. */
const UNANSWERED_ATTEMPTS = 6;
/** JetStream API error codes that 2.9 returns when two processes add the same stream at once. */
const STREAM_NAME_IN_USE = 10058;
const SUBJECTS_OVERLAP = 10065;
/** Never written: `toKvKey` escapes `.`, so no store key maps to it. */
const PROBE_KEY = '_.ready';
/** Messages one fetch of `list()` asks for, and how long it may take, in ms. */
const LIST_FETCH_SIZE = 1_000;
const LIST_FETCH_EXPIRES_MS = 5_000;
/** The header a KV delete or purge carries (`DEL`, `PURGE`); a put has none. */
const KV_OPERATION_HEADER = 'KV-Operation';
/** How long a write waits for the stream's acknowledgement, in ms (as `jetstream()`'s default). */
const WRITE_TIMEOUT_MS = 5_000;
/** The header JetStream checks a compare-and-set against. */
const EXPECTED_LAST_SUBJECT_SEQUENCE = 'Nats-Expected-Last-Subject-Sequence';
/** Revisions remembered as written here without a time to live (the oldest go first). */
const UNTIMED_REVISIONS = 10_000;

// The wire codec's options: plain maps, no shared record structures between processes.

/**
 * Creates a store over JetStream KV; buckets are created on first use.
 * @example
 * const store = createKvStore({ connection: nc, logger });
 * const revision = await store.put('runs', runId, record, { expectedRevision: 0 });
 */
export function createKvStore(options: KvStoreOptions): KvStore {
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const replicas = options.replicas ?? 1;
  const bucketMaxAgeMs = options.bucketMaxAgeMs ?? 0;
  if (!NAME.test(namespace)) throw new InvalidArgumentError(`namespace must match ${NAME}, got ${JSON.stringify(namespace)}`);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new InvalidArgumentError(`replicas must be an integer from 1 to 5, got ${replicas}`);
  if (!Number.isFinite(bucketMaxAgeMs) || bucketMaxAgeMs < 0) throw new InvalidArgumentError(`bucketMaxAgeMs must be >= 0, got ${bucketMaxAgeMs}`);
  const { connection, now = Date.now } = options;
  return new NatsKvStore({ connection, namespace, replicas, bucketMaxAgeMs, now, logger: options.logger.child({ component: 'kv-store' }) });
}

class NatsKvStore implements KvStore {
  readonly namespace: string;
  readonly #options: ResolvedKvStoreOptions;
  readonly #kvm: Kvm;
  readonly #buckets = new Map<string, Promise<KV>>();
  #jsm: Promise<JetStreamManager> | undefined;
  readonly #garbled: DropCounter;
  /**
   * The last revision this store wrote, without a time to live, of each key it wrote lately.
   * A compare-and-set on one of them needs no read first: written here without one, the
   * entry cannot have expired, and if anyone wrote the key since, the server refuses the write.
   */
  readonly #untimed = new Map<string, number>();
  /** Writes go to the buckets' streams through it: a fraction of `kv.put`'s cost. */
  #publisher: StreamPublisher | undefined;
  #closed = false;

  constructor(options: ResolvedKvStoreOptions) {
    this.namespace = options.namespace;
    this.#options = options;
    this.#kvm = new Kvm(options.connection);
    this.#garbled = new DropCounter(options.logger, 'garbled store entry read as absent', options.now);
  }

  kvBucketName(bucket: string): string {
    if (!NAME.test(bucket)) throw new InvalidArgumentError(`bucket must match ${NAME}, got ${JSON.stringify(bucket)}`);
    return `${this.namespace}_${bucket}`;
  }

  async get<V>(bucket: string, key: string): Promise<StoreEntry<V> | null> {
    this.#check();
    const kv = await this.#bucket(bucket);
    const kvKey = toKvKey(key);
    const current = await this.#read(kv, bucket, key, kvKey);
    if (current.expired) this.#expire(kv, kvKey, current.revision);
    return current.entry as StoreEntry<V> | null;
  }

  async put<V>(bucket: string, key: string, value: V, options: PutOptions = {}): Promise<number> {
    this.#check();
    const { expectedRevision, ttlMs } = options;
    if (expectedRevision !== undefined && !(Number.isSafeInteger(expectedRevision) && expectedRevision >= 0)) {
      throw new InvalidArgumentError(`expectedRevision must be an integer >= 0, got ${expectedRevision}`);
    }
    if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs >= 0)) throw new InvalidArgumentError(`ttlMs must be >= 0, got ${ttlMs}`);
    const kv = await this.#bucket(bucket);
    const kvKey = toKvKey(key);
    const bytes = this.#encode(bucket, key, kvKey, value, ttlMs);
    const written = `${bucket}/${kvKey}`;
    const untimed = this.#untimed.get(written);
    this.#untimed.delete(written);
    let revision: number;
    try {
      if (expectedRevision === undefined) revision = await retryUnanswered(() => this.#write(bucket, kvKey, bytes));
      else if (expectedRevision === 0) revision = await this.#create(kv, bucket, key, kvKey, bytes);
      else {
        // An expired entry is absent, so its revision must not match: look before writing,
        // unless this store wrote that revision itself, without a time to live.
        if (untimed !== expectedRevision) {
          const found = (await this.#read(kv, bucket, key, kvKey)).entry?.revision ?? 0;
          if (found !== expectedRevision) throw mismatch(bucket, key, expectedRevision, found);
        }
        revision = await retryUnanswered(() => this.#write(bucket, kvKey, bytes, expectedRevision));
      }
    } catch (error) {
      if (isWrongLastSequence(error)) throw mismatch(bucket, key, expectedRevision ?? 0, undefined, error);
      throw error;
    }
    if (ttlMs === undefined) this.#rememberUntimed(written, revision);
    return revision;
  }

  async delete(bucket: string, key: string): Promise<void> {
    this.#check();
    await this.#bucket(bucket);
    this.#untimed.delete(`${bucket}/${toKvKey(key)}`);
    // A purge of the key's subject, not a KV delete: a delete leaves a marker behind for
    // good (2.9 has no marker expiry), and listing a bucket reads every marker.
    const name = this.kvBucketName(bucket);
    if (this.#jsm === undefined) {
      const opening = jetstreamManager(this.#options.connection);
      this.#jsm = opening;
      opening.catch(() => this.#jsm === opening && (this.#jsm = undefined));
    }
    const jsm = await this.#jsm;
    await retryUnanswered(() => jsm.streams.purge(`KV_${name}`, { filter: `$KV.${name}.${toKvKey(key)}` }));
  }

  async list<V>(bucket: string): Promise<StoreEntry<V>[]> {
    this.#check();
    await this.#bucket(bucket);
    const name = this.kvBucketName(bucket);
    // The last message of every key, in one pass over the stream: not a read per key.
    const consumer = await retryUnanswered(() =>
      jetstream(this.#options.connection).consumers.get(`KV_${name}`, { filter_subjects: `$KV.${name}.>`, deliver_policy: DeliverPolicy.LastPerSubject }),
    );
    const pending = (await consumer.info()).num_pending;
    const prefix = `$KV.${name}.`.length;
    const entries: StoreEntry<V>[] = [];
    for (let read = 0; read < pending; ) {
      const batch = await consumer.fetch({ max_messages: Math.min(LIST_FETCH_SIZE, pending - read), expires: LIST_FETCH_EXPIRES_MS });
      const before = read;
      for await (const message of batch) {
        read += 1;
        const kvKey = message.subject.slice(prefix);
        if (kvKey === PROBE_KEY) continue;
        const operation = message.headers?.get(KV_OPERATION_HEADER) || 'PUT';
        const current = this.#current(bucket, parseKvKey(kvKey), kvKey, message.seq, operation, message.data);
        if (current.entry !== null) entries.push(current.entry as StoreEntry<V>);
      }
      // A fetch that brought nothing: the stream changed under the read (keys purged meanwhile).
      if (read === before) break;
    }
    return entries;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#buckets.clear();
    this.#untimed.clear();
    this.#publisher?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Writes `bytes` at `kvKey`, if the key's last revision is `previousSeq` when given; resolves with the new revision. */
  async #write(bucket: string, kvKey: string, bytes: Uint8Array, previousSeq?: number): Promise<number> {
    let hdrs;
    if (previousSeq !== undefined) {
      hdrs = headers();
      hdrs.set(EXPECTED_LAST_SUBJECT_SEQUENCE, String(previousSeq));
    }
    this.#publisher ??= new StreamPublisher(this.#options.connection, WRITE_TIMEOUT_MS);
    const ack = await this.#publisher.publish(`$KV.${this.kvBucketName(bucket)}.${kvKey}`, bytes, hdrs);
    return ack.seq;
  }

  #rememberUntimed(written: string, revision: number): void {
    this.#untimed.set(written, revision);
    if (this.#untimed.size > UNTIMED_REVISIONS) this.#untimed.delete(this.#untimed.keys().next().value!);
  }

  /** Create-if-absent, where an expired or garbled entry counts as absent. */
  async #create(kv: KV, bucket: string, key: string, kvKey: string, bytes: Uint8Array): Promise<number> {
    // Not kv.create: after a write nobody answered it falls back to a read that can hang.
    for (let attempt = 0, previousSeq = 0; attempt < CREATE_ATTEMPTS; attempt += 1) {
      const written = await unlessWrongLastSequence(retryUnanswered(() => this.#write(bucket, kvKey, bytes, previousSeq)));
      if (written !== null) return written;
      const current = await this.#read(kv, bucket, key, kvKey);
      if (current.entry !== null) throw mismatch(bucket, key, 0, current.entry.revision);
      previousSeq = current.revision;
    }
    throw mismatch(bucket, key, 0, undefined);
  }

  /** The entry at `kvKey`; `key` is null when only the entry itself knows it (a hashed KV key). */
  async #read(kv: KV, bucket: string, key: string | null, kvKey: string): Promise<Current> {
    const raw = await retryUnanswered(() => kv.get(kvKey));
    if (raw === null) return { revision: 0, entry: null };
    return this.#current(bucket, key, kvKey, raw.revision, raw.operation, raw.value);
  }

  /** A key's state from its last KV message: `key` null when only the KV key is known. */
  #current(bucket: string, key: string | null, kvKey: string, revision: number, operation: string, value: Uint8Array): Current {
    if (operation !== 'PUT') return { revision, entry: null };
    const envelope = parseEnvelope(value);
    const storedKey = envelope?.key ?? key;
    if (envelope === null || storedKey === null || (key !== null && storedKey !== key) || (key === null && toKvKey(storedKey) !== kvKey)) {
      this.#garbled.drop({ bucket, key: key ?? kvKey, revision, reason: envelope === null ? 'not a store envelope' : 'stored for another key' });
      return { revision, entry: null };
    }
    const { expiresAt } = envelope;
    if (expiresAt !== undefined && expiresAt <= this.#options.now()) return { revision, entry: null, expired: true };
    return { revision, entry: { key: storedKey, value: envelope.value, revision, expiresAt } };
  }

  /** Deletes an expired entry, unless someone wrote the key since. Best effort. */
  #expire(kv: KV, kvKey: string, revision: number): void {
    kv.delete(kvKey, { previousSeq: revision }).catch((error: unknown) => {
      if (!isWrongLastSequence(error)) this.#options.logger.debug({ err: error }, 'could not delete an expired store entry');
    });
  }

  #encode(bucket: string, key: string, kvKey: string, value: unknown, ttlMs: number | undefined): Uint8Array {
    const unserializable = findUnserializable(value, 'value');
    if (unserializable !== null) throw new InvalidArgumentError(`${bucket}/${key}: cannot store ${unserializable}`);
    const envelope: Envelope = { v: 1, value: toWireValue(value) };
    if (ttlMs !== undefined) envelope.expiresAt = this.#options.now() + ttlMs;
    if (kvKey.includes('==')) envelope.key = key;
    const bytes = encodeValue(envelope);
    const maxPayload = this.#options.connection.info?.max_payload;
    if (maxPayload !== undefined && bytes.length > maxPayload) {
      throw new PayloadTooLargeError(`${bucket}/${key}: value is ${bytes.length} bytes encoded, the server takes ${maxPayload}`);
    }
    return bytes;
  }

  #bucket(bucket: string): Promise<KV> {
    let kv = this.#buckets.get(bucket);
    if (kv === undefined) {
      const opening = this.#open(this.kvBucketName(bucket));
      this.#buckets.set(bucket, (kv = opening));
      // Forget a failed open, so that the next call tries again.
      opening.catch(() => this.#buckets.get(bucket) === opening && this.#buckets.delete(bucket));
    }
    return kv;
  }

  async #open(name: string): Promise<KV> {
    const options = { history: 1, replicas: this.#options.replicas, ttl: this.#options.bucketMaxAgeMs };
    const create = (): Promise<KV> => retryUnanswered(() => this.#kvm.create(name, options));
    let kv: KV;
    try {
      kv = await create();
    } catch (error) {
      // Another process added it meanwhile (maybe with other limits): now the lookup finds it, and uses it as it is.
      if (!(error instanceof JetStreamApiError && (error.code === STREAM_NAME_IN_USE || error.code === SUBJECTS_OVERLAP))) throw error;
      kv = await create();
    }
    // 2.9 lists a stream another process is still adding; reading it then goes unanswered (direct
    // get) or crashes the server (msg get). A write it must refuse is refused only once it is up.
    await unlessWrongLastSequence(retryUnanswered(() => kv.put(PROBE_KEY, new Uint8Array(), { previousSeq: Number.MAX_SAFE_INTEGER })));
    return kv;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('store is closed');
    // A connection closed for good never comes back: say so, rather than fail each call its own way.
    if (this.#options.connection.isClosed()) throw new ClosedError('store is closed: its NATS connection is closed');
  }
}

/**
 * The KV key for a store key. `[A-Za-z0-9_/-]` stay as they are; every other UTF-16 code
 * unit becomes `=XX` (below 0x100) or `=uXXXX` (uppercase hex), the empty key `=`. So
 * `a.b` is `a=2Eb` and `=` is `=3D`: no two keys meet. Keys longer than 256 characters
 * once escaped become their first 160 characters, `==` and the SHA-256 of the key (the
 * entry then also holds the key itself).
 */
export function toKvKey(key: string): string {
  if (key === '') return '=';
  // Without the `u` flag a regex sees UTF-16 code units, lone surrogates included.
  const escaped = SAFE_KEY.test(key) ? key : key.replace(UNSAFE_UNIT, (unit) => {
    const code = unit.charCodeAt(0);
    return code < 0x100 ? `=${hex(code, 2)}` : `=u${hex(code, 4)}`;
  });
  if (escaped.length <= MAX_KV_KEY_LENGTH) return escaped;
  const prefix = escaped.slice(0, HASHED_PREFIX_LENGTH).replace(/=[0-9A-Fu]{0,4}$/, '');
  return `${prefix}==${createHash('sha256').update(key, 'utf16le').digest('base64url')}`;
}

/** The store key a KV key stands for; `null` for a hashed key or anything `toKvKey` does not produce. */
export function parseKvKey(kvKey: string): string | null {
  if (kvKey === '=') return '';
  if (!KV_KEY.test(kvKey)) return null;
  const key = kvKey.replace(/=(?:u([0-9A-F]{4})|([0-9A-F]{2}))/g, (_, wide?: string, narrow?: string) => String.fromCharCode(parseInt(wide ?? narrow!, 16)));
  return toKvKey(key) === kvKey ? key : null;
}

const hex = (code: number, digits: number): string => code.toString(16).toUpperCase().padStart(digits, '0');

/** The envelope in a KV entry's bytes; `null` when they are anything else. */
function parseEnvelope(bytes: Uint8Array): Envelope | null {
  try {
    const decoded: unknown = decodeValue(bytes);
    if (!isPlainObject(decoded) || decoded.v !== 1 || !('value' in decoded)) return null;
    const { expiresAt, key } = decoded;
    if ((expiresAt !== undefined && typeof expiresAt !== 'number') || (key !== undefined && typeof key !== 'string')) return null;
    return decoded as unknown as Envelope;
  } catch {
    return null;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  const proto: unknown = value !== null && typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  return proto === Object.prototype || proto === null;
}

/** Runs a KV operation again when no server answered it: nothing was stored, so repeating is safe, CAS included. */
async function retryUnanswered<T>(operation: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await operation();
    } catch (error) {
      const cause = (error as Error | undefined)?.cause;
      const unanswered = error instanceof NoRespondersError || (cause instanceof RequestError && cause.isNoResponders());
      if (attempt >= UNANSWERED_ATTEMPTS || !unanswered) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt));
    }
  }
}

/** The write's outcome, or `null` when the server refused it for a wrong last sequence. */
function unlessWrongLastSequence(write: Promise<number>): Promise<number | null> {
  return write.catch((error: unknown) => {
    if (isWrongLastSequence(error)) return null;
    throw error;
  });
}

function isWrongLastSequence(error: unknown): boolean {
  const { StreamWrongLastSequence, StreamWrongLastSequenceUnknown } = JetStreamApiCodes;
  return error instanceof JetStreamApiError && (error.code === StreamWrongLastSequence || error.code === StreamWrongLastSequenceUnknown);
}

function mismatch(bucket: string, key: string, expected: number, found: number | undefined, cause?: unknown): RevisionMismatchError {
  const foundText = found === undefined ? '' : `, found ${found}`;
  return new RevisionMismatchError(`${bucket}/${key}: expected revision ${expected}${foundText}`, cause === undefined ? {} : { cause });
}
