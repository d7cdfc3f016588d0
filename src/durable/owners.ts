/**
 * Leases of the processes that own flow runs: each renews its entry in the KV
 * bucket `<namespace>_owners` every third of its lease, naming the flows it
 * serves; each watches the bucket, so it knows who is alive and who serves what.
 *
 * A lease lapses when its entry has not changed for the lease's length on the
 * watcher's own clock (no clock of another machine is trusted), or at once when
 * its owner deletes it on close. A watcher that is cut off itself judges nobody:
 * not while its connection is down, nor while a renewal of its own failed or has
 * not come back through the watch, nor for a lease after it reconnects (so that
 * the others get the time to renew); and another's lease lapses only once this
 * process has seen its own renewal come through after that lease ran out.
 */
import { hostname } from 'node:os';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { z } from 'zod';
import { decodeValue, encodeValue } from '../codec.js';
import { DropCounter } from '../drop-counter.js';
import { describeFailure, isPassingFailure } from '../nats/passing-failure.js';
import { followStatus, type StatusFollower } from '../nats/status.js';

export const OWNERS_BUCKET_SUFFIX = 'owners';
export const DEFAULT_LEASE_MS = 3_000;
export const MIN_LEASE_MS = 300;
/** At most one warning per this long about renewals failing for a server away, in ms. */
const RENEW_WARNING_INTERVAL_MS = 5_000;

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
  /** Copies of the leases' KV bucket, if this process creates it. @default 1 */
  replicas?: number;
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
  /** Revision of the latest renewal of ours the server acknowledged, and of the latest seen in the watch. */
  #ownWrittenRevision = 0;
  #ownSeenRevision = 0;
  /** Renewals are not serialised (one stuck in a dead connection must not hold up the next): numbered, the latest to settle counts. */
  #renewals = 0;
  #latestSettledRenewal = 0;
  #renewFailures = 0;
  #renewWarnedAt = -Infinity;
  #renewWarningsHeld = 0;
  #connected = true;
  /** Judge nobody before this time: set on reconnecting, a lease on. */
  #quietUntil = 0;
  #statuses: StatusFollower | undefined;
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
    this.#watchConnection();
    const kv = await new Kvm(this.#options.connection).create(`${this.#options.namespace}_${OWNERS_BUCKET_SUFFIX}`, { history: 1, replicas: this.#options.replicas ?? 1 });
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
    const renewal = ++this.#renewals;
    const lease = { v: 1, ownerId: this.ownerId, flows: this.#options.servedFlows(), leaseMs: this.leaseMs, pid: process.pid, host: hostname(), renewedAt: this.#now() };
    try {
      const revision = await kv.put(this.ownerId, encodeValue(lease));
      if (renewal < this.#latestSettledRenewal) return;
      this.#latestSettledRenewal = renewal;
      this.#ownWrittenRevision = Math.max(this.#ownWrittenRevision, revision);
      this.#renewFailures = 0;
    } catch (err) {
      // A later renewal already went through: this one's failure (a put lost in a reconnect) changes nothing.
      if (renewal < this.#latestSettledRenewal || this.#closed) return;
      this.#latestSettledRenewal = renewal;
      this.#renewFailures += 1;
      this.#warnRenewFailed(err);
    }
  }

  /**
   * A server away (a restart, a network cut) fails every renewal until it is back: that is
   * one line now and then, with what failed; anything else keeps its stack. Both rate-limited.
   */
  #warnRenewFailed(err: unknown): void {
    const now = this.#now();
    if (now - this.#renewWarnedAt < RENEW_WARNING_INTERVAL_MS) {
      this.#renewWarningsHeld += 1;
      return;
    }
    const fields = { failures: this.#renewFailures, suppressed: this.#renewWarningsHeld };
    this.#renewWarnedAt = now;
    this.#renewWarningsHeld = 0;
    const message = "could not renew this process's lease; its flow runs are taken over if this lasts";
    if (isPassingFailure(err) || !this.#connected) this.#options.logger.warn({ ...fields, reason: describeFailure(err) }, message);
    else this.#options.logger.warn({ ...fields, err }, message);
  }

  /** Follows the connection: while it is down, and for a lease once it is back, this process judges nobody. */
  #watchConnection(): void {
    this.#statuses = followStatus(
      this.#options.connection,
      (status) => {
        if (status.type === 'disconnect') {
          this.#connected = false;
        } else if (status.type === 'reconnect') {
          this.#connected = true;
          this.#backAfterGap(this.#now());
        }
      },
      (err) => {
        if (!this.#closed) this.#options.logger.warn({ err }, 'stopped following the NATS connection for owner leases');
      },
    );
  }

  /**
   * Back after a gap (a server restart, a network cut): everyone's renewals were out of
   * sight too. Each gets a full lease from now to show up before it counts as lapsed.
   */
  #backAfterGap(now: number): void {
    this.#quietUntil = Math.max(this.#quietUntil, now + this.leaseMs);
    for (const known of this.#known.values()) known.seenAt = Math.max(known.seenAt, now);
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
    this.#statuses?.stop();
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
      // Also a gap the connection's status did not tell (a watch that stalled).
      if (now - this.#ownSeenAt > this.leaseMs) this.#backAfterGap(now);
      this.#ownSeenAt = now;
      this.#ownSeenRevision = Math.max(this.#ownSeenRevision, revision);
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
    if (!this.#mayJudge(now)) return;
    for (const [ownerId, known] of this.#known) {
      if (known.lapsed || now - known.seenAt <= known.lease.leaseMs) continue;
      // Our own renewal came through after the other's lease ran out: the watch was flowing
      // all along, so a renewal of the other's would have come through too.
      if (this.#ownSeenAt - known.seenAt <= known.lease.leaseMs) continue;
      known.lapsed = true;
      this.#options.logger.info({ ownerId, pid: known.lease.pid, host: known.lease.host }, `The lease of process ${known.lease.pid} on ${known.lease.host} lapsed`);
      this.#options.onLapsed(ownerId);
    }
  }

  /** Whether this process's view of the leases is current enough to judge anyone by; a stale view would judge ourselves. */
  #mayJudge(now: number): boolean {
    // Cut off, or just back: the others' renewals were out of sight too.
    if (!this.#connected || now < this.#quietUntil) return false;
    // A renewal of ours that failed, or that has not come back through the watch yet.
    if (this.#renewFailures > 0 || this.#ownSeenRevision < this.#ownWrittenRevision) return false;
    return now - this.#ownSeenAt <= this.leaseMs;
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
