/**
 * Writes one run's record: each write is compare-and-set on the revision this
 * writer last wrote, so a run moved forward by another process is noticed at the
 * next write, never overwritten.
 *
 * Writes are coalesced: while one is on its way, later changes wait and go
 * together in the next; a change that is not urgent waits `windowMs` for company.
 * A fast task run thus costs one write (its end), a long one a few.
 */
import type { Logger } from 'pino';
import { ClosedError, RevisionMismatchError } from '../errors.js';
import type { Store } from '../store/store.js';
import { createDeferred, type Deferred } from '../runtime/deferred.js';
import { describeFailure, failureFields, isRefusedPermission } from '../nats/passing-failure.js';

export interface RecordWriterOptions<R> {
  store: Store;
  bucket: string;
  key: string;
  record: R;
  /** The revision the record has in the store; 0 when it does not exist yet. */
  revision: number;
  /** How long a change that is not urgent may wait for others, in ms. */
  windowMs: number;
  /** A copy of the record to write: it must not change while it is on its way. */
  snapshot(record: R): R;
  /**
   * Someone else wrote the key: resolve with the revision to write over (the writer
   * still has the right to the run), or `null` when the run is no longer ours.
   */
  onConflict(error: RevisionMismatchError): Promise<number | null>;
  /** The writer gave up: the run is no longer ours. Called once. */
  onFenced(): void;
  logger: Logger;
}

/** Waits after a store error before writing again: the server may be restarting. */
const RETRY_DELAYS_MS = [50, 100, 250, 500, 1_000, 2_000];

export class RecordWriter<R> {
  record: R;
  #revision: number;
  readonly #options: RecordWriterOptions<R>;
  #writing = false;
  #dirty = false;
  /** Whether a change waiting to be written must go now (a run's end, a flush asked for). */
  #urgent = false;
  #timer: NodeJS.Timeout | undefined;
  #flushed: Deferred<void> | undefined;
  #fenced = false;
  #closed = false;

  constructor(options: RecordWriterOptions<R>) {
    this.#options = options;
    this.record = options.record;
    this.#revision = options.revision;
  }

  get revision(): number {
    return this.#revision;
  }

  get fenced(): boolean {
    return this.#fenced;
  }

  /** Changes the record and has it written: at once when `urgent`, else within `windowMs`. */
  update(change: (record: R) => R, urgent: boolean): void {
    if (this.#fenced || this.#closed) return;
    const next = change(this.record);
    // The same record back: nothing changed (a transition applied already), nothing to write.
    if (next === this.record) return;
    this.record = next;
    this.#dirty = true;
    this.#urgent ||= urgent;
    if (this.#writing) return;
    if (urgent) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      void this.#write();
    } else {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        void this.#write();
      }, this.#options.windowMs);
    }
  }

  /** Resolves once every change made so far is written, or the writer was fenced or closed. Never rejects. */
  flushed(): Promise<void> {
    if ((!this.#dirty && !this.#writing) || this.#fenced || this.#closed) return Promise.resolve();
    this.#urgent = true;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      void this.#write();
    }
    this.#flushed ??= createDeferred<void>();
    return this.#flushed.promise;
  }

  /** Stops writing; what was not written yet is dropped. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#settleFlushed();
  }

  async #write(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    const { store, bucket, key, logger } = this.#options;
    let failures = 0;
    for (let first = true; this.#dirty && !this.#fenced && !this.#closed; first = false) {
      // Changes made while a write was on its way wait for their window, unless one of them is urgent.
      if (!first && !this.#urgent) {
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined;
          void this.#write();
        }, this.#options.windowMs);
        break;
      }
      this.#dirty = false;
      this.#urgent = false;
      const record = this.#options.snapshot(this.record);
      try {
        this.#revision = await store.put(bucket, key, record, { expectedRevision: this.#revision });
        failures = 0;
      } catch (error) {
        if (error instanceof RevisionMismatchError) {
          const revision = await this.#options.onConflict(error).catch(() => null);
          if (revision === null) {
            this.#fence();
            break;
          }
          this.#revision = revision;
        } else {
          // A store closed for good takes no more writes: what is left is lost with this process.
          if (this.#closed || error instanceof ClosedError) break;
          // Nor does a server that refuses this user the records: no retry changes its permissions.
          if (isRefusedPermission(error)) {
            logger.error({ reason: describeFailure(error), bucket, key }, 'the NATS server refuses this user the run records; this run is not recorded (see deploy/nats/auth.conf)');
            break;
          }
          const delay = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)]!;
          if (failures === 0) logger.warn({ ...failureFields(error), bucket, key }, `could not write a run record; trying again every ${RETRY_DELAYS_MS.at(-1)} ms at most`);
          failures += 1;
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
        // The write did not happen: try it again now, not after a window.
        this.#dirty = true;
        this.#urgent = true;
      }
    }
    this.#writing = false;
    this.#settleFlushed();
  }

  #fence(): void {
    this.#fenced = true;
    this.#options.onFenced();
  }

  #settleFlushed(): void {
    const flushed = this.#flushed;
    this.#flushed = undefined;
    flushed?.resolve();
  }
}
