/**
 * The in-memory bus: embedded mode, one process, no server. Subject and queue
 * group semantics follow NATS (see `bus.ts`); deliveries are asynchronous and
 * keep publish order per subscriber.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ClosedError, InvalidArgumentError, NoRespondersError, TimeoutError } from '../errors.js';
import { QueuedSubscription } from './queued-subscription.js';
import { checkRequest, type Bus, type BusMessage, type Delivery, type RequestOptions, type SubscribeOptions, type Subscription } from './bus.js';

/** Options of the in-memory bus. */
export interface MemoryBusOptions {
  /** Receives warnings, e.g. when a subscription callback throws. @default no logging */
  logger?: Logger;
}

/** Deliveries per turn before yielding to the event loop, so timers still fire under load. */
const MAX_DELIVERIES_PER_TURN = 10_000;
const WHITESPACE = /\s/;

/**
 * Creates an in-memory bus.
 * @example
 * const bus = createMemoryBus({ logger });
 * bus.subscribe('tenaz.evt.>', { callback: (d) => logger.info({ subject: d.subject }, 'event') });
 * bus.publish('tenaz.evt.etl.1.flow', { v: 1, type: 'flow.state' });
 */
export function createMemoryBus(options: MemoryBusOptions = {}): MemoryBus {
  return new MemoryBus(options);
}

/** A node of the subscription trie, one level per subject token. */
interface TrieNode {
  readonly literal: Map<string, TrieNode>;
  star: TrieNode | undefined;
  /** Subscriptions whose pattern ends at this node. */
  readonly here: MemorySubscription[];
  /** Subscriptions whose pattern ends with `>` below this node. */
  readonly rest: MemorySubscription[];
}

/** The in-memory `Bus`. Build it with `createMemoryBus`. */
export class MemoryBus implements Bus {
  readonly #logger: Logger | undefined;
  #root: TrieNode = createNode();
  /** Subscriptions in the trie; `publish` returns at once when this is zero. */
  #indexed = 0;
  /** Every subscription not yet ended, including those past `max` with deliveries pending. */
  readonly #live = new Set<MemorySubscription>();
  /** Round-robin cursor and member count per queue group name. */
  readonly #queues = new Map<string, { members: number; cursor: number }>();
  // Two parallel arrays rather than one of pairs: no allocation per delivery.
  #pendingSubs: MemorySubscription[] = [];
  #pendingDeliveries: Delivery[] = [];
  #scheduled = false;
  /** Callers of flush() and drain(), settled when the pending deliveries run out or the bus closes. */
  #idleWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  #closed = false;
  #resolveClosed!: () => void;
  readonly #closedPromise = new Promise<void>((resolve) => (this.#resolveClosed = resolve));
  /** Reused by `publish`, which is never re-entered while it runs. */
  readonly #scratch: MemorySubscription[] = [];

