/**
 * Leases of the processes that own flow runs: each renews its entry in the KV
 * bucket `<namespace>_owners` every third of its lease, naming the flows it
 * serves; each watches the bucket, so it knows who is alive and who serves what.
 *
 * A lease lapses when its entry has not changed for the lease's length on the
 * watcher's own clock (no clock of another machine is trusted), or at once when
 * its owner deletes it on close. A watcher that has not seen its own renewal
 * lately is cut off itself and judges nobody.
 */
import { hostname } from 'node:os';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { z } from 'zod';
import { decodeValue, encodeValue } from '../codec.js';
import { DropCounter } from '../drop-counter.js';

export const OWNERS_BUCKET_SUFFIX = 'owners';
export const DEFAULT_LEASE_MS = 3_000;
export const MIN_LEASE_MS = 300;

/** What an owner's entry says; `seenAt` is when this process last saw it change. */
export interface OwnerLease {
  ownerId: string;
  flows: string[];
  leaseMs: number;
  pid: number;
  host: string;
  renewedAt: number;
}

const leaseSchema = z.looseObject({
  v: z.literal(1),
  ownerId: z.string().min(1),
  flows: z.array(z.string()),
  leaseMs: z.number().int().min(1),
  pid: z.number().int(),
  host: z.string(),
  renewedAt: z.number(),
});

interface Known {
  lease: OwnerLease;
  revision: number;
  seenAt: number;
  lapsed: boolean;
}

export interface OwnerDirectoryOptions {
  connection: NatsConnection;
  namespace: string;
  ownerId: string;
  leaseMs: number;
  /** The flows this process serves now. */
  servedFlows(): string[];
  /** Called once per owner whose lease lapsed or who left. */
  onLapsed(ownerId: string): void;
  logger: Logger;
  now?: () => number;
}

export class OwnerDirectory {
  readonly ownerId: string;
  readonly leaseMs: number;
  readonly #options: OwnerDirectoryOptions;
  readonly #known = new Map<string, Known>();
  readonly #now: () => number;
  readonly #garbled: DropCounter;
  #kv: KV | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #watch: { stop(): void } | undefined;
  #ownSeenAt = 0;
  #renewFailures = 0;
  #started: Promise<void> | undefined;
  #closed = false;

  constructor(options: OwnerDirectoryOptions) {
    this.#options = options;
    this.ownerId = options.ownerId;
    this.leaseMs = options.leaseMs;
    this.#now = options.now ?? Date.now;
    this.#garbled = new DropCounter(options.logger, 'ignored an owner lease that does not parse', this.#now);
  }

