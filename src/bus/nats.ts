/**
 * The NATS bus: the `Bus` contract over core NATS, messages encoded with
 * msgpackr. Bytes from the wire are untrusted: whatever does not decode as a
 * tenaz message is dropped, counted and logged (rate-limited), never thrown.
 *
 * nats.js 3 discards its outbound buffer on every reconnect attempt, so this
 * bus holds publishes made while disconnected and replays them, in order, once
 * the connection is back.
 */
import {
  ClosedConnectionError,
  DrainingConnectionError,
  RequestError,
  createInbox,
  type Msg,
  type NatsConnection,
  type Status,
  type Subscription as RawSubscription,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { encode, parseMessage } from '../codec.js';
import {
  ClosedError,
  DrainingError,
  InvalidArgumentError,
  InvalidMessageError,
  NoRespondersError,
  PayloadTooLargeError,
  TimeoutError,
} from '../errors.js';
import { checkRequest, type Bus, type BusMessage, type Delivery, type RequestOptions, type SubscribeOptions, type Subscription } from './bus.js';
import { parseSubject } from './memory.js';
import { NatsSubscription } from './nats-subscription.js';
import { LogThrottle } from '../drop-counter.js';
import { failureFields, refusedPublish } from '../nats/passing-failure.js';
import { followStatus, type StatusFollower } from '../nats/status.js';

/** At most one warning of a kind per second. */
const WARNING_INTERVAL_MS = 1000;

/** Options of the NATS bus. */
export interface NatsBusOptions {
  /** The connection; its JetStream is available to the runtime as `bus.connection`. */
  connection: NatsConnection;
  /** Whether the bus owns the connection: `close()` and `drain()` then close it too. @default false */
  owned?: boolean;
  /** Receives warnings (dropped messages, callback errors), under `component: 'nats-bus'` unless it has a component already. */
  logger: Logger;
  /**
   * Bytes of publishes held while the connection is down, replayed on reconnect. Past it,
   * publishes are discarded and counted in `stats.unsent`. 0 holds nothing.
   * @default 8 MiB
   */
  reconnectBufferBytes?: number;
  /** Clock for rate-limiting warnings, in ms since the epoch. @default Date.now */
  now?: () => number;
}

/** Counters of a NATS bus, since it was created. */
export interface NatsBusStats {
  /** Messages that reached the bus's subscriptions and request inboxes. */
  received: number;
  /** Received messages dropped because they are not valid tenaz messages. */
  dropped: number;
  /** Publishes never sent: the reconnect buffer was full, or the bus closed while they were held. */
  unsent: number;
}

const DEFAULT_RECONNECT_BUFFER_BYTES = 8 * 1024 * 1024;
/** At most one warning per interval for each kind of flood (garbage received, publishes discarded). */
/** The status header the server puts on the reply to a request nobody subscribes to. */
const NO_RESPONDERS_STATUS = 503;
const WHITESPACE = /\s/;

/**
 * Creates a bus over a NATS connection.
 * @example
 * const { connection, owned } = await connectNats('nats://127.0.0.1:4222', logger);
 * const bus = createNatsBus({ connection, owned, logger });
 * bus.subscribe('tenaz.evt.>', { callback: (d) => logger.info({ subject: d.subject }, 'event') });
 */
export function createNatsBus(options: NatsBusOptions): NatsBus {
  return new NatsBus(options);
}

interface HeldPublish {
  subject: string;
  data: Uint8Array;
  reply: string | undefined;
}

/** A request waiting for its reply. A class rather than closures: workers make two per task run. */
class PendingRequest {
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;

  constructor(
    readonly requests: Map<string, PendingRequest>,
    readonly token: string,
    readonly subject: string,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (delivery: Delivery) => void,
    readonly reject: (error: unknown) => void,
  ) {}

  /** The one cleanup for every exit: reply, no responders, timeout, abort, bus closed. */
  settle(error: unknown, delivery?: Delivery): void {
    if (!this.requests.delete(this.token)) return;
    clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.signal?.removeEventListener('abort', this.onAbort);
    if (delivery !== undefined) this.resolve(delivery);
    else this.reject(error);
  }
}

function timeOutRequest(pending: PendingRequest, timeoutMs: number): void {
  pending.settle(new TimeoutError(`no reply on '${pending.subject}' within ${timeoutMs} ms`));
}

/** The NATS `Bus`. Build it with `createNatsBus`. */
export class NatsBus implements Bus {
  /** The underlying connection, e.g. for JetStream. Closing it is the owner's business. */
  readonly connection: NatsConnection;
  /** Whether the bus closes the connection when it closes. */
  readonly owned: boolean;
  /** Live counters; read-only for callers. */
  readonly stats: Readonly<NatsBusStats>;
  readonly #stats: NatsBusStats = { received: 0, dropped: 0, unsent: 0 };
  readonly #logger: Logger;
  readonly #bufferLimit: number;
  readonly #dropWarnings: LogThrottle;
  readonly #unsentWarnings: LogThrottle;
  readonly #subs = new Set<NatsSubscription>();
  /** The status iterator, stopped when the bus closes. */
  readonly #statuses: StatusFollower;
  /** Last `max_payload` seen: nats.js forgets the server info while it reconnects. */
  #maxPayload: number | undefined;
  #connected = true;
  #held: HeldPublish[] = [];
  #heldBytes = 0;
  #reconnectWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  /** The request inbox, subscribed on the first request: `<prefix>.*`, one token per request. */
  #inbox: { prefix: string; sub: RawSubscription } | undefined;
  readonly #requests = new Map<string, PendingRequest>();
  #nextToken = 0;
  #draining: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Set once the bus itself closes or drains the connection, which is then no surprise. */
  #closeExpected = false;
  #closed = false;
  #resolveClosed!: () => void;
  readonly #closedPromise = new Promise<void>((resolve) => (this.#resolveClosed = resolve));

  constructor(options: NatsBusOptions) {
    const { connection, logger } = options;
    if (connection.isClosed()) throw new ClosedError('NATS connection is closed');
    const bufferLimit = options.reconnectBufferBytes ?? DEFAULT_RECONNECT_BUFFER_BYTES;
    if (!Number.isFinite(bufferLimit) || bufferLimit < 0) {
      throw new InvalidArgumentError(`reconnectBufferBytes must be a non-negative number, got ${String(bufferLimit)}`);
    }
    const now = options.now ?? Date.now;
    this.connection = connection;
    this.owned = options.owned ?? false;
    this.stats = this.#stats;
    // A caller's own component binding wins: pino would print a second `component` key.
    this.#logger = logger.bindings()['component'] === undefined ? logger.child({ component: 'nats-bus' }) : logger;
    this.#bufferLimit = bufferLimit;
    this.#dropWarnings = new LogThrottle(now, WARNING_INTERVAL_MS);
    this.#unsentWarnings = new LogThrottle(now, WARNING_INTERVAL_MS);
    this.#maxPayload = connection.info?.max_payload;
    this.#statuses = followStatus(
      connection,
      (status) => this.#onStatus(status),
      (err) => this.#logger.warn({ err }, 'NATS status watch ended'),
    );
    void connection.closed().then((reason) => this.#onConnectionClosed(reason));
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /**
   * Publishes a message. While the connection is down the message is held and sent on
   * reconnect (see `reconnectBufferBytes`). A frozen message whose values are all primitives
   * is a constant: it is encoded on its first publish only.
   * @throws PayloadTooLargeError when the encoded message exceeds the server's `max_payload`; nothing
   *   is sent. Checked here against the last value seen, because nats.js skips its check while it
   *   reconnects and the server would then drop the connection.
   * @throws InvalidArgumentError for an invalid subject or reply subject, or a message msgpackr cannot encode
   * @throws ClosedError once the bus is closed; DrainingError once an owned connection stops taking publishes
   */
  publish(subject: string, message: BusMessage, options?: { reply?: string }): void {
    this.#check();
    // The full check (it throws the error) only for a subject the fast one refuses.
    if (!isPublishSubject(subject)) parseSubject(subject, false);
    const reply = options?.reply;
    if (reply !== undefined && !isPublishSubject(reply)) parseSubject(reply, false);
    this.#send(subject, this.#encode(subject, message), reply);
  }

  subscribe(subject: string, options: SubscribeOptions = {}): Subscription {
    this.#check();
    parseSubject(subject, true);
    const { queue, callback, max } = options;
    if (queue !== undefined && (typeof queue !== 'string' || queue.length === 0 || WHITESPACE.test(queue))) {
      throw new InvalidArgumentError(`invalid queue group '${String(queue)}'`);
    }
    if (callback !== undefined && typeof callback !== 'function') throw new InvalidArgumentError('callback must be a function');
    if (max !== undefined && (!Number.isInteger(max) || max < 1)) {
      throw new InvalidArgumentError(`max must be a positive integer, got ${String(max)}`);
    }
    const sub = new NatsSubscription(subject, callback, this.#logger, (ended) => this.#subs.delete(ended));
    let raw: RawSubscription;
    try {
      // `max` goes to the server too, so a queue group stops routing to a member that is done.
      // It counts every message received, including ones dropped as invalid.
      raw = this.connection.subscribe(subject, {
        ...(queue === undefined ? {} : { queue }),
        ...(max === undefined ? {} : { max }),
        callback: (err, msg) => this.#receive(sub, err, msg),
      });
    } catch (error) {
      throw this.#translate(error);
    }
    sub.attach(raw);
    this.#subs.add(sub);
    void raw.closed.then((reason) => {
      // A refused permission is the user's role, told once more by the connection: one line, no stack.
      if (reason instanceof Error) this.#logger.warn({ ...failureFields(reason), subject }, 'subscription closed by the server');
      sub.end();
    });
    return sub;
  }

  request(subject: string, message: BusMessage, options: RequestOptions = {}): Promise<Delivery> {
    const checked = checkRequest(this.#closed, options);
    if (checked instanceof Error) return Promise.reject(checked);
    const { timeoutMs, signal } = checked;
    let data: Uint8Array;
    let prefix: string;
    try {
      if (!isPublishSubject(subject)) parseSubject(subject, false);
      data = this.#encode(subject, message);
      prefix = this.#ensureInbox();
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const token = (this.#nextToken++).toString(36);

    return new Promise<Delivery>((resolve, reject) => {
      const pending = new PendingRequest(this.#requests, token, subject, signal, resolve, reject);
      pending.timer = setTimeout(timeOutRequest, timeoutMs, pending, timeoutMs);
      this.#requests.set(token, pending);
      if (signal !== undefined) {
        pending.onAbort = () => pending.settle(signal.reason);
        signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      try {
        this.#send(subject, data, `${prefix}.${token}`);
      } catch (error) {
        pending.settle(error);
      }
    });
  }

  /**
   * Resolves after a round trip to the server: every message published before it has been
   * processed by the server, and those for this connection's own subscriptions handed to them.
   * While disconnected it waits for the reconnection. Rejects with `ClosedError` if the bus closes first.
   */
  async flush(): Promise<void> {
    this.#check();
    for (;;) {
      if (!this.#connected) await new Promise<void>((resolve, reject) => this.#reconnectWaiters.push({ resolve, reject }));
      try {
        await this.connection.flush();
        return;
      } catch (cause) {
        if (this.#closed || this.connection.isClosed()) throw new ClosedError('bus closed before flush completed', { cause });
        // The connection dropped during the round trip: wait for the status to arrive, then try again.
        if (!(cause instanceof RequestError)) throw cause;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  }

  /**
   * Stops the subscriptions once the messages in flight to them are handled, sends what was
   * published, then closes (the connection too, if owned). When the connection is down there is
   * nothing to drain: it closes at once, discarding held publishes.
   */
  drain(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#draining ??= this.#drain();
    return this.#draining;
  }

  /** Closes now: subscriptions end, pending requests reject with `ClosedError`. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Resolves when the bus has closed. Never rejects. */
  closed(): Promise<void> {
    return this.#closedPromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('bus is closed');
  }

  #encode(subject: string, message: BusMessage): Uint8Array {
    let data = Object.isFrozen(message) ? constantEncoding(message) : undefined;
    if (data === undefined) {
      try {
        data = encode(message);
      } catch (cause) {
        throw new InvalidArgumentError(`message on '${subject}' cannot be encoded`, { cause });
      }
    }
    this.#maxPayload = this.connection.info?.max_payload ?? this.#maxPayload;
    if (this.#maxPayload !== undefined && data.length > this.#maxPayload) {
      throw new PayloadTooLargeError(`message on '${subject}' is ${data.length} bytes, over the server's max_payload of ${this.#maxPayload} bytes`);
    }
    return data;
  }

  #send(subject: string, data: Uint8Array, reply: string | undefined): void {
    // Held messages go first: a publish must not overtake those made before it.
    if (!this.#connected || this.#held.length > 0) {
      this.#hold({ subject, data, reply });
      return;
    }
    try {
      this.connection.publish(subject, data, reply === undefined ? undefined : { reply });
    } catch (error) {
      throw this.#translate(error);
    }
  }

  #hold(publish: HeldPublish): void {
    if (this.#heldBytes + publish.data.length > this.#bufferLimit) {
      this.#stats.unsent++;
      const suppressed = this.#unsentWarnings.take();
      if (suppressed >= 0) {
        this.#logger.warn(
          { subject: publish.subject, heldBytes: this.#heldBytes, unsent: this.#stats.unsent, suppressed },
          'reconnect buffer full: publish discarded',
        );
      }
      return;
    }
    this.#held.push(publish);
    this.#heldBytes += publish.data.length;
  }

  #replay(): void {
    const held = this.#held;
    if (held.length === 0) return;
    this.#held = [];
    this.#heldBytes = 0;
    for (const { subject, data, reply } of held) {
      try {
        this.connection.publish(subject, data, reply === undefined ? undefined : { reply });
      } catch (err) {
        this.#stats.unsent++;
        this.#logger.warn({ err, subject }, 'held publish could not be sent');
      }
    }
    this.#logger.info({ count: held.length }, 'sent publishes held during the disconnection');
  }

  /** Maps nats.js errors to ours; anything else passes through. */
  #translate(error: unknown): unknown {
    if (error instanceof ClosedConnectionError) return new ClosedError('NATS connection is closed', { cause: error });
    if (error instanceof DrainingConnectionError) return new DrainingError('NATS connection is draining', { cause: error });
    return error;
  }

  #receive(sub: NatsSubscription, err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.#logger.warn({ ...failureFields(err), subject: sub.subject }, 'subscription error');
      return;
    }
    this.#stats.received++;
    const message = parseMessage(msg.data);
    if (message === null) {
      this.#dropped(msg);
      return;
    }
    const reply = msg.reply;
    sub.deliver(reply ? { subject: msg.subject, message, reply } : { subject: msg.subject, message });
  }

  #dropped(msg: Msg): void {
    this.#stats.dropped++;
    const suppressed = this.#dropWarnings.take();
    if (suppressed < 0) return;
    this.#logger.warn(
      { subject: msg.subject, bytes: msg.data.length, dropped: this.#stats.dropped, suppressed },
      'dropped a message that is not a valid tenaz message',
    );
  }

  #ensureInbox(): string {
    if (this.#inbox !== undefined) return this.#inbox.prefix;
    const prefix = createInbox();
    let sub: RawSubscription;
    try {
      sub = this.connection.subscribe(`${prefix}.*`, { callback: (err, msg) => this.#onReply(prefix, err, msg) });
    } catch (error) {
      throw this.#translate(error);
    }
    this.#inbox = { prefix, sub };
    return prefix;
  }

  #onReply(prefix: string, err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.#logger.warn({ err }, 'request inbox error');
      return;
    }
    const pending = this.#requests.get(msg.subject.slice(prefix.length + 1));
    if (msg.data.length === 0 && msg.headers?.code === NO_RESPONDERS_STATUS) {
      pending?.settle(new NoRespondersError(`no responders on '${pending.subject}'`));
      return;
    }
    this.#stats.received++;
    const message = parseMessage(msg.data);
    if (message === null) {
      this.#dropped(msg);
      pending?.settle(new InvalidMessageError(`the reply to a request on '${pending.subject}' is not a valid message (${msg.data.length} bytes)`));
      return;
    }
    // A reply after the timeout finds no pending request and is ignored.
    const reply = msg.reply;
    pending?.settle(undefined, reply ? { subject: msg.subject, message, reply } : { subject: msg.subject, message });
  }

  #onStatus(status: Status): void {
    if (status.type === 'disconnect') {
      this.#connected = false;
    } else if (status.type === 'reconnect') {
      this.#maxPayload = this.connection.info?.max_payload ?? this.#maxPayload;
      this.#connected = true;
      this.#replay();
      const waiters = this.#reconnectWaiters;
      this.#reconnectWaiters = [];
      for (const waiter of waiters) waiter.resolve();
    } else if (status.type === 'error') {
      this.#refused(status.error);
    }
  }


  /**
   * The server refused this user a publish: the requests waiting on that subject fail now,
   * with `PermissionDeniedError`, instead of timing out like requests nobody answered (and
   * being asked again, as a request that timed out may be). The server names only the subject.
   */
  #refused(error: unknown): void {
    const refused = refusedPublish(error);
    if (refused === undefined) return;
    for (const pending of [...this.#requests.values()]) {
      if (pending.subject === refused.subject) pending.settle(refused.error);
    }
  }

  #onConnectionClosed(reason: void | Error): void {
    if (this.#closeExpected || this.#closing !== undefined) return;
    this.#logger.warn({ err: reason }, 'NATS connection closed under the bus');
    void this.close();
  }

  async #drain(): Promise<void> {
    if (!this.#connected) {
      this.#logger.warn({ held: this.#held.length }, 'NATS is disconnected: closing without draining');
      await this.close();
      return;
    }
    this.#closeExpected = true;
    try {
      if (this.owned) {
        await this.connection.drain();
      } else {
        const subs: Array<{ drain(): Promise<void> }> = [...this.#subs];
        if (this.#inbox !== undefined) subs.push(this.#inbox.sub);
        await Promise.allSettled(subs.map((sub) => sub.drain()));
        await this.connection.flush();
      }
    } catch (err) {
      // Also the path of a close() called while draining: the drain was cut short.
      if (!this.#closed) this.#logger.warn({ err }, 'NATS drain failed; closing');
    }
    await this.close();
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#closeExpected = true;
    this.#statuses.stop();
    if (this.#held.length > 0) {
      this.#stats.unsent += this.#held.length;
      this.#logger.warn({ count: this.#held.length }, 'bus closed while disconnected: held publishes discarded');
      this.#held = [];
      this.#heldBytes = 0;
    }
    const waiters = this.#reconnectWaiters;
    this.#reconnectWaiters = [];
    for (const waiter of waiters) waiter.reject(new ClosedError('bus closed before flush completed'));
    for (const pending of [...this.#requests.values()]) pending.settle(new ClosedError('bus closed before a reply arrived'));
    const subs = [...this.#subs];
    if (this.owned) {
      try {
        await this.connection.close();
      } catch (err) {
        this.#logger.warn({ err }, 'closing the NATS connection failed');
      }
    } else {
      // Not ours to close: take back only what this bus subscribed.
      for (const sub of subs) sub.unsubscribe();
      this.#inbox?.sub.unsubscribe();
    }
    for (const sub of subs) sub.end();
    this.#subs.clear();
    this.#resolveClosed();
  }
}

/**
 * Encodings of constant messages (frozen, every value a primitive, so they cannot
 * change), made on their first publish; `null` for frozen messages that are not constants.
 */
const constantEncodings = new WeakMap<BusMessage, Uint8Array | null>();

/** The encoding of a constant message, or `undefined` when `message` is not one (or cannot be encoded). */
function constantEncoding(message: BusMessage): Uint8Array | undefined {
  let data = constantEncodings.get(message);
  if (data === undefined) {
    const constant = Object.values(message).every((value) => value === null || (typeof value !== 'object' && typeof value !== 'function'));
    try {
      // A copy: the encoder's result may share memory with its working buffer.
      data = constant ? encode(message).slice() : null;
    } catch {
      data = null;
    }
    constantEncodings.set(message, data);
  }
  return data ?? undefined;
}

/**
 * The subjects `parseSubject(subject, false)` accepts: non-empty tokens, none of them a
 * wildcard (`*` or `>` alone), no whitespace. One test, without the token array that
 * `parseSubject` builds, because every publish pays for it.
 */
const PUBLISH_SUBJECT = /^(?![*>](?:\.|$))[^\s.]+(?:\.(?![*>](?:\.|$))[^\s.]+)*$/;

function isPublishSubject(subject: string): boolean {
  return typeof subject === 'string' && PUBLISH_SUBJECT.test(subject);
}
