/**
 * The embedded benchmark: W1-W3 for tenaz beside plain async functions and
 * raw XState in the same run, medians of ROUNDS interleaved rounds, then the
 * peak memory of 100,000 task runs in flight.
 *
 *   npm run bench            (all)      npm run bench -- --rounds 5
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createOrchestrator } from '../src/index.js';
import { measure, median, nullLogDestination, type Measurement } from './measure.js';
import { plainWorkloads, rawActorPerTaskW1, rawXStateWorkloads, tenazWorkloads, type Workload } from './workloads.js';

const rounds = Number(argValue('--rounds') ?? 3);
const only = argValue('--only');

// Logging at info level to /dev/null: every log record is formatted and written, as in production.
const logger = pino({ level: 'info' }, nullLogDestination());
const orchestrator = createOrchestrator({ logger });
const systems: Record<string, Record<string, Workload>> = {
  tenaz: tenazWorkloads(orchestrator),
  'plain async': plainWorkloads(),
  'raw XState': rawXStateWorkloads(),
  'raw XState, actor per task': { w1: rawActorPerTaskW1() },
};
const workloads = ['w1', 'w2', 'w3'].filter((w) => !only || only.split(',').includes(w));

const results = new Map<string, Measurement[]>();
for (const workload of workloads) {
  // Warm-up: JIT and caches for every system before anything is timed.
  for (const system of Object.values(systems)) if (system[workload]) await measure(scaled(system[workload], 0.1));
  for (let round = 0; round < rounds; round++) {
    for (const [name, system] of Object.entries(systems)) {
      const w = system[workload];
      if (!w) continue;
      const key = `${workload}|${name}`;
      results.set(key, [...(results.get(key) ?? []), await measure(w)]);
    }
  }
}
await orchestrator.close();

const lines = [
  `| workload | system | tasks/s | flow p50 ms | flow p99 ms | tenaz ÷ system |`,
  `|---|---|---:|---:|---:|---:|`,
];
for (const workload of workloads) {
  const tenaz = median((results.get(`${workload}|tenaz`) ?? []).map((m) => m.tasksPerSecond));
  for (const name of Object.keys(systems)) {
    const runs = results.get(`${workload}|${name}`);
    if (!runs) continue;
    const tps = median(runs.map((m) => m.tasksPerSecond));
    lines.push(
      `| ${workload.toUpperCase()} | ${name} | ${fmt(tps)} | ${median(runs.map((m) => m.p50Ms)).toFixed(2)} | ${median(runs.map((m) => m.p99Ms)).toFixed(2)} | ${name === 'tenaz' ? '' : (tenaz / tps).toFixed(2)} |`,
    );
  }
}
process.stdout.write(`\nMedians of ${rounds} rounds, node ${process.version}, logging at info to /dev/null.\n\n${lines.join('\n')}\n`);

if (!only || only.includes('mem')) {
  const script = fileURLToPath(new URL('./memory.ts', import.meta.url));
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', script, '100000'], { encoding: 'utf8' });
  const memory = JSON.parse(out.trim().split('\n').pop() as string);
  process.stdout.write(
    `\n100,000 task runs in flight: RSS ${memory.rssMiB.toFixed(0)} MiB, heap ${memory.heapUsedMiB.toFixed(0)} MiB (${memory.heapPerTaskKiB.toFixed(2)} KiB per task run), all ${memory.completed} completed.\n`,
  );
}

function scaled(workload: Workload, factor: number): Workload {
  return workload.flows > 1 ? { ...workload, flows: Math.max(1, Math.round(workload.flows * factor)) } : workload;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