  /** Renews this process's lease from now on, and watches everyone's. Idempotent. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const kv = await new Kvm(this.#options.connection).create(`${this.#options.namespace}_${OWNERS_BUCKET_SUFFIX}`, { history: 1 });
    this.#kv = kv;
    await this.renew();
    const watch = await kv.watch();
    this.#watch = watch;
    void (async () => {
      for await (const entry of watch) this.#onEntry(entry.key, entry.operation, entry.revision, entry.value);
    })().catch((err: unknown) => {
      if (!this.#closed) this.#options.logger.error({ err }, 'stopped watching owner leases');
    });
    this.#renewTimer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.#checkTimer = setInterval(() => this.#check(), Math.max(50, Math.floor(this.leaseMs / 6)));
    this.#renewTimer.unref();
    this.#checkTimer.unref();
  }

  /** Writes this process's lease now (also when the flows it serves change). Never rejects. */
  async renew(): Promise<void> {
    const kv = this.#kv;
    if (!kv || this.#closed) return;
    const lease = { v: 1, ownerId: this.ownerId, flows: this.#options.servedFlows(), leaseMs: this.leaseMs, pid: process.pid, host: hostname(), renewedAt: this.#now() };
    try {
      await kv.put(this.ownerId, encodeValue(lease));
      this.#renewFailures = 0;
    } catch (err) {
      if (this.#renewFailures++ === 0 && !this.#closed) this.#options.logger.warn({ err }, 'could not renew this process\'s lease; its flow runs are taken over if this lasts');
    }
  }

  /** Whether the owner's lease holds, as far as this process can tell. */
  isLive(ownerId: string): boolean {
    if (ownerId === this.ownerId) return !this.#closed;
    const known = this.#known.get(ownerId);
    return known !== undefined && !known.lapsed;
  }

  /** Live owners (this one included) that serve the flow. */
  servers(flowName: string): string[] {
    const found: string[] = [];
    for (const [ownerId, known] of this.#known) if (!known.lapsed && known.lease.flows.includes(flowName)) found.push(ownerId);
    if (this.#options.servedFlows().includes(flowName) && !found.includes(this.ownerId)) found.push(this.ownerId);
    return found;
  }

  /** Owners whose lease this process has seen (live or lapsed). */
  get owners(): ReadonlyMap<string, { lease: OwnerLease; lapsed: boolean }> {
    return this.#known;
  }

  /** Stops renewing and removes this process's lease, so that others take its runs at once. */
  async close(options: { removeLease: boolean } = { removeLease: true }): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#renewTimer);
    clearInterval(this.#checkTimer);
    this.#watch?.stop();
    if (options.removeLease) await this.#kv?.delete(this.ownerId).catch(() => {});
  }

  /** Removes a lapsed owner's entry, unless it renewed meanwhile; others then know it is gone. */
  forget(ownerId: string): void {
    const known = this.#known.get(ownerId);
    if (!known || !this.#kv) return;
    this.#kv.delete(ownerId, { previousSeq: known.revision }).catch(() => {});
  }

  #onEntry(key: string, operation: string, revision: number, value: Uint8Array): void {
    const now = this.#now();
    if (key === this.ownerId) {
      if (operation !== 'PUT') return;
      // Back after a gap (a server restart, a network cut): everyone's renewals were out of
      // sight too. Each gets a full lease from now to show up before it counts as lapsed.
      if (now - this.#ownSeenAt > this.leaseMs) for (const known of this.#known.values()) known.seenAt = now;
      this.#ownSeenAt = now;
      return;
    }
    if (operation !== 'PUT') {
      const known = this.#known.get(key);
      this.#known.delete(key);
      if (known && !known.lapsed) this.#options.onLapsed(key);
      return;
    }
    let lease: OwnerLease | null = null;
    try {
      const parsed = leaseSchema.safeParse(decodeValue(value));
      lease = parsed.success ? parsed.data : null;
    } catch {
      lease = null;
    }
    if (lease === null || lease.ownerId !== key) {
      this.#garbled.drop({ key, revision });
      return;
    }
    this.#known.set(key, { lease, revision, seenAt: now, lapsed: false });
  }

  #check(): void {
    const now = this.#now();
    // Not seeing our own renewals means our view is stale: judging others now would be judging ourselves.
    if (now - this.#ownSeenAt > this.leaseMs) return;
    for (const [ownerId, known] of this.#known) {
      if (known.lapsed || now - known.seenAt <= known.lease.leaseMs) continue;
      known.lapsed = true;
      this.#options.logger.info({ ownerId, pid: known.lease.pid, host: known.lease.host }, `The lease of process ${known.lease.pid} on ${known.lease.host} lapsed`);
      this.#options.onLapsed(ownerId);
    }
  }
}

/**
 * The leases in the bucket now, read once (for a process that does not watch them,
 * such as `tenaz start`). `live` judges by the owner's own clock, with a lease of margin.
 */
export async function readLeases(connection: NatsConnection, namespace: string, now = Date.now()): Promise<Array<OwnerLease & { live: boolean }>> {
  const kv = await new Kvm(connection).open(`${namespace}_${OWNERS_BUCKET_SUFFIX}`);
  const leases: Array<OwnerLease & { live: boolean }> = [];
  let keys: AsyncIterable<string>;
  try {
    keys = await kv.keys();
  } catch (error) {
    // No bucket: no process ever held a lease in this namespace.
    if (/not found/i.test(String((error as Error)?.message))) return leases;
    throw error;
  }
  for await (const key of keys) {
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== 'PUT') continue;
    try {
      const parsed = leaseSchema.safeParse(decodeValue(entry.value));
      if (parsed.success) leases.push({ ...parsed.data, live: now - parsed.data.renewedAt <= 2 * parsed.data.leaseMs });
    } catch {
      // Garbage in the bucket names no owner.
    }
  }
  return leases;
}
