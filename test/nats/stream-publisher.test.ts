import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { ClosedError, NoRespondersError, TimeoutError } from '../../src/errors.js';
import { StreamPublisher, parsePubAck } from '../../src/nats/stream-publisher.js';
import { ensureWorkQueueStream } from '../../src/remote/streams.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('StreamPublisher', () => {
  let server: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    await ensureWorkQueueStream(await jetstreamManager(nc), 'sptest', 'sptest.>');
  });

  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
  });

  it('resolves with the sequence the stream stored each publish at', async () => {
    const publisher = new StreamPublisher(nc, 5_000);
    const acks = await Promise.all([1, 2, 3].map((i) => publisher.publish(`sptest.a${i}`, bytes(`m${i}`))));
    expect(acks.map((a) => a.stream)).toEqual(['sptest', 'sptest', 'sptest']);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(3);
    publisher.close();
  });

  it('rejects a compare-and-set on a stale sequence with the server\'s wrong-last-sequence error', async () => {
    const publisher = new StreamPublisher(nc, 5_000);
    const first = await publisher.publish('sptest.cas', bytes('1'));
    const expect1 = headers();
    expect1.set('Nats-Expected-Last-Subject-Sequence', String(first.seq));
    const second = await publisher.publish('sptest.cas', bytes('2'), expect1);
    const stale = headers();
    stale.set('Nats-Expected-Last-Subject-Sequence', String(first.seq));
    const error = await publisher.publish('sptest.cas', bytes('3'), stale).catch((e: unknown) => e);
    expect(second.seq).toBeGreaterThan(first.seq);
    expect(error).toBeInstanceOf(JetStreamApiError);
    expect((error as JetStreamApiError).code).toBe(JetStreamApiCodes.StreamWrongLastSequence);
    publisher.close();
  });

  it('rejects a publish no stream takes, one nobody answers in time, and what is pending when it closes', async () => {
    const publisher = new StreamPublisher(nc, 200);
    await expect(publisher.publish('nostream.x', bytes('x'))).rejects.toBeInstanceOf(NoRespondersError);
    // A plain subscriber takes the message but never acks it.
    const silent = nc.subscribe('silent.x', { callback: () => {} });
    await nc.flush();
    await expect(publisher.publish('silent.x', bytes('x'))).rejects.toBeInstanceOf(TimeoutError);
    const pending = publisher.publish('silent.x', bytes('y'));
    publisher.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(publisher.publish('sptest.after', bytes('z'))).rejects.toBeInstanceOf(ClosedError);
    silent.unsubscribe();
  });

  it('reads a PubAck, a refusal, and garbage', () => {
    expect(parsePubAck(bytes('{"stream":"s","seq":4}'))).toEqual({ stream: 's', seq: 4, duplicate: false });
    expect(parsePubAck(bytes('{"stream":"s","seq":4,"duplicate":true}'))).toEqual({ stream: 's', seq: 4, duplicate: true });
    const refused = parsePubAck(bytes('{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}'));
    expect(refused).toBeInstanceOf(JetStreamApiError);
    expect((refused as JetStreamApiError).code).toBe(10071);
    for (const garbage of ['', 'null', '[]', '{"stream":"s"}', '{"stream":"","seq":1}', '{"stream":"s","seq":1.5}', '\u0000\u0001']) {
      const parsed = parsePubAck(bytes(garbage));
      expect(parsed, garbage).toBeInstanceOf(Error);
      expect(parsed).not.toBeInstanceOf(JetStreamApiError);
    }
  });
});
