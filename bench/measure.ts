/** Runs a workload and measures throughput and per-flow latency. */
import { pino } from 'pino';
import type { Workload } from './workloads.js';

/**
 * Where the benchmarks log, at info level: `/dev/null` through pino's default, synchronous
 * destination, one write per record. A buffered destination (`sync: false, minLength`) costs
 * more here: sonic-boom measures its growing buffer on every write, which flattens it, and that
 * was about a seventh of everything W2 allocated.
 */
export function nullLogDestination() {
  return pino.destination({ dest: '/dev/null', sync: true });
}

export interface Measurement {
  tasksPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  elapsedMs: number;
}

export async function measure(workload: Workload): Promise<Measurement> {
  const latencies = new Float64Array(workload.flows);
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < workload.flows) {
      const i = next++;
      const t0 = performance.now();
      await workload.runFlow(i);
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: workload.inFlight }, lane));
  const elapsedMs = performance.now() - started;
  latencies.sort();
  return {
    tasksPerSecond: (workload.flows * workload.tasksPerFlow * 1000) / elapsedMs,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    elapsedMs,
  };
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