  constructor(options: MemoryBusOptions = {}) {
    this.#logger = options.logger?.child({ component: 'memory-bus' });
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  publish(subject: string, message: BusMessage, options?: { reply?: string }): void {
    if (this.#closed) throw new ClosedError('bus is closed');
    // Hot path: most subjects (events, logs) have nobody listening. The subject is
    // validated only when someone could receive it, which keeps this branch free.
    if (this.#indexed === 0) return;
    const matches = this.#scratch;
    collect(this.#root, parseSubject(subject, false), 0, matches);
    if (matches.length === 0) return;
    const reply = options?.reply;
    const delivery: Delivery = reply === undefined ? { subject, message } : { subject, message, reply };
    let groups: Map<string, MemorySubscription[]> | undefined;
    for (const sub of matches) {
      if (sub.queue === undefined) {
        this.#enqueue(sub, delivery);
      } else {
        groups ??= new Map();
        const members = groups.get(sub.queue);
        if (members === undefined) groups.set(sub.queue, [sub]);
        else members.push(sub);
      }
    }
    matches.length = 0;
    if (groups !== undefined) {
      for (const [queue, members] of groups) {
        const state = this.#queues.get(queue);
        const cursor = state === undefined ? 0 : state.cursor++;
        this.#enqueue(members[cursor % members.length]!, delivery);
      }
    }
  }

  subscribe(subject: string, options: SubscribeOptions = {}): Subscription {
    if (this.#closed) throw new ClosedError('bus is closed');
    const tokens = parseSubject(subject, true);
    const { queue, callback, max } = options;
    if (queue !== undefined && (typeof queue !== 'string' || queue.length === 0 || WHITESPACE.test(queue))) {
      throw new InvalidArgumentError(`invalid queue group '${String(queue)}'`);
    }
    if (callback !== undefined && typeof callback !== 'function') throw new InvalidArgumentError('callback must be a function');
    if (max !== undefined && (!Number.isInteger(max) || max < 1)) {
      throw new InvalidArgumentError(`max must be a positive integer, got ${String(max)}`);
    }
    const sub = new MemorySubscription(subject, tokens, { queue, callback, max }, this.#logger, (ended) => {
      this.#unindex(ended);
      this.#live.delete(ended);
    });
    this.#index(sub);
    this.#live.add(sub);
    return sub;
  }

  request(subject: string, message: BusMessage, options: RequestOptions = {}): Promise<Delivery> {
    const checked = checkRequest(this.#closed, options);
    if (checked instanceof Error) return Promise.reject(checked);
    const { timeoutMs, signal } = checked;
    let tokens: string[];
    try {
      tokens = parseSubject(subject, false);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const matches = this.#scratch;
    collect(this.#root, tokens, 0, matches);
    const responders = matches.length;
    matches.length = 0;
    if (responders === 0) return Promise.reject(new NoRespondersError(`no responders on '${subject}'`));

    return new Promise<Delivery>((resolve, reject) => {
      let settled = false;
      const settle = (error: unknown, delivery?: Delivery): void => {
        if (settled) return;
        settled = true;
        dispose();
        if (delivery !== undefined) resolve(delivery);
        else reject(error);
      };
      const inbox = this.subscribe(`_INBOX.${randomUUID()}`, { max: 1, callback: (d) => settle(undefined, d) });
      const timer = setTimeout(() => settle(new TimeoutError(`no reply on '${subject}' within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = (): void => settle(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      // The one cleanup for every exit: reply, timeout, abort, bus closed.
      function dispose(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        inbox.unsubscribe();
      }
      // Ends without a reply only when the bus closes (after a reply, `settled` is already set).
      void inbox.closed().then(() => settle(new ClosedError('bus closed before a reply arrived')));
      this.publish(subject, message, { reply: inbox.subject });
    });
  }

  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('bus is closed'));
    if (!this.#scheduled) return Promise.resolve();
    return new Promise((resolve, reject) => this.#idleWaiters.push({ resolve, reject }));
  }

  async drain(): Promise<void> {
    if (this.#closed) return;
    if (this.#scheduled) {
      // A concurrent close() also ends the wait: there is nothing left to drain then.
      await new Promise<void>((resolve) => this.#idleWaiters.push({ resolve, reject: () => resolve() }));
    }
    await this.close();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    // Undelivered messages are dropped: close means now; drain() is the patient path.
    this.#pendingSubs = [];
    this.#pendingDeliveries = [];
    const live = [...this.#live];
    this.#live.clear();
    for (const sub of live) sub.end();
    this.#root = createNode();
    this.#indexed = 0;
    this.#queues.clear();
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const waiter of waiters) waiter.reject(new ClosedError('bus closed before flush completed'));
    this.#resolveClosed();
    return Promise.resolve();
  }

  /** Resolves when the bus has closed. Never rejects. */
  closed(): Promise<void> {
    return this.#closedPromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #enqueue(sub: MemorySubscription, delivery: Delivery): void {
    this.#pendingSubs.push(sub);
    this.#pendingDeliveries.push(delivery);
    // Routing-side max: a subscription leaves the index once it has been sent `max` messages,
    // so queue groups do not route later messages to a member that would drop them.
    if (sub.route()) this.#unindex(sub);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#deliverPending);
    }
  }

  readonly #deliverPending = (): void => {
    const subs = this.#pendingSubs;
    const deliveries = this.#pendingDeliveries;
    let i = 0;
    let budget = MAX_DELIVERIES_PER_TURN;
    // Callbacks may publish: new entries are appended and delivered in this same loop.
    while (i < subs.length) {
      if (budget-- === 0) {
        subs.splice(0, i);
        deliveries.splice(0, i);
        setImmediate(this.#deliverPending);
        return;
      }
      const sub = subs[i]!;
      const delivery = deliveries[i]!;
      i++;
      sub.deliver(delivery);
    }
    // close() may have run inside a callback and replaced the arrays: reset only ours.
    if (subs === this.#pendingSubs) {
      subs.length = 0;
      deliveries.length = 0;
    }
    this.#scheduled = false;
    const waiters = this.#idleWaiters;
    if (waiters.length === 0) return;
    this.#idleWaiters = [];
    for (const waiter of waiters) waiter.resolve();
  };

  #index(sub: MemorySubscription): void {
    const { tokens } = sub;
    let node = this.#root;
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (token === '>') break;
      node = token === '*' ? (node.star ??= createNode()) : node.literal.get(token) ?? setChild(node, token);
    }
    (tokens[tokens.length - 1] === '>' ? node.rest : node.here).push(sub);
    this.#indexed++;
    if (sub.queue === undefined) return;
    const group = this.#queues.get(sub.queue);
    if (group === undefined) this.#queues.set(sub.queue, { members: 1, cursor: 0 });
    else group.members++;
  }

  /** Takes a subscription out of the trie. Idempotent. */
  #unindex(sub: MemorySubscription): void {
    if (!sub.indexed || this.#closed) return;
    sub.indexed = false;
    remove(this.#root, sub, 0);
    this.#indexed--;
    if (sub.queue === undefined) return;
    const group = this.#queues.get(sub.queue);
    if (group !== undefined && --group.members === 0) this.#queues.delete(sub.queue);
  }
}

/** One subscription; iterable unless it has a callback. */
class MemorySubscription extends QueuedSubscription {
  readonly tokens: readonly string[];
  readonly queue: string | undefined;
  /** Whether the bus still routes to it; owned by the bus. */
  indexed = true;
  readonly #max: number;
  #routed = 0;
  #delivered = 0;

  constructor(subject: string, tokens: readonly string[], options: SubscribeOptions, logger: Logger | undefined, onEnd: (sub: MemorySubscription) => void) {
    super(subject, options.callback, logger, onEnd as (sub: QueuedSubscription) => void);
    this.tokens = tokens;
    this.queue = options.queue;
    this.#max = options.max ?? Infinity;
  }

  /** Counts a message routed here; true once `max` is reached and routing must stop. */
  route(): boolean {
    return ++this.#routed >= this.#max;
  }

  deliver(delivery: Delivery): void {
    if (this.ended) return;
    this.#delivered++;
    this.hand(delivery);
    if (this.#delivered >= this.#max) this.end();
  }

  unsubscribe(): void {
    this.end();
  }
}

/**
 * Splits and validates a subject. Patterns (`wildcards`) may use `*` as any token
 * and `>` as the last token; whitespace is refused as the NATS server refuses it.
 * Shared with the NATS bus, so both refuse the same subjects.
 * @throws InvalidArgumentError naming the subject
 */
export function parseSubject(subject: string, wildcards: boolean): string[] {
  if (typeof subject !== 'string' || subject.length === 0 || WHITESPACE.test(subject)) {
    throw new InvalidArgumentError(`invalid subject '${String(subject)}'`);
  }
  const tokens = subject.split('.');
  const last = tokens.length - 1;
  for (let i = 0; i <= last; i++) {
    const token = tokens[i]!;
    if (token.length === 0) throw new InvalidArgumentError(`invalid subject '${subject}': empty token`);
    if (token === '*' || token === '>') {
      if (!wildcards) throw new InvalidArgumentError(`invalid subject '${subject}': wildcards are not allowed here`);
      if (token === '>' && i !== last) throw new InvalidArgumentError(`invalid subject '${subject}': '>' must be the last token`);
    }
  }
  return tokens;
}

function collect(node: TrieNode, tokens: readonly string[], i: number, out: MemorySubscription[]): void {
  if (i === tokens.length) {
    for (const sub of node.here) out.push(sub);
    return;
  }
  // `>` needs at least one more token, which i < tokens.length guarantees here.
  for (const sub of node.rest) out.push(sub);
  const next = node.literal.get(tokens[i]!);
  if (next !== undefined) collect(next, tokens, i + 1, out);
  if (node.star !== undefined) collect(node.star, tokens, i + 1, out);
}

function createNode(): TrieNode {
  return { literal: new Map(), star: undefined, here: [], rest: [] };
}

function setChild(node: TrieNode, token: string): TrieNode {
  const next = createNode();
  node.literal.set(token, next);
  return next;
}

/**
 * Removes `sub` below `node` and returns whether `node` is left empty, so that
 * one-off subjects (request inboxes) do not grow the trie forever.
 */
function remove(node: TrieNode, sub: MemorySubscription, i: number): boolean {
  const { tokens } = sub;
  const token = tokens[i];
  if (token === undefined || token === '>') {
    const list = token === undefined ? node.here : node.rest;
    const index = list.indexOf(sub);
    if (index !== -1) list.splice(index, 1);
  } else {
    const next = token === '*' ? node.star : node.literal.get(token);
    if (next !== undefined && remove(next, sub, i + 1)) {
      if (token === '*') node.star = undefined;
      else node.literal.delete(token);
    }
  }
  return node.here.length === 0 && node.rest.length === 0 && node.literal.size === 0 && node.star === undefined;
}
