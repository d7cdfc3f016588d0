/**
 * The message bus contract. Two implementations share it: the in-memory bus
 * (embedded mode, no server) and the NATS bus. Subject semantics follow NATS:
 * dot-separated tokens, `*` matches exactly one token, `>` matches one or more
 * trailing tokens, and subscribers in the same queue group share the messages
 * of a subject (each message goes to one member of the group).
 *
 * Messages are plain maps (`BusMessage`): the memory bus hands the same object
 * to every subscriber, so subscribers must treat messages as read-only; the NATS
 * bus encodes them with msgpackr on the wire.
 */
import { ClosedError, InvalidArgumentError } from '../errors.js';

/** A message on the bus: a plain map with a version field. */
export interface BusMessage {
  /** Wire format version. */
  readonly v: number;
  /** Discriminant: dotted lowercase name, e.g. `task.state`. */
  readonly type: string;
  readonly [key: string]: unknown;
}

/** One delivery to a subscriber. */
export interface Delivery<M extends BusMessage = BusMessage> {
  readonly subject: string;
  readonly message: M;
  /** Reply subject, present on requests. */
  readonly reply?: string;
}

export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group. */
  queue?: string;
  /**
   * Called for each delivery instead of queuing it for async iteration.
   * Exceptions thrown by the callback are caught and logged by the bus.
   */
  callback?: (delivery: Delivery) => void;
  /** Unsubscribe after this many deliveries. */
  max?: number;
}

/** A subscription; iterate it to receive deliveries unless a callback was given. */
export interface Subscription extends AsyncIterable<Delivery> {
  readonly subject: string;
  /** Stops deliveries; pending iterators end. Idempotent. */
  unsubscribe(): void;
  /** Resolves when the subscription has ended (unsubscribed or bus closed). Never rejects. */
  closed(): Promise<void>;
}

export interface RequestOptions {
  /** How long to wait for a reply. @default 5000 */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface Bus {
  /** Publishes a message. Fire and forget; no error when nobody listens. */
  publish(subject: string, message: BusMessage, options?: { reply?: string }): void;
  subscribe(subject: string, options?: SubscribeOptions): Subscription;
  /**
   * Sends a request and resolves with the first reply.
   * Rejects with `NoRespondersError` when nobody subscribes to the subject
   * and with `TimeoutError` when no reply came in time.
   */
  request(subject: string, message: BusMessage, options?: RequestOptions): Promise<Delivery>;
  /** Waits until every message published so far has been handed to subscribers. */
  flush(): Promise<void>;
  /** Finishes delivering what was published, then closes. */
  drain(): Promise<void>;
  /** Closes now; subscriptions end. Idempotent. */
  close(): Promise<void>;
  readonly isClosed: boolean;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/**
 * What every bus checks before a request: the options with their defaults, or the
 * error to reject with (a closed bus, a bad timeout). Requests reject rather than
 * throw: callers handle one failure channel, as nats.js does.
 */
export function checkRequest(closed: boolean, options: RequestOptions): { timeoutMs: number; signal: AbortSignal | undefined } | Error {
  if (closed) return new ClosedError('bus is closed');
  const { timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS, signal } = options;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return new InvalidArgumentError(`timeoutMs must be a positive number, got ${String(timeoutMs)}`);
  return { timeoutMs, signal };
}
