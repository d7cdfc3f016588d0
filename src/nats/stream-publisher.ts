/**
 * Publishes to JetStream streams over core NATS: each publish carries a reply
 * subject on one inbox shared by every publish of this publisher, where the
 * stream's acknowledgement (PubAck) comes back, and resolves with it.
 *
 * This is what `jetstream(nc).publish()` does, without its per-publish cost: a
 * request object, a timer and error objects built for their stack traces per
 * publish, and a JSON decode through a fresh `TextDecoder`. An unanswered
 * publish is failed by one periodic sweep, not by a timer of its own. Durable
 * runs write several records per flow run: this is their path to the server.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { ClosedError, NoRespondersError, TimeoutError } from '../errors.js';
import { refusedPublish } from './passing-failure.js';
import { followStatus, type StatusFollower } from './status.js';

/** The status code of the server's reply to a publish nobody (no stream) takes. */
const NO_RESPONDERS_STATUS = 503;
/** How often unanswered publishes are looked for, at most, in ms. */
const MAX_SWEEP_MS = 1_000;
const decoder = new TextDecoder();

/** The header JetStream deduplicates publishes by, within the stream's duplicate window. */
export const MSG_ID_HEADER = 'Nats-Msg-Id';

export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

/**
 * The stream's answer to a publish: its PubAck, or what went wrong (a refusal as a
 * `JetStreamApiError`, with the server's `err_code` as its `code`).
 */
export function parsePubAck(data: Uint8Array): PubAck | Error {
  let ack: { stream?: unknown; seq?: unknown; duplicate?: unknown; error?: { code?: number; err_code?: number; description?: string } };
  try {
    ack = JSON.parse(decoder.decode(data)) as typeof ack;
  } catch (cause) {
    return new Error('the stream answered the publish with something that is not a PubAck', { cause });
  }
  if (ack === null || typeof ack !== 'object') return new Error('the stream answered the publish with something that is not a PubAck');
  if (ack.error !== undefined) {
    const { description, code, err_code: errCode } = ack.error ?? {};
    return new JetStreamApiError({ code: code ?? 0, err_code: errCode ?? 0, description: `the stream refused the publish: ${String(description)}` });
  }
  if (typeof ack.stream !== 'string' || ack.stream === '' || !Number.isSafeInteger(ack.seq)) return new Error('the stream answered the publish with an invalid PubAck');
  return { stream: ack.stream, seq: ack.seq as number, duplicate: ack.duplicate === true };
}

interface PendingPublish {
  readonly subject: string;
  readonly sentAt: number;
  resolve(ack: PubAck): void;
  reject(error: Error): void;
}

export class StreamPublisher {
  readonly #connection: NatsConnection;
  readonly #timeoutMs: number;
  readonly #prefix = createInbox();
  readonly #inbox: Subscription;
  /** Publishes waiting for their ack, by reply subject, oldest first. */
  readonly #pending = new Map<string, PendingPublish>();
  readonly #sweep: NodeJS.Timeout;
  readonly #statuses: StatusFollower;
  #nextToken = 0;
  #closed = false;

  constructor(connection: NatsConnection, timeoutMs: number) {
    this.#connection = connection;
    this.#timeoutMs = timeoutMs;
    this.#inbox = connection.subscribe(`${this.#prefix}.*`, { callback: (err, msg) => this.#onAck(err, msg) });
    this.#sweep = setInterval(() => this.#timeOut(), Math.min(MAX_SWEEP_MS, timeoutMs / 4));
    this.#sweep.unref();
    this.#statuses = followStatus(connection, (status) => {
      if (status.type === 'error') this.#refused(status.error);
    });
  }

  /**
   * Publishes `data` to a stream's `subject`; resolves with its PubAck. Rejects with a
   * `JetStreamApiError` when the stream refuses it, a `NoRespondersError` when no stream
   * takes the subject, a `PermissionDeniedError` when the server does not let this user
   * publish to it, a `TimeoutError` when nothing answers in time.
   */
  publish(subject: string, data: Uint8Array, headers?: MsgHdrs): Promise<PubAck> {
    if (this.#closed) return Promise.reject(new ClosedError('the stream publisher is closed'));
    const reply = `${this.#prefix}.${(this.#nextToken++).toString(36)}`;
    return new Promise<PubAck>((resolve, reject) => {
      this.#pending.set(reply, { subject, sentAt: Date.now(), resolve, reject });
      try {
        this.#connection.publish(subject, data, headers === undefined ? { reply } : { reply, headers });
      } catch (error) {
        this.#pending.delete(reply);
        reject(error as Error);
      }
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    this.#statuses.stop();
    const error = new ClosedError('the stream publisher closed before the stream answered');
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    if (!this.#inbox.isClosed()) this.#inbox.unsubscribe();
  }

  #onAck(err: Error | null, msg: Msg): void {
    if (err !== null) return;
    const pending = this.#pending.get(msg.subject);
    // An ack for a publish already failed by the sweep changes nothing.
    if (pending === undefined) return;
    this.#pending.delete(msg.subject);
    if (msg.data.length === 0 && msg.headers?.code === NO_RESPONDERS_STATUS) {
      return pending.reject(new NoRespondersError(`no stream takes '${pending.subject}'`));
    }
    const ack = parsePubAck(msg.data);
    if (ack instanceof Error) pending.reject(ack);
    else pending.resolve(ack);
  }


  /**
   * The server names only the refused subject, not the publish: every publish waiting on it
   * fails, as the server refuses them all alike (a user's permissions are per subject).
   */
  #refused(error: Error): void {
    const refused = refusedPublish(error);
    if (refused === undefined) return;
    for (const [reply, pending] of this.#pending) {
      if (pending.subject !== refused.subject) continue;
      this.#pending.delete(reply);
      pending.reject(refused.error);
    }
  }

  #timeOut(): void {
    const expired = Date.now() - this.#timeoutMs;
    for (const [reply, pending] of this.#pending) {
      if (pending.sentAt > expired) break;
      this.#pending.delete(reply);
      pending.reject(new TimeoutError(`the stream did not acknowledge the publish to '${pending.subject}' within ${this.#timeoutMs} ms`));
    }
  }
}
