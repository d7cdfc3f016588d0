/**
 * W1D, the cost of durable runs: W1 (flows of three chained tasks) for tenaz
 * over NATS with `durable: false` and with durable runs on, beside its floor,
 * raw JetStream KV puts shaped like W1's records.
 *
 * - tenaz, both variants: owners in the bench process, two worker processes
 *   (nats-worker.ts, 'tenaz' mode) shared by both, interleaved rounds.
 * - raw KV: each "flow" is three sequential `kv.put` calls of a ~200-byte
 *   msgpack value shaped like a task run record, on a bucket made for the
 *   bench with tenaz's settings (history 1, file storage, one replica); a put
 *   counts as a task.
 */
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { connectOrchestrator, type Orchestrator } from '../src/index.js';
import { encodeValue } from '../src/codec.js';
import { measure, type Measurement } from './measure.js';
import type { WorkerProcesses } from './nats-processes.js';
import { chain } from './nats-tasks.js';
import type { Workload } from './workloads.js';

export const DURABLE_SYSTEMS = ['tenaz (durable: false)', 'tenaz (durable)', 'raw JetStream KV'] as const;
export type DurableSystemName = (typeof DURABLE_SYSTEMS)[number];

/** The KV bucket of the raw floor; its stream is `KV_bench_w1d`. */
export const RAW_KV_BUCKET = 'bench_w1d';
/** Puts per raw "flow", as W1 runs tasks per flow. */
const PUTS_PER_FLOW = 3;

export interface DurableW1Options {
  natsUrl: string;
  processes: WorkerProcesses;
  logger: Logger;
  flows: number;
  inFlight: number;
  rounds: number;
  workers: number;
  concurrency: number;
  /** Called after each measurement, for progress on stderr. */
  onMeasured(round: number, system: DurableSystemName, measurement: Measurement): void;
}

export interface DurableW1Result {
  /** Every round's measurement, per system. */
  measurements: Map<DurableSystemName, Measurement[]>;
  /** The encoded size of one raw KV value, in bytes. */
  rawValueBytes: number;
}

/**
 * Runs W1D: warm-up, then `rounds` interleaved rounds of the three systems.
 * Starts its worker processes and stops them before returning, error or not.
 */
export async function measureDurableW1(options: DurableW1Options): Promise<DurableW1Result> {
  const { natsUrl, processes, logger } = options;
  let plain: Orchestrator | undefined;
  let durable: Orchestrator | undefined;
  let nc: NatsConnection | undefined;
  try {
    plain = await connectOrchestrator({ nats: natsUrl, logger, durable: false });
    durable = await connectOrchestrator({ nats: natsUrl, logger, durable: true });
    nc = await connect({ servers: natsUrl });
    const kv = await new Kvm(nc).create(RAW_KV_BUCKET, { history: 1 });
    await Promise.all(Array.from({ length: options.workers }, () => processes.start('tenaz', natsUrl, options.concurrency)));

    // Keys are unique across rounds, as flow run ids are: both sides grow their buckets alike.
    let pass = 0;
    const systems: Record<DurableSystemName, (flows: number) => Workload> = {
      'tenaz (durable: false)': (flows) => tenazW1(plain!, flows, options.inFlight),
      'tenaz (durable)': (flows) => tenazW1(durable!, flows, options.inFlight),
      'raw JetStream KV': (flows) => rawKvW1(kv, `p${++pass}`, flows, options.inFlight),
    };
    // Warm-up: JIT, connections, consumers and buckets for every system before anything is timed.
    for (const name of DURABLE_SYSTEMS) await measure(systems[name](Math.max(1, Math.round(options.flows * 0.1))));
    const measurements = new Map<DurableSystemName, Measurement[]>();
    for (let round = 0; round < options.rounds; round++) {
      for (const name of DURABLE_SYSTEMS) {
        const m = await measure(systems[name](options.flows));
        measurements.set(name, [...(measurements.get(name) ?? []), m]);
        options.onMeasured(round, name, m);
      }
    }
    return { measurements, rawValueBytes: rawValue('p0-0/0', 0, 1).length };
  } finally {
    await processes.stopAll();
    await plain?.close();
    await durable?.close();
    await nc?.close();
  }
}

function tenazW1(orchestrator: Orchestrator, flows: number, inFlight: number): Workload {
  return { tasksPerFlow: 3, flows, inFlight, runFlow: (i) => orchestrator.start(chain, i).result() };
}

/** W1 on raw KV: each flow writes its three "task run records" one after another. */
function rawKvW1(kv: KV, pass: string, flows: number, inFlight: number): Workload {
  return {
    tasksPerFlow: PUTS_PER_FLOW,
    flows,
    inFlight,
    runFlow: async (i) => {
      for (let position = 0; position < PUTS_PER_FLOW; position++) {
        const key = `${pass}-${i}/${position}`;
        await kv.put(key, rawValue(key, position, i + position + 1));
      }
    },
  };
}

/**
 * A completed task run's record, trimmed to its main fields (about 200 bytes; tenaz's own
 * records also keep history, names and tags), msgpack-encoded in tenaz's store envelope.
 */
function rawValue(key: string, position: number, result: number): Uint8Array {
  const now = Date.now();
  const state = { type: 'COMPLETED', name: 'Completed', timestamp: now, attempt: 1 };
  const record = { v: 1, kind: 'task', id: key, taskName: 'nats-bench-increment', position, state, attempt: 1, lastSeq: 3, updatedAt: now, hasResult: true, result };
  return encodeValue({ v: 1, value: record });
}
