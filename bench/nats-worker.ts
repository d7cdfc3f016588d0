/**
 * A worker process of the NATS benchmark, one system per process:
 *
 *   node --import tsx bench/nats-worker.ts tenaz     <natsUrl>   <concurrency>
 *   node --import tsx bench/nats-worker.ts nats      <natsUrl>   <concurrency>
 *   node --import tsx bench/nats-worker.ts jetstream <natsUrl>   <concurrency>
 *   node --import tsx bench/nats-worker.ts bullmq    <redisPort> <concurrency>
 *
 * Prints `READY <pid>` once it takes work. Warnings and errors go to stderr as
 * JSON lines (one per record), everything else to /dev/null. SIGTERM stops it.
 */
import { jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { connectOrchestrator } from '../src/index.js';
import { serveBullmq } from './bullmq.js';
import { createBenchLogger } from './nats-log.js';
import { Sema } from 'async-sema';
import { JS_STREAM, RAW_QUEUE, RAW_SUBJECT_PREFIX, RAW_TASKS, decode, encode, handle, jsConsumerName, type RawRequest } from './nats-raw.js';
import { setSignalConnection } from './nats-tasks.js';

const [mode, where, concurrencyArg = '64'] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
if (!where || !Number.isInteger(concurrency) || concurrency < 1) {
  process.stderr.write('usage: nats-worker.ts tenaz|nats|jetstream|bullmq <natsUrl|redisPort> <concurrency>\n');
  process.exit(2);
}
const warn = (what: object) => process.stderr.write(`${JSON.stringify(what)}\n`);

let stop: () => Promise<void>;
switch (mode) {
  case 'tenaz':
    stop = await serveTenaz(where);
    break;
  case 'nats':
    stop = await serveRawNats(where);
    break;
  case 'jetstream':
    stop = await serveJetStream(where);
    break;
  case 'bullmq': {
    const worker = await serveBullmq(Number(where), concurrency);
    stop = () => worker.close();
    break;
  }
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
}
process.stdout.write(`READY ${process.pid}\n`);
const shutdown = () => void stop().finally(() => process.exit(0));
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

async function serveTenaz(url: string): Promise<() => Promise<void>> {
  const logger = createBenchLogger(warn);
  const orchestrator = await connectOrchestrator({ nats: url, logger, execution: 'local' });
  setSignalConnection(orchestrator.nats!);
  const worker = orchestrator.worker({ concurrency });
  await worker.ready();
  return () => orchestrator.drain({ graceMs: 2_000 });
}

/** A plain nats.js service: a queue-group subscription, at most `concurrency` requests handled at once. */
async function serveRawNats(url: string): Promise<() => Promise<void>> {
  const nc = await connect({ servers: url });
  const slots = new Sema(concurrency);
  nc.subscribe(`${RAW_SUBJECT_PREFIX}*`, {
    queue: RAW_QUEUE,
    callback: (err, msg) => {
      if (err) {
        warn({ level: 'error', msg: 'subscription failed', err: err.message });
        return;
      }
      void (async () => {
        await slots.acquire();
        try {
          const reply = await handle(msg.subject.slice(RAW_SUBJECT_PREFIX.length), decode<RawRequest>(msg.data));
          msg.respond(encode(reply));
        } finally {
          slots.release();
        }
      })();
    },
  });
  await nc.flush();
  return () => nc.drain();
}

/** Pull consumers on the raw work-queue stream; acks, then replies on core NATS to the publisher's inbox. */
async function serveJetStream(url: string): Promise<() => Promise<void>> {
  const nc: NatsConnection = await connect({ servers: url });
  const js = jetstream(nc);
  const slots = new Sema(concurrency);
  const consumers: ConsumerMessages[] = [];
  for (const taskName of RAW_TASKS) {
    const consumer = await js.consumers.get(JS_STREAM, jsConsumerName(taskName));
    const messages = await consumer.consume({ max_messages: concurrency });
    consumers.push(messages);
    void (async () => {
      for await (const message of messages) {
        await slots.acquire();
        void (async () => {
          try {
            const request = decode<RawRequest>(message.data);
            const reply = await handle(taskName, request);
            message.ack();
            nc.publish(request.reply!, encode(reply));
          } finally {
            slots.release();
          }
        })();
      }
    })();
  }
  return async () => {
    await Promise.allSettled(consumers.map((messages) => messages.close()));
    await nc.drain();
  };
}
